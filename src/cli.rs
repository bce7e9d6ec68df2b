//! The command line: the composition root that hands the recipe catalog to the engine.

use crate::job::JobSpec;
use crate::recipes::Builtins;

/// Run studymake with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "__worker" {
        let result = JobSpec::load(std::path::Path::new(&args[2]))
            .and_then(|job| Builtins::new().run_job(&job));
        return match result {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("studymake worker: error: {e}");
                e.exit_code()
            }
        };
    }
    eprintln!("studymake: the engine is not built yet");
    2
}
