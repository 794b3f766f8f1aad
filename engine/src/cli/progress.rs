//! What a long run shows while it works: progress bars on a terminal (one
//! per phase; while applying app instances and domains, one per target, so
//! a slow on-premises host shows as the bar that lags), and plain lines (one
//! per object, as Terraform prints them) otherwise, so that logs of CI runs
//! stay readable.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    terminal: bool,
    multi: MultiProgress,
    /// The current phase's bars by target (`""`: the phase's one bar, or
    /// its objects on no target).
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Progress {
    /// Bars when standard error is a terminal, lines otherwise.
    pub fn new() -> Self {
        Self::with_terminal(std::io::stderr().is_terminal())
    }

    /// Plain lines only (tests, `-json`).
    pub fn plain() -> Self {
        Self::with_terminal(false)
    }

    fn with_terminal(terminal: bool) -> Self {
        Self {
            terminal,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ProgressBar>> {
        // A panic while holding this lock leaves only bars behind, which stay usable.
        self.bars.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a phase of `total` steps (`observe`, `apply tenants`, …).
    pub fn phase(&self, name: &str, total: usize) {
        self.phase_per_target(name, &BTreeMap::from([(String::new(), total)]));
    }

    /// Starts a phase with a bar per target, of that target's number of steps.
    pub fn phase_per_target(&self, name: &str, totals: &BTreeMap<String, usize>) {
        let mut bars = self.bars();
        for (_, previous) in std::mem::take(&mut *bars) {
            previous.finish_and_clear();
            self.multi.remove(&previous);
        }
        if !self.terminal {
            return;
        }
        for (target, total) in totals.iter().filter(|(_, total)| **total > 0) {
            let bar = self.multi.add(ProgressBar::new(*total as u64));
            if let Ok(style) = ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} {elapsed}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(if target.is_empty() { name.to_owned() } else { format!("{name} @ {target}") });
            bars.insert(target.clone(), bar);
        }
    }

    /// One step done: the bar moves on a terminal; otherwise the line is printed.
    pub fn step(&self, line: &str) {
        self.step_on("", line);
    }

    /// One step on `target` done.
    pub fn step_on(&self, target: &str, line: &str) {
        let bars = self.bars();
        match bars.get(target).or_else(|| bars.values().next()) {
            Some(bar) => bar.inc(1),
            None => println!("{line}"),
        }
    }

    /// `count` steps done that print nothing without a terminal (observing
    /// and planning: lines per object would drown the plan).
    pub fn advance(&self, count: usize) {
        if let Some(bar) = self.bars().values().next() {
            bar.inc(count as u64);
        }
    }

    /// A line that must be seen either way (failures), above the bars.
    pub fn note(&self, line: &str) {
        if self.bars().is_empty() || self.multi.println(line).is_err() {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        for (_, bar) in std::mem::take(&mut *self.bars()) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
