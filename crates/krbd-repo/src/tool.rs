//! Running the distributions' tools (gpg, apt-ftparchive, createrepo_c) with errors that say
//! which package to install or what the tool said.

use crate::RepoError;
use std::process::{Command, Output, Stdio};

/// One external tool and the Debian package that ships it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub(crate) const GPG: Tool = Tool { program: "gpg", package: "gnupg" };
pub(crate) const GPGCONF: Tool = Tool { program: "gpgconf", package: "gnupg" };
pub(crate) const APT_FTPARCHIVE: Tool = Tool { program: "apt-ftparchive", package: "apt-utils" };
pub(crate) const CREATEREPO: Tool = Tool { program: "createrepo_c", package: "createrepo-c" };
pub(crate) const RPMBUILD: Tool = Tool { program: "rpmbuild", package: "rpm" };

impl Tool {
    pub fn command(self) -> Command {
        let mut c = Command::new(self.program);
        c.stdin(Stdio::null());
        // Tools' messages in one language, so that errors read the same everywhere.
        c.env("LC_ALL", "C.UTF-8");
        c
    }

    /// Runs `cmd` (made by [`Tool::command`]) to completion; a missing program or a failure
    /// becomes an error that says what it was for.
    pub fn run(self, cmd: &mut Command, why: &str) -> Result<Output, RepoError> {
        let out = cmd.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                RepoError::ToolMissing { tool: self.program.into(), package: self.package.into(), why: why.into() }
            }
            _ => RepoError::ToolFailed {
                tool: self.program.into(),
                why: why.into(),
                status: "not started".into(),
                stderr: e.to_string(),
            },
        })?;
        if !out.status.success() {
            return Err(RepoError::ToolFailed {
                tool: self.program.into(),
                why: why.into(),
                status: out.status.to_string(),
                stderr: tail(&String::from_utf8_lossy(&out.stderr), 2000),
            });
        }
        Ok(out)
    }
}

/// The last `max` bytes of `text` (at a character boundary), trimmed.
fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}
