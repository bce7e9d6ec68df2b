//! The engine's only `unsafe` code: the POSIX calls the standard library does not wrap, each
//! behind a safe function whose invariants are written at the call.
//!
//! * signals: SIGINT and SIGTERM set a flag the build polls ([`interrupted`]); SIGPIPE ends the
//!   program quietly and SIGXFSZ turns a write past `ulimit -f` into an error ([`init_process`]);
//! * processes: an external command dies with its worker ([`die_with_parent`]); cancelling signals the group ([`terminate_group`]); whether a lock's
//!   holder is still alive ([`process_alive`]); a job's supervisor ([`supervised`]) is a child
//!   subreaper ([`become_subreaper`]) that waits for signals ([`wait_signal`]), reaps
//!   ([`reap`]), kills ([`kill`]) and ends as its main process did ([`exit_like`]);
//! * files: swapping two directories atomically ([`exchange`]) and allocating room in a file
//!   before writing it ([`allocate`]).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT, SIGTERM, SIGHUP or SIGQUIT once [`install_signal_handlers`] ran.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Route SIGINT, SIGTERM, SIGHUP (a closed terminal) and SIGQUIT to [`interrupted`] so a build
/// cancels its jobs and reclaims their scratch whichever of them ends it.
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether one of those signals arrived since [`install_signal_handlers`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Process-wide signal dispositions, set once at start, before any thread: a closed pipe
/// (`studymake status | head`) ends the program quietly instead of panicking on the next print,
/// and a write past the file size limit (`ulimit -f`) fails with EFBIG, reported with its path,
/// instead of killing studymake by SIGXFSZ half-way through publishing. Workers and the
/// commands they run inherit both.
pub fn init_process() {
    // SAFETY: setting the disposition of two signals to a default or to ignore, before any
    // thread starts; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Make a child die with its parent (an external command dies with its worker); a child whose
/// parent died first ends at once.
pub fn die_with_parent(cmd: &mut Command) {
    set_up_child(cmd, None, libc::SIGKILL, false);
}

/// What a child does between fork and exec: change its signal mask by `mask` (`SIG_BLOCK` or
/// `SIG_UNBLOCK` of the supervisor's signals), get `deathsig` when its parent dies, end at once
/// when that already happened, and lead a new process group when `own_group`.
fn set_up_child(
    cmd: &mut Command,
    mask: Option<libc::c_int>,
    deathsig: libc::c_int,
    own_group: bool,
) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    let set = supervisor_sigset();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (sigprocmask, prctl, getppid, _exit, setpgid) on a set built before the fork, allocating
    // nothing. A blocked mask survives exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(how) = mask {
                libc::sigprocmask(how, &set, std::ptr::null_mut());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, deathsig);
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            if own_group {
                libc::setpgid(0, 0);
            }
            Ok(())
        });
    }
}

/// Send SIGTERM to the process group a child of [`isolate`] leads.
pub fn terminate_group(pid: u32) {
    // SAFETY: kill only sends a signal; the group is one this process created (its leader's
    // pid), so no unrelated process is addressed while the child has not been reaped.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGTERM);
    }
}

/// Whether a process with this pid exists on this host.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Swap two paths atomically (`renameat2(RENAME_EXCHANGE)`; both must exist).
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call; renameat2 does not
    // retain them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Allocate `len` bytes of `file` from `offset` (`posix_fallocate`), so a later write there
/// cannot fail for want of space.
pub fn allocate(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: the descriptor is valid for the borrow of `file`; posix_fallocate only allocates
    // blocks and changes no memory of this process.
    let rc = unsafe {
        libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// The signals a job's supervisor takes synchronously ([`wait_signal`]): its children's ends and
/// the requests to stop.
const SUPERVISOR_SIGNALS: [libc::c_int; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
];

fn supervisor_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a set this function owns.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SUPERVISOR_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Start `cmd` as a job's supervisor: it leads its own process group, receives SIGTERM when
/// studymake dies (by any signal, SIGKILL included), and starts with the signals it waits for
/// blocked, so none arrives before it waits. A supervisor whose parent died first ends at once.
pub fn supervised(cmd: &mut Command) {
    set_up_child(cmd, Some(libc::SIG_BLOCK), libc::SIGTERM, true);
}

/// For the supervisor's main process: the signals its supervisor blocked are unblocked again,
/// and it dies with its supervisor.
pub fn unblocked_child(cmd: &mut Command) {
    set_up_child(cmd, Some(libc::SIG_UNBLOCK), libc::SIGKILL, false);
}

/// Make this process a child subreaper: every orphaned descendant is reparented to it, not to
/// pid 1, so "no child left" means "nothing this process started is left".
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with an integer argument changes only this process's attributes.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Block the supervisor's signals in this process (already blocked when it was started by
/// [`supervised`]; done again so a supervisor started otherwise is correct too).
pub fn block_supervisor_signals() {
    let set = supervisor_sigset();
    // SAFETY: sigprocmask on a valid, initialised set; the old mask is not asked for.
    unsafe {
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Wait for one of the supervisor's (blocked) signals; its number.
pub fn wait_signal() -> libc::c_int {
    let set = supervisor_sigset();
    loop {
        // SAFETY: sigwaitinfo reads an initialised set and writes into an info struct this
        // function owns.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&set, &mut info)
        };
        if sig > 0 {
            return sig;
        }
        // EINTR: wait again.
    }
}

/// What [`reap`] found.
pub enum Reaped {
    /// A child ended: its pid and raw wait status.
    Child(i32, libc::c_int),
    /// Children remain, none has ended.
    Running,
    /// No child at all.
    None,
}

/// Reap one ended child without blocking.
pub fn reap() -> Reaped {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into a local; WNOHANG never blocks.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        0 => Reaped::Running,
        p if p > 0 => Reaped::Child(p, status),
        _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => Reaped::Running,
        _ => Reaped::None,
    }
}

/// Send `sig` to process `pid` (a child of this process, or reparented to it: never reaped
/// yet, so the pid cannot have been reused).
pub fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill only sends a signal.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// End this process the way a child with raw wait `status` ended: the same exit code, or death
/// by the same signal (with its default action), so whoever waits for it sees the same status.
pub fn exit_like(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: restoring a signal's default action, unblocking it and raising it in this
        // single-threaded process; no handler runs.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
        }
        std::process::exit(128 + sig)
    }
    std::process::exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    })
}
