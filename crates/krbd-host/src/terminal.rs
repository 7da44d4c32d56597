//! The terminal side of the libraries' `Listener`: progress bars and messages on stderr,
//! for krbd-host and krbd-forge alike.
//!
//! On a terminal, tasks are progress bars. When stderr is not a terminal (CI logs, a pipe),
//! bars would draw nothing, so tasks become plain lines instead: one when a task starts,
//! one every [`LINE_INTERVAL`] while it runs, and one when a long task ends. `quiet` (the
//! commands' `--quiet` and `--json`) silences both; warnings are always written.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use krbd_progress::{Listener, Unit};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a running task writes a plain line when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// A monotonic time source: how long since the clock's own origin.
pub trait Clock: Send + Sync {
    fn elapsed(&self) -> Duration;
}

/// The real clock.
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

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

/// Checks that every command of `cmd` (a binary's whole clap tree, named `bin`) takes the
/// global `--quiet`/`-q`/`--verbose`/`-v` after its name and `--quiet` before it, and that the
/// two conflict. Both binaries' tests call it on their own tree.
pub fn check_verbosity_flags(cmd: &clap::Command, bin: &str) -> Result<(), String> {
    fn paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            paths(sub, &path, out);
            out.push(path);
        }
    }
    let mut all = Vec::new();
    paths(cmd, &[], &mut all);
    let shows_help = |args: Vec<String>| match cmd.clone().try_get_matches_from(&args) {
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => Ok(()),
        other => Err(format!("{args:?}: {:?}", other.map(|_| "parsed without --help")).replace('\n', " ")),
    };
    for path in &all {
        for flag in ["--quiet", "-q", "--verbose", "-v"] {
            shows_help([&[bin.to_string()][..], path, &[flag.to_string(), "--help".to_string()]].concat())?;
        }
        shows_help([&[bin.to_string(), "--quiet".to_string()][..], path, &["--help".to_string()]].concat())?;
    }
    let Some(first) = all.iter().find(|p| p.len() == 1) else { return Err("no commands".into()) };
    match cmd.clone().try_get_matches_from([bin, &first[0], "-q", "-v"]) {
        Err(e) if e.kind() == clap::error::ErrorKind::ArgumentConflict => Ok(()),
        _ => Err(format!("{bin} {} -q -v: no conflict", first[0])),
    }
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
    lines: Option<Arc<Lines>>,
    ticker: Mutex<Option<Ticker>>,
    quiet: bool,
}

impl Terminal {
    /// `quiet`: only warnings (for `--json`; the global `--quiet` makes every terminal
    /// quiet). Progress bars when stderr is a terminal, plain lines otherwise.
    pub fn new(quiet: bool) -> Terminal {
        let quiet = quiet || self::quiet();
        if std::io::stderr().is_terminal() {
            Terminal { bar: Mutex::new(None), lines: None, ticker: Mutex::new(None), quiet }
        } else {
            Terminal::plain(quiet, Box::new(std::io::stderr()), Arc::new(SystemClock::default()), Some(LINE_INTERVAL))
        }
    }

    /// Plain lines to `out`, timed by `clock`. `tick`: how often a background thread checks
    /// whether a running task is due a line (`None`: only [`Terminal::tick`] and progress
    /// reports do, which is what a test with a fake clock wants).
    pub fn plain(quiet: bool, out: Box<dyn Write + Send>, clock: Arc<dyn Clock>, tick: Option<Duration>) -> Terminal {
        let lines = Lines { out: Mutex::new(out), clock, task: Mutex::new(None), tick };
        Terminal { bar: Mutex::new(None), lines: Some(Arc::new(lines)), ticker: Mutex::new(None), quiet }
    }

    /// Writes the running task's line if one is due (plain mode only).
    pub fn tick(&self) {
        if let Some(lines) = &self.lines {
            lines.tick();
        }
    }

    fn start_bar(&self, name: &str, total: Option<u64>, unit: Unit) {
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

    fn stop_ticker(&self) {
        if let Some(ticker) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            drop(ticker.stop);
            let _ = ticker.thread.join();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

impl Listener for Terminal {
    fn warning(&self, message: &str) {
        let line = format!("warning: {message}");
        if let Some(lines) = &self.lines {
            return lines.write(&line);
        }
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn info(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.lines {
            Some(lines) => lines.write(message),
            None => eprintln!("{message}"),
        }
    }

    fn task_start(&self, name: &str, total: Option<u64>, unit: Unit) {
        if self.quiet {
            return;
        }
        let Some(lines) = &self.lines else {
            return self.start_bar(name, total, unit);
        };
        self.stop_ticker();
        lines.start(name, total, unit);
        if let Some(every) = lines.tick {
            let (stop, wait) = mpsc::channel::<()>();
            let shared = Arc::clone(lines);
            let thread = std::thread::spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(every) {
                    shared.tick();
                }
            });
            if let Ok(mut slot) = self.ticker.lock() {
                *slot = Some(Ticker { stop, thread });
            }
        }
    }

    fn task_progress(&self, done: u64) {
        if let Some(lines) = &self.lines {
            return lines.progress(done);
        }
        if let Some(bar) = self.bar.lock().ok().and_then(|b| b.clone()) {
            bar.set_position(done);
        }
    }

    fn task_finish(&self) {
        if let Some(lines) = &self.lines {
            self.stop_ticker();
            return lines.finish();
        }
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}

/// The background thread that keeps a silent long task talking; dropping `stop` ends it.
struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

/// Plain-line progress: the writer, the clock and the running task.
struct Lines {
    out: Mutex<Box<dyn Write + Send>>,
    clock: Arc<dyn Clock>,
    task: Mutex<Option<Task>>,
    tick: Option<Duration>,
}

struct Task {
    name: String,
    total: Option<u64>,
    unit: Unit,
    done: u64,
    started: Duration,
    last_line: Duration,
}

impl Lines {
    fn write(&self, line: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn start(&self, name: &str, total: Option<u64>, unit: Unit) {
        let now = self.clock.elapsed();
        let line = match total {
            Some(t) => format!("{name}: started ({})", amount(t, unit)),
            None => format!("{name}: started"),
        };
        let task = Task { name: name.to_string(), total, unit, done: 0, started: now, last_line: now };
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
        self.write(&line);
    }

    fn progress(&self, done: u64) {
        if let Some(task) = self.task.lock().ok().as_deref_mut().and_then(Option::as_mut) {
            task.done = done;
        }
        self.tick();
    }

    fn tick(&self) {
        let now = self.clock.elapsed();
        let line = match self.task.lock().ok().as_deref_mut().and_then(Option::as_mut) {
            Some(task) if now.saturating_sub(task.last_line) >= LINE_INTERVAL => {
                task.last_line = now;
                task.running_line(now)
            }
            _ => return,
        };
        self.write(&line);
    }

    fn finish(&self) {
        let now = self.clock.elapsed();
        let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) else { return };
        let took = now.saturating_sub(task.started);
        if took >= LINE_INTERVAL {
            self.write(&format!("{}: done in {}s", task.name, took.as_secs()));
        }
    }
}

impl Task {
    fn running_line(&self, now: Duration) -> String {
        let secs = now.saturating_sub(self.started).as_secs();
        match self.total {
            Some(t) => format!("{}: {} of {}, {secs}s", self.name, amount(self.done, self.unit), amount(t, self.unit)),
            None if self.done > 0 => format!("{}: {}, {secs}s", self.name, amount(self.done, self.unit)),
            None => format!("{}: running, {secs}s", self.name),
        }
    }
}

fn amount(n: u64, unit: Unit) -> String {
    match unit {
        Unit::Bytes if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        Unit::Bytes => format!("{n} bytes"),
        Unit::Files => format!("{n} files"),
        Unit::Steps => format!("{n} steps"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct FakeClock(Mutex<Duration>);

    impl FakeClock {
        fn advance(&self, by: Duration) {
            if let Ok(mut now) = self.0.lock() {
                *now += by;
            }
        }
    }

    impl Clock for FakeClock {
        fn elapsed(&self) -> Duration {
            self.0.lock().map(|d| *d).unwrap_or_default()
        }
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned()
        }
    }

    /// A compile-like run: a short task, then a long one reporting progress, then a long
    /// silent one that only the ticker keeps talking.
    fn run(quiet: bool) -> String {
        let out = Shared::default();
        let clock = Arc::new(FakeClock::default());
        let t = Terminal::plain(quiet, Box::new(out.clone()), clock.clone(), None);
        t.info("target 6.1.0-1-amd64 (Debian 6.1.1-1)");
        t.task_start("lay out the kernel headers", Some(3), Unit::Files);
        t.task_progress(3);
        t.task_finish();
        t.task_start("compile libceph", Some(120), Unit::Files);
        for done in 1..=120u64 {
            clock.advance(Duration::from_millis(100));
            t.task_progress(done);
        }
        t.task_finish();
        t.task_start("booting the kernel", None, Unit::Steps);
        clock.advance(Duration::from_secs(4));
        t.tick();
        clock.advance(Duration::from_secs(2));
        t.tick();
        t.task_finish();
        t.warning("something to read");
        out.text()
    }

    #[test]
    fn plain_lines_when_not_a_terminal() {
        let text = run(false);
        let expected = "target 6.1.0-1-amd64 (Debian 6.1.1-1)\n\
            lay out the kernel headers: started (3 files)\n\
            compile libceph: started (120 files)\n\
            compile libceph: 50 files of 120 files, 5s\n\
            compile libceph: 100 files of 120 files, 10s\n\
            compile libceph: done in 12s\n\
            booting the kernel: started\n\
            booting the kernel: running, 6s\n\
            booting the kernel: done in 6s\n\
            warning: something to read\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn quiet_keeps_only_warnings() {
        assert_eq!(run(true), "warning: something to read\n");
    }

    #[test]
    fn bytes_are_shown_in_mib() {
        let out = Shared::default();
        let clock = Arc::new(FakeClock::default());
        let t = Terminal::plain(false, Box::new(out.clone()), clock.clone(), None);
        t.task_start("download linux-image", Some(70 << 20), Unit::Bytes);
        clock.advance(LINE_INTERVAL);
        t.task_progress(35 << 20);
        assert!(out.text().ends_with("download linux-image: 35.0 MiB of 70.0 MiB, 5s\n"), "{}", out.text());
    }

    #[test]
    fn the_ticker_thread_writes_for_a_silent_task_and_stops_with_it() {
        let out = Shared::default();
        let clock = Arc::new(FakeClock::default());
        let t = Terminal::plain(false, Box::new(out.clone()), clock.clone(), Some(Duration::from_millis(5)));
        t.task_start("booting the kernel", None, Unit::Steps);
        clock.advance(LINE_INTERVAL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.text().contains("running, 5s") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        t.task_finish();
        assert!(out.text().contains("booting the kernel: running, 5s\n"), "{}", out.text());
        assert!(t.ticker.lock().map(|s| s.is_none()).unwrap_or(false));
    }
}
