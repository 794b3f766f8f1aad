//! What a long run shows while it works: a progress bar per phase on a
//! terminal, and plain lines (one per object, as Terraform prints them)
//! otherwise, so that logs of CI runs stay readable.

use std::io::IsTerminal as _;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    terminal: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// Bars when standard error is a terminal, lines otherwise.
    pub fn new() -> Self {
        Self { terminal: std::io::stderr().is_terminal(), bar: Mutex::new(None) }
    }

    /// Plain lines only (tests, `-json`).
    pub fn plain() -> Self {
        Self { terminal: false, bar: Mutex::new(None) }
    }

    /// Starts a phase of `total` steps (`observe`, `apply tenants`, …).
    pub fn phase(&self, name: &str, total: usize) {
        let mut bar = self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(previous) = bar.take() {
            previous.finish_and_clear();
        }
        if !self.terminal || total == 0 {
            return;
        }
        let next = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{msg:>18} [{bar:40}] {pos}/{len} {elapsed}") {
            next.set_style(style.progress_chars("=> "));
        }
        next.set_message(name.to_owned());
        *bar = Some(next);
    }

    /// One step done: the bar moves on a terminal; otherwise the line is printed.
    pub fn step(&self, line: &str) {
        let bar = self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match bar.as_ref() {
            Some(bar) => bar.inc(1),
            None => println!("{line}"),
        }
    }

    /// `count` steps done that print nothing without a terminal (observing
    /// and planning: lines per object would drown the plan).
    pub fn advance(&self, count: usize) {
        let bar = self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bar) = bar.as_ref() {
            bar.inc(count as u64);
        }
    }

    /// A line that must be seen either way (failures), above the bar.
    pub fn note(&self, line: &str) {
        let bar = self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match bar.as_ref() {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        let mut bar = self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bar) = bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
