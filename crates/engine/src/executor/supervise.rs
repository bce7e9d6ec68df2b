//! A job's supervisor (`studymake __supervise ARGV...`): the process each local job runs under,
//! so that when the job ends, everything it started has ended too.
//!
//! The supervisor is a child subreaper: every orphaned descendant of the job (a background
//! subshell, a double-forked or `setsid` daemon) is reparented to it. It runs the job's main
//! process (the recipe's command, or `studymake __worker SPEC`) and, when that exits, kills
//! every process left in its tree and reaps them before it exits with the main process's status.
//! The engine hashes and publishes only after the supervisor has exited, so nothing of the job
//! can write into what is hashed, cached or published. On SIGTERM (studymake cancelling, or
//! studymake's death by any signal, SIGKILL included, through the parent-death signal) it does
//! the same and exits. Not covered: processes started outside the tree (`systemd-run`, `at`,
//! `ssh`), and a supervisor itself killed by SIGKILL (the OOM killer).

use crate::sys::{self, Reaped};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The subcommand name the binary dispatches on before anything else.
pub const SUBCOMMAND: &str = "__supervise";

/// Run `argv` supervised; never returns.
pub fn main(argv: &[String]) -> ! {
    sys::block_supervisor_signals();
    if let Err(e) = sys::become_subreaper() {
        eprintln!("studymake: error: cannot supervise the job (PR_SET_CHILD_SUBREAPER: {e})");
        std::process::exit(127);
    }
    let Some(program) = argv.first() else {
        eprintln!("studymake: error: __supervise needs a command");
        std::process::exit(2);
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..]).stdin(Stdio::null());
    sys::unblocked_child(&mut cmd);
    let main_pid = match cmd.spawn() {
        Ok(c) => c.id() as i32,
        Err(e) => {
            eprintln!("studymake: error: could not start `{program}`: {e}");
            std::process::exit(127);
        }
    };
    loop {
        let sig = sys::wait_signal();
        if sig != libc::SIGCHLD {
            end_all();
            // Ended as asked, by the signal that asked (the raw wait status of a death by
            // signal `sig` is `sig`).
            sys::exit_like(sig);
        }
        loop {
            match sys::reap() {
                Reaped::Child(pid, status) if pid == main_pid => {
                    end_all();
                    sys::exit_like(status);
                }
                Reaped::Child(..) => continue,
                Reaped::Running => break,
                Reaped::None => sys::exit_like(0),
            }
        }
    }
}

/// Kill every process left in this supervisor's tree and reap it; say in the log what was ended.
fn end_all() {
    let mut ended: Vec<(i32, String)> = Vec::new();
    loop {
        loop {
            match sys::reap() {
                Reaped::Child(..) => continue,
                Reaped::Running => break,
                Reaped::None => {
                    report(&ended);
                    return;
                }
            }
        }
        // Killing the direct children leaves theirs orphaned, reparented here: the next round
        // kills those.
        for pid in children() {
            if !ended.iter().any(|(p, _)| *p == pid) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                ended.push((pid, comm));
            }
            sys::kill(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn report(ended: &[(i32, String)]) {
    if ended.is_empty() {
        return;
    }
    let named: Vec<String> = ended
        .iter()
        .take(5)
        .map(|(p, c)| format!("pid {p} `{c}`"))
        .collect();
    eprintln!(
        "studymake: ended {} process{} the recipe left running ({}{})",
        ended.len(),
        if ended.len() == 1 { "" } else { "es" },
        named.join(", "),
        if ended.len() > 5 { ", ..." } else { "" }
    );
}

/// This process's children: `/proc/self/task/*/children`, or a scan of `/proc/*/stat` for this
/// parent where the kernel does not provide that file.
fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let path = format!("/proc/{me}/task/{me}/children");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(me)
        })
        .collect()
}
