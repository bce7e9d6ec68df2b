//! The studymake binary: parse the command line, run, exit with the documented code.

mod cli;

fn main() {
    // A closed pipe (`studymake status | head`) ends the program quietly, as it does for other
    // command-line tools, instead of panicking on the next print.
    // A write past the file size limit (`ulimit -f`) fails with EFBIG, reported with its path,
    // instead of killing studymake by SIGXFSZ half-way through publishing. Workers and the
    // commands they run inherit this, so their writes fail the same clear way.
    // SAFETY: setting the disposition of signals before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    std::process::exit(cli::main());
}
