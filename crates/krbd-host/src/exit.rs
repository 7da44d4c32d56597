//! The exit codes of every krbd-forge and krbd-host command: one table, each number with
//! one meaning in every command, so that scripts can tell failures apart. `--help` and
//! the README show the text [`table`] generates from it.

use std::io::ErrorKind;
use std::sync::LazyLock;

/// How a command ended. [`ExitCode::code`] is the process's exit status and
/// [`ExitCode::kind`] the `kind` of a `--json` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    Ok,
    Internal,
    Usage,
    Target,
    Fetch,
    BadInput,
    Patch,
    Toolchain,
    Compile,
    Environment,
    WouldNotLoad,
    Refused,
    RolledBack,
    NeedsAttention,
    NothingToRollBack,
    SetInconsistent,
    TestFailed,
    Guest,
    Cluster,
    Disagreement,
    SuiteEnvironment,
    Interrupted,
}

/// One row of the table: the number, the kind, and what it means.
struct Row {
    code: i32,
    kind: &'static str,
    meaning: &'static str,
}

const fn row(code: i32, kind: &'static str, meaning: &'static str) -> Row {
    Row { code, kind, meaning }
}

impl ExitCode {
    /// Every code, in the table's order.
    pub const ALL: [ExitCode; 22] = {
        use ExitCode::*;
        [
            Ok,
            Internal,
            Usage,
            Target,
            Fetch,
            BadInput,
            Patch,
            Toolchain,
            Compile,
            Environment,
            WouldNotLoad,
            Refused,
            RolledBack,
            NeedsAttention,
            NothingToRollBack,
            SetInconsistent,
            TestFailed,
            Guest,
            Cluster,
            Disagreement,
            SuiteEnvironment,
            Interrupted,
        ]
    };

    // One line per code; the numbers 0-14 and 130 are those the commands always used.
    fn row(self) -> Row {
        use ExitCode::*;
        match self {
            Ok => row(0, "ok", "success (check: every module loads and the set is consistent)"),
            Internal => row(1, "internal", "internal error (a bug: please report it); `placement diff` alone: the maps differ (as diff(1) exits 1 when files differ), not an error"),
            Usage => row(2, "usage", "usage error: bad flags or flag values, an unknown pool or OSD, an incremental that does not follow the map"),
            Target => row(3, "target", "unknown or unusable target kernel: no such release, no headers or source for it, modules built in, a set built for another release, a kernel not installed under --root, or a live swap asked for a kernel that is not running (use --no-reload)"),
            Fetch => row(4, "fetch", "fetching packages failed (apt, network, checksum)"),
            BadInput => row(5, "bad-input", "bad input: a corrupt or truncated package, module, map or Module.symvers; a map or incremental whose CRC does not match (placement: --no-crc-check reads it); an incremental where a full map is needed; an archive entry escaping its folder; a tarball without the Ceph sources; an RPM without a good signature by --rpm-key; no .ko in a modules folder; a dependency neither the set nor the kernel provides; a set folder lacking a module or with a file that differs from its build report; an unusable installer or signing key"),
            Patch => row(6, "patch", "the patch series is malformed or does not apply"),
            Toolchain => row(7, "toolchain", "the kernel's compiler, make or pahole is missing or differs; openssl is missing (signing)"),
            Compile => row(8, "compile", "compiling failed (the first errors and the log's path are shown)"),
            Environment => row(9, "environment", "no space left, no permission, read-only file system, a file that cannot be read; a tool missing (gpgv, QEMU, busybox-static, the Ceph tools, iproute2); no root for the network namespace"),
            WouldNotLoad => row(10, "would-not-load", "at least one module would be refused by the kernel (the offline loader check of build, check and install; the verdicts are shown); install changed nothing"),
            Refused => row(11, "refused", "install or rollback refused, nothing was changed: an rbd device is mapped or a CephFS is mounted (use --no-reload), another install is running, or a file to replace belongs to a package"),
            RolledBack => row(12, "rolled-back", "an install step failed and the previous set was restored by itself (the step and cause are shown)"),
            NeedsAttention => row(13, "needs-attention", "the rollback failed or the journal is unreadable: rerun `rollback` after fixing the cause shown; or the set is installed but loading it failed"),
            NothingToRollBack => row(14, "nothing-to-roll-back", "rollback: nothing to roll back"),
            SetInconsistent => row(15, "set-inconsistent", "check: every module loads, but the set is inconsistent (see the findings)"),
            TestFailed => row(16, "test-failed", "boot-test ran and something failed: a module was refused by the booted kernel (its message is shown), a build-id or srcversion differs, a cluster I/O check failed, or a --suite test failed (with --stock: at least one only with the set under test, a regression)"),
            Guest => row(17, "guest", "boot-test: the guest never finished: timeout, or QEMU exited early (the relevant serial lines are shown)"),
            Cluster => row(18, "cluster", "boot-test --cluster: the throwaway Ceph cluster did not start or a Ceph command failed"),
            Disagreement => row(19, "disagreement", "boot-test --agreement: the kernel and `check` disagree on at least one module"),
            SuiteEnvironment => row(22, "suite-environment", "boot-test --suite --stock: tests failed, but each failed with the stock modules too (environment problems, no regression; the report lists them)"),
            Interrupted => row(130, "interrupted", "interrupted (SIGINT, SIGTERM, SIGHUP); QEMU, the cluster and its namespace were torn down"),
        }
    }

    /// The process's exit status.
    pub fn code(self) -> i32 {
        self.row().code
    }

    /// The name of the code: `kind` in `--json` errors, the verdict in tables.
    pub fn kind(self) -> &'static str {
        self.row().kind
    }

    /// What the code means, as `--help` says.
    pub fn meaning(self) -> &'static str {
        self.row().meaning
    }

    /// The code whose number is `code`.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// For an I/O failure: the environment's fault (space, permissions, a missing file),
    /// or else a bug.
    pub fn of_io(kind: ErrorKind) -> ExitCode {
        match kind {
            ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::PermissionDenied
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::NotFound => ExitCode::Environment,
            _ => ExitCode::Internal,
        }
    }
}

/// Column where a meaning starts, and the width the table is wrapped to.
const MEANING_COLUMN: usize = 29;
const WIDTH: usize = 96;

/// The exit-code table as `--help` and the README show it.
pub fn table() -> &'static str {
    static TABLE: LazyLock<String> = LazyLock::new(|| {
        let mut text = String::from(
            "Exit codes: the same in every krbd-forge and krbd-host command; with --json an error is\n\
             printed on stdout as {\"error\": {\"kind\", \"exit_code\", \"message\", \"hint\", ...}}.\n",
        );
        for code in ExitCode::ALL {
            let head = format!("  {:>3}  {:<21} ", code.code(), code.kind());
            text += &wrap(&head, code.meaning());
        }
        text.pop();
        text
    });
    &TABLE
}

/// `prose` followed by the exit-code table: a subcommand's `after_long_help`.
pub fn help_with_table(prose: &str) -> String {
    format!("{prose}\n\n{}", table())
}

/// `head` then `text` word-wrapped to [`WIDTH`], continuation lines indented to
/// [`MEANING_COLUMN`].
fn wrap(head: &str, text: &str) -> String {
    let mut out = head.to_string();
    let mut column = head.len();
    for word in text.split(' ') {
        if column > MEANING_COLUMN && column + 1 + word.len() > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(MEANING_COLUMN));
            column = MEANING_COLUMN;
        } else if column > MEANING_COLUMN {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_and_kind_means_one_thing() {
        let mut codes: Vec<i32> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        let mut kinds: Vec<&str> = ExitCode::ALL.iter().map(|c| c.kind()).collect();
        codes.sort_unstable();
        codes.dedup();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(codes.len(), ExitCode::ALL.len());
        assert_eq!(kinds.len(), ExitCode::ALL.len());
        for c in ExitCode::ALL {
            assert_eq!(ExitCode::from_code(c.code()), Some(c));
        }
    }

    #[test]
    fn the_table_lists_every_code_within_the_width() {
        let t = table();
        for c in ExitCode::ALL {
            assert!(t.contains(&format!("  {:>3}  {:<21} ", c.code(), c.kind())), "{c:?} missing:\n{t}");
        }
        for line in t.lines() {
            assert!(line.len() <= WIDTH, "{line:?}");
        }
        assert!(t.starts_with("Exit codes:"), "{t}");
        assert!(t.contains("   10  would-not-load        at least one module would be refused"), "{t}");
    }
}
