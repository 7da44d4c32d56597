//! The one way every command reports a failure: `error: <message>` (and `hint: <hint>`)
//! on stderr, and with `--json` the same as one JSON document on stdout:
//!
//! ```json
//! {"error": {"kind": "bad-input", "exit_code": 5, "message": "...", "hint": null, ...}}
//! ```
//!
//! `kind` and `exit_code` come from the exit-code table ([`ExitCode`]); further fields
//! (`stage`, `io_kind`, ...) are structured details of the failure.

use crate::exit::ExitCode;
use serde_json::{Map, Value};
use std::error::Error;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// A failure as the user sees it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub exit: ExitCode,
    pub message: String,
    pub hint: Option<String>,
    /// More fields of the JSON error object, beside kind, exit_code, message and hint.
    pub details: Map<String, Value>,
}

impl Failure {
    pub fn new(exit: ExitCode, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into(), hint: None, details: Map::new() }
    }

    /// A library error: its message followed by those of its sources that it does not
    /// already include, and the kind of I/O failure behind it, if any (`io_kind`).
    pub fn from_error(exit: ExitCode, error: &(dyn Error + 'static)) -> Failure {
        let mut message = error.to_string();
        let mut io_kind = None;
        let mut cause: Option<&(dyn Error + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                io_kind.get_or_insert(io.kind());
            }
            let text = e.to_string();
            if !message.contains(&text) {
                message += &format!(": {text}");
            }
            cause = e.source();
        }
        let failure = Failure::new(exit, message);
        match io_kind {
            Some(kind) => failure.detail("io_kind", format!("{kind:?}")),
            None => failure,
        }
    }

    pub fn with_hint(mut self, hint: Option<impl Into<String>>) -> Failure {
        self.hint = hint.map(Into::into);
        self
    }

    /// Adds a structured field to the JSON error object.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Failure {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// `{"error": {"kind", "exit_code", "message", "hint", ...details}}`.
    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("kind".into(), self.exit.kind().into());
        error.insert("exit_code".into(), self.exit.code().into());
        error.insert("message".into(), self.message.clone().into());
        error.insert("hint".into(), self.hint.clone().into());
        for (k, v) in &self.details {
            error.entry(k.clone()).or_insert_with(|| v.clone());
        }
        serde_json::json!({ "error": error })
    }

    /// Prints the failure (stderr; with `json` also the JSON document on stdout) and
    /// returns its exit code.
    pub fn report(self, json: bool) -> ExitCode {
        eprintln!("error: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("hint: {h}");
        }
        if json {
            crate::outln!("{}", serde_json::to_string_pretty(&self.to_json()).unwrap_or_default());
        }
        self.exit
    }
}

/// Prints `value` as pretty JSON on stdout; a value that cannot be serialized is an
/// internal error.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            crate::outln!("{text}");
            ExitCode::Ok
        }
        Err(e) => Failure::new(ExitCode::Internal, format!("cannot write JSON: {e}")).report(false),
    }
}

/// Set once stdout can no longer be written (the reader went away, as `| head` does).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout for the commands of both binaries, through [`out!`](crate::out) and
/// [`outln!`](crate::outln). Unlike `print!`, which panics (exit 101) when the reader
/// has closed the pipe, a write that fails ends all further output quietly: the command
/// still finishes its work and exits with its own status (so `check --json | head`
/// still exits 10 for a refused set, and nothing stops half way through an install). A closed pipe (EPIPE) is silent, as the reader asked for no more; any
/// other failure (a full disk behind a redirect) is said once on stderr.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to stdout: {e}");
        }
    }
}

/// `print!` that ends output quietly on a closed stdout instead of panicking; see
/// [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::report::write_stdout(format_args!($($arg)*)) };
}

/// `println!` that ends output quietly on a closed stdout instead of panicking; see
/// [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => { $crate::report::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::report::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot write /x")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn one_shape_with_the_cause_and_its_io_kind() {
        let e = Outer(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"));
        let f = Failure::from_error(ExitCode::Environment, &e).with_hint(Some("free some space"));
        assert_eq!(
            f.to_json(),
            serde_json::json!({"error": {
                "kind": "environment", "exit_code": 9, "message": "cannot write /x: disk full",
                "hint": "free some space", "io_kind": "StorageFull"
            }})
        );
        let plain = Failure::new(ExitCode::Usage, "bad").detail("stage", "modules").to_json();
        assert_eq!(plain["error"]["hint"], Value::Null);
        assert_eq!(plain["error"]["stage"], "modules");
    }
}
