//! The study lock: one build (or clean) of a study at a time, held as a kernel file lock so a
//! killed process can never leave a stale lock behind.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held study lock; released when dropped (or when the process dies).
pub struct StudyLock {
    _file: File,
    pub path: PathBuf,
}

impl StudyLock {
    /// Take the lock of the state directory `dir`. Without `wait`, fail at once naming the holder;
    /// with `wait`, print who holds it and block until it is free.
    pub fn acquire(dir: &Path, wait: bool) -> Result<StudyLock> {
        use std::os::unix::fs::OpenOptionsExt;
        crate::store::check_state_dir(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .custom_flags(libc::O_NOFOLLOW)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                if holder_is_gone(&holder) && taken_soon(&file) {
                    // The holder was killed; a child it was starting held a copy of the lock's
                    // descriptor until it reached its exec (where it is closed).
                } else if !wait {
                    return Err(Error::Locked { path, holder });
                } else {
                    eprintln!("studymake: waiting for another build of this study ({holder})");
                    file.lock().map_err(|e| Error::io(&path, e))?;
                }
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let who = format!(
            "pid {} on {}, since unix time {}",
            std::process::id(),
            hostname(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        file.rewind().map_err(|e| Error::io(&path, e))?;
        file.write_all(who.as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        Ok(StudyLock { _file: file, path })
    }
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    // The holder writes its identity just after it takes the lock; give it a moment.
    for _ in 0..20 {
        s.clear();
        let _ = file.rewind();
        let _ = file.read_to_string(&mut s);
        if !s.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if s.trim().is_empty() {
        "another process".into()
    } else {
        s.trim().to_string()
    }
}

/// Whether the holder a lock file names is a process of this host that no longer exists.
fn holder_is_gone(holder: &str) -> bool {
    let mut words = holder.split_whitespace();
    let (Some("pid"), Some(pid), Some("on"), Some(host)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    let host = host.trim_end_matches(',');
    match pid.parse::<u32>() {
        Ok(pid) => host == hostname() && !crate::sys::process_alive(pid),
        Err(_) => false,
    }
}

/// Whether the lock can be taken within a couple of seconds (polled): a killed build's lock is
/// free as soon as the children it was starting at that moment reach their exec.
fn taken_soon(file: &File) -> bool {
    for _ in 0..200 {
        if file.try_lock().is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "this host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = StudyLock::acquire(dir.path(), false).unwrap();
        let e = StudyLock::acquire(dir.path(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(a);
        StudyLock::acquire(dir.path(), false).unwrap();
    }
}
