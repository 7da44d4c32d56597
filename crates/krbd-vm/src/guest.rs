//! Parsing what the guest's init reports: lines `KRBD|<kind>|<field>|...` on the serial
//! console. The last field of each kind takes the rest of the line, so free text (a kernel
//! message) may itself contain `|`. The marker is searched anywhere in a line because a
//! kernel message can land on the console just before ours without a newline.

/// One report line, with the data its kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEvent {
    /// `begin|<release>`: init runs, on this kernel release.
    Begin { release: String },
    /// `insmod|<role>|<module>|<rc>|<insmod's output>`: one module of the boot test's set.
    Insmod { role: String, module: String, exit: Option<i32>, output: String },
    /// `dmesg|<source>|<kernel line>`: a kernel line logged while loading module `source`,
    /// or during `boot` or the `cluster` steps.
    Dmesg { source: String, line: String },
    /// `srcversion|<module>|<srcversion>` from sysfs.
    Srcversion { module: String, srcversion: String },
    /// `modtaint|<module>|<flags>`: `/sys/module/<module>/taint`.
    ModuleTaint { module: String, flags: String },
    /// `buildid|<module>|<hex>`: the module's `.note.gnu.build-id` from sysfs, as hex.
    BuildIdNote { module: String, note_hex: String },
    /// `value|<key>|<value>`: a measurement (a checksum) or a guest task's result.
    Value { key: String, value: String },
    /// `step|<name>|ok|fail|<detail>`: one step of the guest's cluster I/O.
    Step { name: String, ok: bool, detail: String },
    /// `taint|<value>`: `/proc/sys/kernel/tainted` after loading the set.
    Taint { value: Option<u64> },
    /// `taint_end|<value>`: the same at the end of the run.
    TaintEnd { value: Option<u64> },
    /// `case|<case>|<tainted>`: an agreement case starts; the kernel's taint before it.
    Case { case: String, tainted: Option<u64> },
    /// `try|<case>|<module>|<rc>|<insmod's output>`: an agreement case loads one module.
    Try { case: String, module: String, exit: Option<i32>, output: String },
    /// `kmsg|<case>|<module>|<raw kernel line>`: `<level>[time] text`, printed during a try.
    Kmsg { case: String, module: String, raw: String },
    /// `unload|<case>|<module>|<rc>`: removing a module an agreement case loaded.
    Unload { case: String, module: String, unloaded: bool },
    /// `end`: the guest is done and powers off.
    End,
    /// A kind of its own (a [`crate::GuestTask`]'s reports), or a known kind with fields
    /// missing: kind and fields as sent.
    Other { kind: String, fields: Vec<String> },
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

/// A report line split into its kind and fields, before typing.
fn split_line(line: &str) -> Option<(&str, Vec<String>)> {
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
    Some((kind, fields))
}

impl GuestEvent {
    /// Types the fields of one kind; a known kind without the fields that identify it
    /// becomes [`GuestEvent::Other`].
    fn from_fields(kind: &str, fields: Vec<String>) -> GuestEvent {
        let text = |i: usize| fields.get(i).cloned().unwrap_or_default();
        let trimmed = |i: usize| fields.get(i).map(|v| v.trim().to_string()).unwrap_or_default();
        let number = |i: usize| fields.get(i).and_then(|v| v.trim().parse::<u64>().ok());
        match (kind, fields.len()) {
            ("end", _) => GuestEvent::End,
            ("begin", 1..) => GuestEvent::Begin { release: text(0) },
            ("insmod", 2..) => GuestEvent::Insmod {
                role: text(0),
                module: text(1),
                exit: fields.get(2).and_then(|rc| rc.parse().ok()),
                output: text(3),
            },
            ("dmesg", 2..) => GuestEvent::Dmesg { source: text(0), line: text(1) },
            ("srcversion", 2..) => GuestEvent::Srcversion { module: text(0), srcversion: trimmed(1) },
            ("modtaint", 2..) => GuestEvent::ModuleTaint { module: text(0), flags: trimmed(1) },
            ("buildid", 2..) => GuestEvent::BuildIdNote { module: text(0), note_hex: trimmed(1) },
            ("value", 2..) => GuestEvent::Value { key: text(0), value: trimmed(1) },
            ("step", _) => GuestEvent::Step { name: text(0), ok: text(1) == "ok", detail: text(2) },
            ("taint", _) => GuestEvent::Taint { value: number(0) },
            ("taint_end", _) => GuestEvent::TaintEnd { value: number(0) },
            ("case", 1..) => GuestEvent::Case { case: text(0), tainted: number(1) },
            ("try", 2..) => GuestEvent::Try {
                case: text(0),
                module: text(1),
                exit: fields.get(2).and_then(|rc| rc.trim().parse().ok()),
                output: text(3),
            },
            ("kmsg", 3..) => GuestEvent::Kmsg { case: text(0), module: text(1), raw: text(2) },
            ("unload", 2..) => GuestEvent::Unload { case: text(0), module: text(1), unloaded: trimmed(2) == "0" },
            _ => GuestEvent::Other { kind: kind.to_string(), fields },
        }
    }
}

/// Parses one console line; `None` if it is not a report line.
pub fn parse_line(line: &str) -> Option<GuestEvent> {
    split_line(line).map(|(kind, fields)| GuestEvent::from_fields(kind, fields))
}

/// Parses a whole serial log.
pub fn parse_log(log: &str) -> Vec<GuestEvent> {
    log.lines().filter_map(parse_line).collect()
}

/// Whether a serial log holds the guest's `end` report.
pub fn reports_end(log: &str) -> bool {
    log.lines().any(|l| parse_line(l) == Some(GuestEvent::End))
}

/// The last report line of a serial log as `<kind>|<fields>`, for messages about a guest
/// that stopped early.
pub fn last_report(log: &str) -> Option<String> {
    log.lines().rev().find_map(split_line).map(|(kind, fields)| format!("{kind}|{}", fields.join("|")))
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
            Some(GuestEvent::Insmod {
                role: "ours".into(),
                module: "rbd".into(),
                exit: Some(1),
                output: "insmod: can't insert 'x': a|b".into()
            })
        );
        assert_eq!(parse_line("[ 1.0] random KRBD|end"), Some(GuestEvent::End));
        assert_eq!(parse_line("no marker here"), None);
        assert_eq!(parse_line("KRBD|"), None);
    }

    #[test]
    fn unknown_kinds_and_short_lines_keep_their_fields() {
        assert_eq!(
            parse_line("KRBD|selftest|03|done|a|b"),
            Some(GuestEvent::Other { kind: "selftest".into(), fields: vec!["03|done|a|b".into()] })
        );
        assert_eq!(
            parse_line("KRBD|insmod|ours"),
            Some(GuestEvent::Other { kind: "insmod".into(), fields: vec!["ours".into()] })
        );
        assert_eq!(parse_line("KRBD|taint|12288 "), Some(GuestEvent::Taint { value: Some(12288) }));
        assert_eq!(
            parse_line("KRBD|unload|c|rbd| 0"),
            Some(GuestEvent::Unload { case: "c".into(), module: "rbd".into(), unloaded: true })
        );
    }

    #[test]
    fn last_report_and_end() {
        let log = "boot\nKRBD|begin|6.1.0\nKRBD|step|net|fail|no eth0\nnoise\n";
        assert_eq!(last_report(log).as_deref(), Some("step|net|fail|no eth0"));
        assert!(!reports_end(log));
        assert!(reports_end("x KRBD|end\r\n"));
        assert_eq!(last_report("nothing"), None);
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
