//! Batch scripts: a `#!/bin/sh` script per job that `exec`s the worker with every argument
//! single-quoted, and shell quoting for the lines `-n` prints.

use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::path::Path;

/// Quote one word for a POSIX shell: unchanged if it is made only of safe characters, otherwise
/// in single quotes with each `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=,+@%".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// An argv as one line a shell would run as the same argv (for `studymake -n` and messages).
pub fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Write the batch script of one job to `path` (mode 0755): a `#!/bin/sh` script that prints
/// one line naming the job and host to the log, then `exec`s `worker_argv` (each argument
/// single-quoted, so spaces, quotes, `$` and newlines reach the worker unchanged). The worker's
/// exit code is the job's. `worker_argv[0]` should be an absolute path visible on every node.
pub fn write_job_script(path: &Path, worker_argv: &[impl AsRef<OsStr>]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if worker_argv.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: a job script needs a command to run (the worker argv is empty).",
            path.display()
        )));
    }
    let mut text: Vec<u8> = b"#!/bin/sh\n\
        # Slurm batch script written by studymake: runs one worker; every parameter is in the\n\
        # job spec file it names. Slurm options are on the sbatch command line.\n\
        echo \"studymake: Slurm job ${SLURM_JOB_ID:-?} on $(uname -n) at $(date -u '+%Y-%m-%dT%H:%M:%SZ')\" >&2\n\
        exec"
        .to_vec();
    for arg in worker_argv {
        let bytes = arg.as_ref().as_bytes();
        if bytes.contains(&0) {
            return Err(Error::Invalid(format!(
                "{}: a worker argument contains a NUL byte.",
                path.display()
            )));
        }
        text.push(b' ');
        let safe = !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./:=,+@%".contains(b));
        if safe {
            text.extend_from_slice(bytes);
        } else {
            text.push(b'\'');
            for &b in bytes {
                if b == b'\'' {
                    text.extend_from_slice(br"'\''");
                } else {
                    text.push(b);
                }
            }
            text.push(b'\'');
        }
    }
    text.push(b'\n');
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(&text).map_err(|e| Error::io(path, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn job_script_execs_the_worker_with_every_argument_intact() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("job.sh");
        let args = [
            "plain",
            "two words",
            "it's",
            "$HOME `id` \"q\"",
            "line\nbreak",
            "",
            "*",
        ];
        let mut argv = vec!["/usr/bin/printf", "<%s>\\n"];
        argv.extend(args);
        write_job_script(&script, &argv).unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let out = Command::new(&script)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let expect: String = args.iter().map(|a| format!("<{a}>\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expect);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("studymake: Slurm job ? on "), "{err}");
        // exit code passes through exec
        write_job_script(&script, &["/bin/sh", "-c", "exit 3"]).unwrap();
        let out = Command::new(&script).output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        let empty: [&str; 0] = [];
        assert!(write_job_script(&script, &empty).is_err());
    }
}
