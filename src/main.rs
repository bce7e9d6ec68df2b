//! The studymake binary: parse the command line, run, exit with the documented code.

mod cli;

fn main() {
    // A closed pipe ends studymake quietly; a write past `ulimit -f` is an error with its path.
    studymake_engine::sys::init_process();
    // A job's supervisor: dispatched before anything else is set up (it costs an exec and little
    // more per job).
    use studymake_engine::executor::supervise;
    if std::env::args_os().nth(1).as_deref() == Some(supervise::SUBCOMMAND.as_ref()) {
        // Its arguments are the job's argv, which studymake built from UTF-8 strings.
        let argv: Vec<String> = std::env::args_os()
            .skip(2)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        supervise::main(&argv);
    }
    std::process::exit(cli::main());
}
