//! The terminal side of the libraries' `Listener`: progress bars and messages on stderr,
//! for krbd-host and krbd-forge alike.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use krbd_progress::{Listener, Unit};
use std::sync::Mutex;

/// Progress bars and messages on stderr, for the terminal.
pub struct Terminal {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Terminal {
    /// `quiet`: only warnings (for `--json` and `--quiet`).
    pub fn new(quiet: bool) -> Terminal {
        Terminal { bar: Mutex::new(None), quiet }
    }
}

impl Listener for Terminal {
    fn warning(&self, message: &str) {
        let line = format!("warning: {message}");
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn info(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    fn task_start(&self, name: &str, total: Option<u64>, unit: Unit) {
        if self.quiet {
            return;
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let template = match (total, unit) {
            (Some(_), Unit::Bytes) => "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            (Some(_), _) => "{msg:32} [{bar:30}] {pos}/{len} {elapsed}",
            (None, _) => "{msg:32} {spinner} {elapsed}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.to_string());
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn task_progress(&self, done: u64) {
        if let Some(bar) = self.bar.lock().ok().and_then(|b| b.clone()) {
            bar.set_position(done);
        }
    }

    fn task_finish(&self) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}
