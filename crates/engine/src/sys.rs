//! The engine's only `unsafe` code: the POSIX calls the standard library does not wrap, each
//! behind a safe function whose invariants are written at the call.
//!
//! * signals: SIGINT and SIGTERM set a flag the build polls ([`interrupted`]); SIGPIPE ends the
//!   program quietly and SIGXFSZ turns a write past `ulimit -f` into an error ([`init_process`]);
//! * processes: a worker dies with studymake and leads its own process group ([`isolate`],
//!   [`die_with_parent`]); cancelling signals the group ([`terminate_group`]); whether a lock's
//!   holder is still alive ([`process_alive`]);
//! * files: swapping two directories atomically ([`exchange`]) and allocating room in a file
//!   before writing it ([`allocate`]).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT/SIGTERM once [`install_signal_handlers`] ran.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to [`interrupted`] so a build can cancel its jobs cleanly.
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`install_signal_handlers`].
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

/// Make a child die with its parent (a killed studymake leaves no orphan writing to scratch)
/// and lead its own process group (so cancelling it also stops what it started). A child whose
/// parent died before it asked to die with it ends at once instead.
pub fn isolate(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (prctl, getppid, _exit, setpgid), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            libc::setpgid(0, 0);
            Ok(())
        });
    }
}

/// Make a child die with its parent (an external command dies with its worker); a child whose
/// parent died first ends at once.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (prctl, getppid, _exit), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
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
