//! The studymake binary: parse the command line, run, exit with the documented code.

mod cli;

fn main() {
    // A closed pipe ends studymake quietly; a write past `ulimit -f` is an error with its path.
    studymake_engine::sys::init_process();
    std::process::exit(cli::main());
}
