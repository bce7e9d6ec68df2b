//! The studymake binary: parse the command line, run, exit with the documented code.

fn main() {
    // A closed pipe (`studymake status | head`) ends the program quietly, as it does for other
    // command-line tools, instead of panicking on the next print.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(studymake::cli::main());
}
