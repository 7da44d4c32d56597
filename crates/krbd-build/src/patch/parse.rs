//! Unified diffs, as `git format-patch` and `diff -u` write them.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HunkLine {
    Context(String),
    Remove(String),
    Add(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based first line in the old file (for an empty old side: the line after which to insert).
    pub old_start: usize,
    pub old_len: usize,
    pub new_start: usize,
    pub new_len: usize,
    /// The `@@ ... @@` line as written.
    pub header: String,
    pub lines: Vec<HunkLine>,
}

impl Hunk {
    /// The lines the old file must contain (context and removals).
    pub fn old_lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            HunkLine::Context(s) | HunkLine::Remove(s) => Some(s.as_str()),
            HunkLine::Add(_) => None,
        })
    }

    /// The hunk as it appears in the patch, for error messages.
    pub fn text(&self) -> String {
        let mut s = self.header.clone();
        for l in &self.lines {
            s.push('\n');
            match l {
                HunkLine::Context(t) => {
                    s.push(' ');
                    s.push_str(t)
                }
                HunkLine::Remove(t) => {
                    s.push('-');
                    s.push_str(t)
                }
                HunkLine::Add(t) => {
                    s.push('+');
                    s.push_str(t)
                }
            }
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Path after stripping one leading component (`-p1`); `None` for /dev/null.
    pub old_path: Option<String>,
    pub new_path: Option<String>,
    pub hunks: Vec<Hunk>,
}

impl FilePatch {
    /// The path this patch changes (the new name, or the old one for a deletion).
    pub fn target(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or("")
    }
}

/// A parsed patch file: its description (the mail headers and message) and file changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFile {
    pub subject: String,
    pub description: String,
    pub files: Vec<FilePatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

fn strip_p1(path: &str) -> Option<String> {
    // Drop a trailing timestamp (`diff -u` writes "name\tdate").
    let path = path.split('\t').next().unwrap_or(path).trim_end();
    if path == "/dev/null" {
        return None;
    }
    Some(match path.split_once('/') {
        Some((_, rest)) => rest.to_string(),
        None => path.to_string(),
    })
}

fn parse_range(s: &str, line: usize) -> Result<(usize, usize), ParseError> {
    let bad = || ParseError { line, reason: format!("bad hunk range {s:?}") };
    let (start, len) = match s.split_once(',') {
        Some((a, b)) => (a, b),
        None => (s, "1"),
    };
    Ok((start.parse().map_err(|_| bad())?, len.parse().map_err(|_| bad())?))
}

/// The old and new `(start, length)` ranges of a `@@ -a,b +c,d @@` header.
type HunkRanges = ((usize, usize), (usize, usize));

fn parse_hunk_header(header: &str, line: usize) -> Result<HunkRanges, ParseError> {
    let inner = header.strip_prefix("@@ ").unwrap_or(header).split(" @@").next().unwrap_or("");
    let mut parts = inner.split_whitespace();
    let (old, new) =
        match (parts.next().and_then(|o| o.strip_prefix('-')), parts.next().and_then(|n| n.strip_prefix('+'))) {
            (Some(o), Some(n)) => (o, n),
            _ => return Err(ParseError { line, reason: format!("bad hunk header {header:?}") }),
        };
    Ok((parse_range(old, line)?, parse_range(new, line)?))
}

/// Parses the hunk whose `@@` header is `lines[at]`: its body is as many lines as the
/// header's ranges count. Returns the hunk and the index of the line after it.
fn parse_hunk(lines: &[&str], at: usize) -> Result<(Hunk, usize), ParseError> {
    let header = lines[at];
    let ((old_start, old_len), (new_start, new_len)) = parse_hunk_header(header, at + 1)?;
    let mut hunk = Hunk { old_start, old_len, new_start, new_len, header: header.to_string(), lines: Vec::new() };
    let (mut old_left, mut new_left) = (old_len, new_len);
    let mut i = at + 1;
    while old_left > 0 || new_left > 0 {
        let Some(body) = lines.get(i) else {
            return Err(ParseError {
                line: i,
                reason: format!("hunk {:?} ends early (patch truncated?)", hunk.header),
            });
        };
        let (kind, rest) = match body.chars().next() {
            Some(c) => (c, &body[c.len_utf8()..]),
            // Some mailers drop the space of an empty context line.
            None => (' ', ""),
        };
        match kind {
            ' ' if old_left > 0 && new_left > 0 => {
                hunk.lines.push(HunkLine::Context(rest.to_string()));
                old_left -= 1;
                new_left -= 1;
            }
            '-' if old_left > 0 => {
                hunk.lines.push(HunkLine::Remove(rest.to_string()));
                old_left -= 1;
            }
            '+' if new_left > 0 => {
                hunk.lines.push(HunkLine::Add(rest.to_string()));
                new_left -= 1;
            }
            '\\' => {}
            _ => {
                return Err(ParseError {
                    line: i + 1,
                    reason: format!(
                        "line {body:?} does not fit hunk {:?} ({old_left} old and {new_left} new lines still expected)",
                        hunk.header
                    ),
                })
            }
        }
        i += 1;
    }
    Ok((hunk, i))
}

impl PatchFile {
    pub fn parse(text: &str) -> Result<PatchFile, ParseError> {
        let lines: Vec<&str> = text.lines().collect();
        let mut files: Vec<FilePatch> = Vec::new();
        let mut description = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let file_header = l.strip_prefix("--- ").zip(lines.get(i + 1).and_then(|n| n.strip_prefix("+++ ")));
            if let Some((old, new)) = file_header {
                files.push(FilePatch { old_path: strip_p1(old), new_path: strip_p1(new), hunks: Vec::new() });
                i += 2;
                continue;
            }
            if l.starts_with("@@ ") {
                let Some(file) = files.last_mut() else {
                    return Err(ParseError { line: i + 1, reason: "hunk before any ---/+++ file header".into() });
                };
                let (hunk, next) = parse_hunk(&lines, i)?;
                file.hunks.push(hunk);
                i = next;
                continue;
            }
            if files.is_empty() {
                description.push(l);
            }
            i += 1;
        }
        if files.is_empty() {
            return Err(ParseError { line: lines.len(), reason: "no file changes (no ---/+++ headers) found".into() });
        }
        if let Some(f) = files.iter().find(|f| f.hunks.is_empty()) {
            return Err(ParseError { line: lines.len(), reason: format!("file {} has no hunks", f.target()) });
        }
        Ok(PatchFile { subject: mail_subject(&lines), description: description.join("\n"), files })
    }
}

/// The Subject of the mail headers that open a patch (up to the first blank line),
/// without its `[PATCH] ` tag; empty when there is none. git format-patch folds long
/// headers onto lines that start with white space; they are unfolded as RFC 2822 says,
/// by dropping the line breaks, so the subject is the whole one-line summary.
fn mail_subject(lines: &[&str]) -> String {
    let headers = lines.iter().take_while(|l| !l.is_empty());
    let mut from_subject = headers.skip_while(|l| !l.starts_with("Subject: "));
    let Some(first) = from_subject.next() else {
        return String::new();
    };
    let mut subject = first.trim_start_matches("Subject: ").to_string();
    for continuation in from_subject.take_while(|l| l.starts_with([' ', '\t'])) {
        subject.push_str(continuation);
    }
    subject.trim_start_matches("[PATCH] ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIT_PATCH: &str = "From 1234 Mon Sep 17 00:00:00 2001
From: A Hacker <a@example.com>
Subject: [PATCH] libceph: say hello

Explain why.
---
 net/ceph/x.c | 1 +

diff --git a/net/ceph/x.c b/net/ceph/x.c
--- a/net/ceph/x.c
+++ b/net/ceph/x.c
@@ -1,3 +1,4 @@ int f(void)
 a
-b
+B
+C
 c
@@ -10 +11 @@
-z
+Z
-- 
2.39.2
";

    #[test]
    fn parses_git_format_patch() {
        let p = PatchFile::parse(GIT_PATCH).unwrap();
        assert_eq!(p.subject, "libceph: say hello");
        assert!(p.description.contains("Explain why."));
        assert_eq!(p.files.len(), 1);
        let f = &p.files[0];
        assert_eq!(f.target(), "net/ceph/x.c");
        assert_eq!(f.hunks.len(), 2);
        assert_eq!(f.hunks[0].old_lines().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        assert_eq!((f.hunks[1].old_start, f.hunks[1].old_len), (10, 1));
    }

    #[test]
    fn folded_subject_is_unfolded() {
        let folded = GIT_PATCH.replace(
            "Subject: [PATCH] libceph: say hello\n",
            "Subject: [PATCH] libceph: add a per-OSD recovery_weight array to struct\n ceph_osdmap\n",
        );
        let p = PatchFile::parse(&folded).unwrap();
        assert_eq!(p.subject, "libceph: add a per-OSD recovery_weight array to struct ceph_osdmap");
        let tab_folded = GIT_PATCH.replace("say hello", "say\n\thello");
        assert_eq!(PatchFile::parse(&tab_folded).unwrap().subject, "libceph: say\thello");
    }

    #[test]
    fn subject_comes_from_the_mail_headers_only() {
        let quoted = GIT_PATCH.replace("Explain why.", "Explain why.\nSubject: [PATCH] not this one");
        assert_eq!(PatchFile::parse(&quoted).unwrap().subject, "libceph: say hello");
    }

    #[test]
    fn truncated_hunk_is_an_error() {
        let cut = &GIT_PATCH[..GIT_PATCH.find(" c\n").unwrap()];
        let e = PatchFile::parse(cut).unwrap_err();
        assert!(e.reason.contains("ends early"), "{e}");
    }

    #[test]
    fn text_without_diff_is_an_error() {
        assert!(PatchFile::parse("just prose\n").is_err());
    }

    #[test]
    fn dev_null_means_new_file() {
        let p = PatchFile::parse("--- /dev/null\n+++ b/new.c\n@@ -0,0 +1 @@\n+x\n").unwrap();
        assert_eq!(p.files[0].old_path, None);
        assert_eq!(p.files[0].new_path.as_deref(), Some("new.c"));
    }
}
