//! Checks of the man pages and shell completions a binary generates (`generate`), made
//! from the outside: the subcommands come from the binary's own `--help`, the pages are
//! rendered by man(1)/groff, the completion script is loaded by a real bash.

use std::path::Path;
use std::process::Command;

/// Every subcommand path of `bin` (`[]` the binary itself, `["placement", "plan"]`, ...),
/// read from the "Commands:" section of each `--help`, `help` left out.
pub fn subcommand_paths(bin: &Path) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let help = Command::new(bin).args(&path).arg("--help").output().expect("run --help");
        assert!(help.status.success(), "{path:?} --help");
        let text = String::from_utf8_lossy(&help.stdout).into_owned();
        let mut in_commands = false;
        for line in text.lines() {
            if line.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if in_commands && !line.starts_with("  ") {
                in_commands = false;
            }
            if !in_commands || line.starts_with("   ") {
                continue;
            }
            let Some(name) = line.split_whitespace().next() else { continue };
            if name != "help" {
                let mut sub = path.clone();
                sub.push(name.to_string());
                todo.push(sub);
            }
        }
        out.push(path);
    }
    out.sort();
    out
}

/// The man page file of a subcommand path: `krbd-forge-placement-plan.1`.
pub fn page_name(bin_name: &str, path: &[String], section: &str) -> String {
    let mut name = bin_name.to_string();
    for p in path {
        name.push('-');
        name.push_str(p);
    }
    format!("{name}.{section}")
}

/// Every subcommand of `bin` has its page in `dir`, each page is well-formed roff (`.TH`
/// with the right name and section, a NAME section) and renders with `man -l` without a
/// warning, showing its synopsis.
pub fn check_man_pages(bin: &Path, section: &str, dir: &Path) -> Result<usize, String> {
    let bin_name = bin.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let paths = subcommand_paths(bin);
    for path in &paths {
        let name = page_name(&bin_name, path, section);
        let file = dir.join(&name);
        let roff = std::fs::read_to_string(&file).map_err(|e| format!("{name}: {e}"))?;
        let title = name.trim_end_matches(&format!(".{section}"));
        if !roff.lines().any(|l| l.starts_with(".TH") && l.contains(title) && l.contains(&format!(" {section} "))) {
            return Err(format!("{name}: no .TH {title} {section} line:\n{roff}"));
        }
        if !roff.contains(".SH NAME") || !roff.contains(".SH SYNOPSIS") {
            return Err(format!("{name}: no NAME or SYNOPSIS section"));
        }
        let rendered = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .map_err(|e| format!("run man: {e}"))?;
        // man justifies lines: compare with runs of spaces collapsed.
        let text = String::from_utf8_lossy(&rendered.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
        let warnings = String::from_utf8_lossy(&rendered.stderr);
        if !rendered.status.success() || !warnings.trim().is_empty() {
            return Err(format!("man -l {name}: {:?}\n{warnings}", rendered.status));
        }
        if !text.contains("SYNOPSIS") || !text.contains(&path.join(" ")) {
            return Err(format!("man -l {name} shows no synopsis of {path:?}:\n{text}"));
        }
    }
    Ok(paths.len())
}

/// The bash completion script `script` of `bin_name` is valid bash (`bash -n`), registers
/// a completion function (`complete -p`), and completes `partial` as the first word to
/// `expected`.
pub fn check_bash_completion(script: &Path, bin_name: &str, partial: &str, expected: &str) -> Result<(), String> {
    let syntax = Command::new("bash").arg("-n").arg(script).output().map_err(|e| e.to_string())?;
    if !syntax.status.success() {
        return Err(format!("bash -n: {}", String::from_utf8_lossy(&syntax.stderr)));
    }
    let program = format!(
        r#"source "$1" || exit 1
spec=$(complete -p {bin_name}) || exit 2
fn=$(printf '%s\n' "$spec" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || exit 3
COMP_WORDS=({bin_name} {partial}); COMP_CWORD=1; COMP_LINE="{bin_name} {partial}"; COMP_POINT=${{#COMP_LINE}}
"$fn" {bin_name} {partial} {bin_name}
printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let out =
        Command::new("bash").arg("-c").arg(&program).arg("bash").arg(script).output().map_err(|e| e.to_string())?;
    let words = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !words.lines().any(|w| w == expected) {
        return Err(format!(
            "completing `{bin_name} {partial}` gave {words:?} ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
