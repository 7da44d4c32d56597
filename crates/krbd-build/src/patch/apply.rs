//! Applying one file's hunks to its text.

use super::parse::{FilePatch, Hunk, HunkLine};

// The hunk outcome types are part of the build report's schema.
pub use krbd_kmod::set::report::{HunkReport, HunkStatus};

/// The result of patching one file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    /// The new text; `None` when the patch deletes the file.
    pub content: Option<String>,
    pub hunks: Vec<HunkReport>,
}

impl FileOutcome {
    pub fn failed(&self) -> bool {
        self.hunks.iter().any(|h| h.status == HunkStatus::Failed)
    }
}

/// Leading and trailing context lines of a hunk.
fn context_ends(h: &Hunk) -> (usize, usize) {
    let lead = h.lines.iter().take_while(|l| matches!(l, HunkLine::Context(_))).count();
    let trail = h.lines.iter().rev().take_while(|l| matches!(l, HunkLine::Context(_))).count();
    if lead == h.lines.len() {
        (lead, 0)
    } else {
        (lead, trail)
    }
}

fn matches_at(old: &[&str], at: usize, pat: &[&str]) -> bool {
    at + pat.len() <= old.len() && old[at..at + pat.len()] == *pat
}

/// Positions from `center` outward (center, +1, -1, +2, -2, ...) within `lo..=hi`.
fn outward(center: i64, lo: i64, hi: i64) -> impl Iterator<Item = i64> {
    let span = (center - lo).max(hi - center).max(0);
    (0..=span).flat_map(move |d| {
        let fwd = center + d;
        let back = center - d;
        let a = (fwd >= lo && fwd <= hi).then_some(fwd);
        let b = (d > 0 && back >= lo && back <= hi).then_some(back);
        a.into_iter().chain(b)
    })
}

/// Where a hunk matched: at old line `at` (0-based), with `pre` leading and `post` trailing
/// context lines dropped, at fuzz level `fuzz`.
struct Match {
    at: usize,
    pre: usize,
    post: usize,
    fuzz: usize,
}

/// Applies `fp` to `original` (`None`: the file does not exist).
pub fn apply_file(fp: &FilePatch, original: Option<&str>, max_fuzz: usize) -> FileOutcome {
    let text = original.unwrap_or("");
    let final_newline = text.is_empty() || text.ends_with('\n');
    let old: Vec<&str> =
        if text.is_empty() { Vec::new() } else { text.strip_suffix('\n').unwrap_or(text).split('\n').collect() };
    let mut out: Vec<String> = Vec::with_capacity(old.len() + 64);
    let mut cursor = 0usize; // old lines before this are already placed in `out`
    let mut shift = 0i64; // how far earlier hunks matched from where they said
    let mut reports = Vec::new();

    for (index, h) in fp.hunks.iter().enumerate() {
        let pattern: Vec<&str> = h.old_lines().collect();
        let stated = if h.old_len == 0 { h.old_start } else { h.old_start.saturating_sub(1) } as i64;
        let expected = stated + shift;
        let base = HunkReport {
            file: fp.target().to_string(),
            hunk: index + 1,
            header: h.header.clone(),
            status: HunkStatus::Failed,
            line: (expected.max(0) as usize) + 1,
            offset: 0,
            fuzz: 0,
            detail: None,
        };
        let Some(found) = find_hunk(h, &pattern, &old, expected, cursor, max_fuzz) else {
            reports.push(HunkReport { detail: Some(mismatch(&old, expected.max(0) as usize, &pattern)), ..base });
            continue;
        };
        let start = found.at - found.pre; // where the full hunk would begin in the old file
        out.extend(old[cursor..found.at].iter().map(|s| s.to_string()));
        cursor = place_hunk(h, &found, &old, &mut out);
        let offset = start as i64 - stated;
        shift = offset;
        let status = if found.fuzz > 0 {
            HunkStatus::Fuzz
        } else if offset != 0 {
            HunkStatus::Offset
        } else {
            HunkStatus::Applied
        };
        reports.push(HunkReport { status, line: start + 1, offset, fuzz: found.fuzz, ..base });
    }
    out.extend(old[cursor.min(old.len())..].iter().map(|s| s.to_string()));
    let deleted = fp.new_path.is_none();
    let content = (!deleted).then(|| join_lines(&out, final_newline));
    FileOutcome { content, hunks: reports }
}

/// Looks for the hunk's old lines from `expected` outward, never before `cursor`: first
/// with all context, then with up to `max_fuzz` context lines dropped from each end.
fn find_hunk(h: &Hunk, pattern: &[&str], old: &[&str], expected: i64, cursor: usize, max_fuzz: usize) -> Option<Match> {
    let (lead, trail) = context_ends(h);
    let mut tried = None;
    for fuzz in 0..=max_fuzz {
        let pre = fuzz.min(lead);
        let post = fuzz.min(trail);
        if tried == Some((pre, post)) {
            continue; // no more context to drop: the same search again would fail again
        }
        tried = Some((pre, post));
        let pat = &pattern[pre..pattern.len() - post];
        let hi = old.len() as i64 - pat.len() as i64;
        let hit = outward(expected + pre as i64, cursor as i64, hi).find(|&at| matches_at(old, at as usize, pat));
        if let Some(at) = hit {
            return Some(Match { at: at as usize, pre, post, fuzz });
        }
    }
    None
}

/// Appends the hunk's body minus the dropped context to `out`; kept context comes from
/// the file. Returns the old line after the hunk.
fn place_hunk(h: &Hunk, found: &Match, old: &[&str], out: &mut Vec<String>) -> usize {
    let mut old_i = found.at;
    let body_end = h.lines.len() - found.post;
    for line in &h.lines[found.pre..body_end] {
        match line {
            HunkLine::Context(_) => {
                out.push(old[old_i].to_string());
                old_i += 1;
            }
            HunkLine::Remove(_) => old_i += 1,
            HunkLine::Add(s) => out.push(s.clone()),
        }
    }
    old_i
}

/// The lines as file text: newline-terminated when the original was (or is new).
fn join_lines(lines: &[String], final_newline: bool) -> String {
    let mut s = lines.join("\n");
    if !lines.is_empty() && final_newline {
        s.push('\n');
    }
    s
}

/// What the file holds where a hunk was looked for, for the error message.
fn mismatch(old: &[&str], at: usize, pattern: &[&str]) -> String {
    if at >= old.len() && !pattern.is_empty() {
        return format!("the file has only {} lines", old.len());
    }
    for (k, want) in pattern.iter().enumerate() {
        match old.get(at + k) {
            Some(have) if have == want => continue,
            Some(have) => {
                return format!(
                    "searched the whole file; at line {} the file has {:?} where the hunk expects {:?}",
                    at + k + 1,
                    have,
                    want
                )
            }
            None => return format!("the file ends at line {} inside the hunk", old.len()),
        }
    }
    "the hunk's context is present but overlaps an earlier hunk".into()
}

#[cfg(test)]
mod tests {
    use super::super::parse::PatchFile;
    use super::*;

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    fn patch(body: &str) -> FilePatch {
        PatchFile::parse(&format!("--- a/f\n+++ b/f\n{body}")).unwrap().files.remove(0)
    }

    #[test]
    fn exact_hunk_applies_at_its_line() {
        let fp = patch("@@ -4,3 +4,3 @@\n line 4\n-line 5\n+LINE FIVE\n line 6\n");
        let r = apply_file(&fp, Some(&numbered(10)), 2);
        assert_eq!(r.hunks[0].status, HunkStatus::Applied);
        assert_eq!(r.hunks[0].line, 4);
        assert!(r.content.unwrap().contains("line 4\nLINE FIVE\nline 6\n"));
    }

    #[test]
    fn moved_hunk_applies_with_offset() {
        let original = format!("extra\nextra\nextra\n{}", numbered(10));
        let fp = patch("@@ -4,3 +4,3 @@\n line 4\n-line 5\n+LINE FIVE\n line 6\n");
        let r = apply_file(&fp, Some(&original), 2);
        assert_eq!(r.hunks[0].status, HunkStatus::Offset);
        assert_eq!((r.hunks[0].line, r.hunks[0].offset), (7, 3));
    }

    #[test]
    fn changed_context_needs_fuzz() {
        let original = numbered(10).replace("line 4\n", "line four\n");
        let fp = patch("@@ -4,3 +4,3 @@\n line 4\n-line 5\n+LINE FIVE\n line 6\n");
        let r = apply_file(&fp, Some(&original), 2);
        assert_eq!(r.hunks[0].status, HunkStatus::Fuzz);
        assert_eq!(r.hunks[0].fuzz, 1);
        // The file's own context line is kept.
        assert!(r.content.unwrap().contains("line four\nLINE FIVE\n"));
    }

    #[test]
    fn missing_text_fails_with_detail() {
        let fp = patch("@@ -4,3 +4,3 @@\n line 4\n-line 55\n+LINE FIVE\n line 6\n");
        let r = apply_file(&fp, Some(&numbered(10)), 2);
        assert_eq!(r.hunks[0].status, HunkStatus::Failed);
        let d = r.hunks[0].detail.clone().unwrap();
        assert!(d.contains("line 5") && d.contains("line 55"), "{d}");
        assert!(r.failed());
    }

    #[test]
    fn hunks_never_apply_before_the_previous_one() {
        // The second hunk's text exists only before the first hunk's match: it must fail.
        let original = "x\nA\ny\n".to_string() + &numbered(5);
        let fp = patch("@@ -4,1 +4,1 @@\n-line 1\n+L1\n@@ -5,3 +5,3 @@\n x\n-A\n+B\n y\n");
        let r = apply_file(&fp, Some(&original), 0);
        assert_eq!(r.hunks[0].status, HunkStatus::Applied);
        assert_eq!(r.hunks[1].status, HunkStatus::Failed);
    }

    #[test]
    fn new_file_is_created() {
        let fp = PatchFile::parse("--- /dev/null\n+++ b/n.c\n@@ -0,0 +1,2 @@\n+a\n+b\n").unwrap().files.remove(0);
        let r = apply_file(&fp, None, 0);
        assert_eq!(r.content.as_deref(), Some("a\nb\n"));
    }
}
