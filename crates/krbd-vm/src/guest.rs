//! Parsing what the guest's init reports: lines `KRBD|<kind>|<field>|...` on the serial
//! console. The last field of each kind takes the rest of the line, so free text (a kernel
//! message) may itself contain `|`. The marker is searched anywhere in a line because a
//! kernel message can land on the console just before ours without a newline.

/// One report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEvent {
    pub kind: String,
    pub fields: Vec<String>,
}

const MARKER: &str = "KRBD|";

/// How many fields each kind carries (the last one takes the rest of the line).
fn arity(kind: &str) -> usize {
    match kind {
        "insmod" => 4, // role, name, rc, insmod's output
        "dmesg" => 2,  // module (or "boot"), kernel line
        "srcversion" | "modtaint" | "buildid" | "value" => 2,
        "step" => 3, // name, ok|fail, detail
        "begin" | "taint" | "taint_end" => 1,
        // The agreement run (crate::agreement).
        "case" => 2,   // case, tainted before it
        "try" => 4,    // case, module, rc, insmod's output
        "kmsg" => 3,   // case, module, raw kernel line (`<level>[time] text`)
        "unload" => 3, // case, module, rc
        _ => 1,
    }
}

/// Parses one console line; `None` if it is not a report line.
pub fn parse_line(line: &str) -> Option<GuestEvent> {
    let at = line.find(MARKER)?;
    let rest = line[at + MARKER.len()..].trim_end_matches(['\r', '\n']);
    let (kind, rest) = match rest.split_once('|') {
        Some((k, r)) => (k, Some(r)),
        None => (rest, None),
    };
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return None;
    }
    let fields = match rest {
        None => Vec::new(),
        Some(r) => r.splitn(arity(kind), '|').map(str::to_string).collect(),
    };
    Some(GuestEvent { kind: kind.to_string(), fields })
}

/// Parses a whole serial log.
pub fn parse_log(log: &str) -> Vec<GuestEvent> {
    log.lines().filter_map(parse_line).collect()
}

/// Drops the `[    1.234567] ` timestamp that dmesg puts in front of kernel lines.
pub fn strip_timestamp(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some((stamp, after)) = rest.split_once(']') {
            if stamp.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return after.strip_prefix(' ').unwrap_or(after);
            }
        }
    }
    line
}

/// Letters for the bits of /proc/sys/kernel/tainted, in bit order (kernel/panic.c).
const TAINT_LETTERS: [char; 20] =
    ['P', 'F', 'S', 'R', 'M', 'B', 'U', 'D', 'A', 'W', 'C', 'I', 'O', 'E', 'L', 'K', 'X', 'T', 'N', 'J'];

/// The taint letters of a tainted value, e.g. 12288 -> "OE".
pub fn taint_flags(value: u64) -> String {
    TAINT_LETTERS.iter().enumerate().filter(|(bit, _)| value & (1 << bit) != 0).map(|(_, c)| *c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_report_lines() {
        assert_eq!(
            parse_line("KRBD|insmod|ours|rbd|1|insmod: can't insert 'x': a|b\r"),
            Some(GuestEvent {
                kind: "insmod".into(),
                fields: vec!["ours".into(), "rbd".into(), "1".into(), "insmod: can't insert 'x': a|b".into()]
            })
        );
        assert_eq!(parse_line("[ 1.0] random KRBD|end").map(|e| e.kind), Some("end".into()));
        assert_eq!(parse_line("no marker here"), None);
        assert_eq!(parse_line("KRBD|"), None);
    }

    #[test]
    fn strips_dmesg_timestamps() {
        assert_eq!(strip_timestamp("[    1.234567] rbd: loaded"), "rbd: loaded");
        assert_eq!(strip_timestamp("rbd: [x] y"), "rbd: [x] y");
    }

    #[test]
    fn taint_letters() {
        assert_eq!(taint_flags(0), "");
        assert_eq!(taint_flags(4096 | 8192), "OE");
        assert_eq!(taint_flags(1), "P");
    }
}
