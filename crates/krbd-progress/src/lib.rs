//! Progress and warnings from library code.
//!
//! Library crates never write to the terminal. They report through a [`Listener`] that the
//! binary implements (progress bars and a summary on stderr, or nothing under `--json`).

/// The unit of a task's progress counter, so that a front end can format it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Files,
    Steps,
}

/// Receives what the pipeline has to say while it runs.
///
/// Tasks are strictly sequential: a `task_start` is followed by any number of
/// `task_progress` calls and exactly one `task_finish`.
pub trait Listener: Sync {
    /// Something a person should read, though the run goes on.
    fn warning(&self, message: &str);
    /// A line of what is being done.
    fn info(&self, message: &str);
    /// A long step begins; `total` is in `unit`s when known.
    fn task_start(&self, name: &str, total: Option<u64>, unit: Unit);
    /// How far the current task is, in its unit (absolute, not a delta).
    fn task_progress(&self, done: u64);
    /// The current task is over.
    fn task_finish(&self);
}

/// A listener that drops everything: for tests and `--quiet`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Listener for Silent {
    fn warning(&self, _: &str) {}
    fn info(&self, _: &str) {}
    fn task_start(&self, _: &str, _: Option<u64>, _: Unit) {}
    fn task_progress(&self, _: u64) {}
    fn task_finish(&self) {}
}

/// A listener that keeps every message, for tests that assert on what was reported.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: std::sync::Mutex<Vec<String>>,
}

impl Recorder {
    pub fn messages(&self) -> Vec<String> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }
    fn push(&self, s: String) {
        if let Ok(mut v) = self.events.lock() {
            v.push(s);
        }
    }
}

impl Listener for Recorder {
    fn warning(&self, message: &str) {
        self.push(format!("warning: {message}"));
    }
    fn info(&self, message: &str) {
        self.push(format!("info: {message}"));
    }
    fn task_start(&self, name: &str, _: Option<u64>, _: Unit) {
        self.push(format!("start: {name}"));
    }
    fn task_progress(&self, _: u64) {}
    fn task_finish(&self) {
        self.push("finish".to_string());
    }
}
