//! The terminal side of the libraries' `Listener`: progress bars and messages on stderr,
//! for krbd-host and krbd-forge alike.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use krbd_progress::{Listener, Unit};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// How much the commands say on stderr: the global `--quiet` / `--verbose` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only warnings and errors: no progress, no info lines, no summaries.
    Quiet,
    Normal,
    /// Also the detail a command has (hunk by hunk for a build, PG by PG for a plan).
    Verbose,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(1);

/// Set once by the command line, from the global flags.
pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        2 => Verbosity::Verbose,
        _ => Verbosity::Normal,
    }
}

/// `--quiet` was given.
pub fn quiet() -> bool {
    verbosity() == Verbosity::Quiet
}

/// `--verbose` was given.
pub fn verbose() -> bool {
    verbosity() == Verbosity::Verbose
}

/// The global flags, shared by krbd-forge and krbd-host (`#[command(flatten)]` on the top
/// level; `global` makes them valid after any subcommand too).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct VerbosityArgs {
    /// Print only warnings and errors: no progress, info lines or summaries on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail where a command has any (a build's hunks, a plan's PGs).
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

impl VerbosityArgs {
    /// Makes the flags the process's verbosity.
    pub fn apply(self) {
        set_verbosity(match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, true) => Verbosity::Verbose,
            (false, false) => Verbosity::Normal,
        });
    }
}

/// Progress bars and messages on stderr, for the terminal.
pub struct Terminal {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Terminal {
    /// `quiet`: only warnings (for `--json`); the global `--quiet` makes every terminal quiet.
    pub fn new(quiet: bool) -> Terminal {
        Terminal { bar: Mutex::new(None), quiet: quiet || self::quiet() }
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
