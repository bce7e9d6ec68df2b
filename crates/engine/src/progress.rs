//! User-facing build messages: a live progress bar on a terminal (indicatif), one plain line per
//! event elsewhere (CI, logs). Kept apart from tracing, which is for `-v` diagnostics.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

/// Prints build events.
pub struct Reporter {
    bar: Option<ProgressBar>,
    running: BTreeMap<String, Instant>,
    done: usize,
    total: usize,
    verbose: bool,
}

impl Reporter {
    /// A reporter that draws a bar only when stderr is a terminal.
    pub fn new(verbose: bool) -> Self {
        Reporter {
            bar: None,
            running: BTreeMap::new(),
            done: 0,
            total: 0,
            verbose,
        }
    }

    /// Begin a build of `total` targets.
    pub fn start(&mut self, total: usize) {
        self.total = total;
        self.done = 0;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("[{pos}/{len}] {elapsed_precise} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            self.bar = Some(bar);
        }
    }

    /// Print one line above the bar (or plainly).
    pub fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => println!("{msg}"),
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        if let Some(b) = &self.bar {
            b.set_position(self.done as u64);
        }
    }

    /// A target changed state: `built`, `restored`, `skipped`, `building`.
    pub fn event(&mut self, what: &str, target: &str, detail: &str) {
        if what != "building" {
            self.tick();
        }
        let prefix = format!("[{}/{}]", self.done, self.total);
        let msg = if detail.is_empty() {
            format!("{prefix} {what} {target}")
        } else {
            format!("{prefix} {what} {target}: {detail}")
        };
        self.line(&msg);
    }

    /// A target was fresh.
    pub fn fresh(&mut self, target: &str) {
        self.tick();
        if self.verbose {
            let msg = format!("[{}/{}] fresh {target}", self.done, self.total);
            self.line(&msg);
        }
    }

    /// A target failed; show the log's last lines.
    pub fn fail(&mut self, target: &str, message: &str, log: Option<&Path>) {
        self.tick();
        let mut msg = format!("[{}/{}] FAILED {target}: {message}", self.done, self.total);
        if let Some(log) = log {
            msg.push_str(&format!("\n  log: {}", log.display()));
            let tail = crate::executor::tail(log, 12);
            if !tail.trim().is_empty() {
                for l in tail.lines() {
                    msg.push_str(&format!("\n  | {l}"));
                }
            }
        }
        match &self.bar {
            Some(b) => b.println(&msg),
            None => eprintln!("{msg}"),
        }
    }

    /// A target started or stopped running.
    pub fn running(&mut self, target: &str, started: bool) {
        if started {
            self.running.insert(target.to_string(), Instant::now());
        } else {
            self.running.remove(target);
        }
        if let Some(b) = &self.bar {
            let list: Vec<String> = self
                .running
                .iter()
                .map(|(t, s)| format!("{t} ({}s)", s.elapsed().as_secs()))
                .collect();
            b.set_message(list.join(", "));
        }
    }

    /// Clear the bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
