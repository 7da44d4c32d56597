//! Which patches a kernel spec's `%prep` applies, read without running it.
//!
//! RHEL ships its kernel tarball already patched; what `%prep` still applies is a short
//! list (`ApplyOptionalPatch linux-kernel-test.patch`, on 9 also the `-redhat.patch`), and
//! other rebuilds use the usual `%patchN`, `%autosetup`, or `patch -p1 < file`. Those forms
//! are followed; anything else in `%prep` that mentions patching is refused with its line,
//! rather than guessed at.

use std::collections::BTreeMap;

/// One patch that `%prep` applies, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrepPatch {
    /// The file's name in the source RPM.
    pub name: String,
    /// `ApplyOptionalPatch`: a missing or empty file is skipped.
    pub optional: bool,
    /// 1-based line of the spec.
    pub line: usize,
}

/// Why `%prep` could not be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepError {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

impl std::fmt::Display for PrepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "%prep line {}: {} ({:?})", self.line, self.reason, self.text)
    }
}

const SECTIONS_AFTER_PREP: [&str; 14] = [
    "%build",
    "%install",
    "%check",
    "%files",
    "%clean",
    "%changelog",
    "%package",
    "%description",
    "%pre",
    "%post",
    "%preun",
    "%postun",
    "%posttrans",
    "%generate_buildrequires",
];

/// A spec's macros: `%define`/`%global` and the Name/Version/Release tags.
struct Macros(BTreeMap<String, String>);

impl Macros {
    /// Expands `%{name}`, `%name`, `%{?name}` (empty when undefined) and `%%`; `None` when
    /// an undefined or conditional-default macro is left.
    fn expand(&self, text: &str) -> Option<String> {
        let mut s = text.to_string();
        for _ in 0..8 {
            if !s.contains('%') {
                return Some(s);
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(at) = rest.find('%') {
                out.push_str(&rest[..at]);
                let after = &rest[at + 1..];
                if let Some(r) = after.strip_prefix('%') {
                    out.push('%');
                    rest = r;
                } else if let Some(r) = after.strip_prefix('{') {
                    let end = r.find('}')?;
                    let inner = &r[..end];
                    let (optional, name) = match inner.strip_prefix('?') {
                        Some(n) => (true, n),
                        None => (false, inner),
                    };
                    match self.0.get(name) {
                        Some(v) => out.push_str(v),
                        None if optional && !name.contains(':') => {}
                        None => return None,
                    }
                    rest = &r[end + 1..];
                } else {
                    let len = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').count();
                    let name = &after[..len];
                    out.push_str(self.0.get(name)?);
                    rest = &after[len..];
                }
            }
            out.push_str(rest);
            s = out;
        }
        None
    }
}

/// A `%if` block's state: whether lines in it run, or unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cond {
    True,
    False,
    Unknown,
}

fn evaluate(expr: &str, macros: &Macros) -> Cond {
    let Some(e) = macros.expand(expr.trim()) else { return Cond::Unknown };
    let e = e.trim();
    let (negate, e) = match e.strip_prefix('!') {
        Some(r) => (true, r.trim()),
        None => (false, e),
    };
    match e.parse::<i64>() {
        Ok(n) => {
            if (n != 0) != negate {
                Cond::True
            } else {
                Cond::False
            }
        }
        Err(_) => Cond::Unknown,
    }
}

/// The file a `patch`/`git am` command reads: `$RPM_SOURCE_DIR/x`, `%{_sourcedir}/x`,
/// `%{PATCH3}`; `None` for anything else.
fn source_file(arg: &str, patches: &BTreeMap<u32, String>) -> Option<String> {
    let arg = arg.trim_matches('"').trim_matches('\'');
    for prefix in ["$RPM_SOURCE_DIR/", "${RPM_SOURCE_DIR}/", "%{_sourcedir}/", "%_sourcedir/", "%{SOURCE_DIR}/"] {
        if let Some(name) = arg.strip_prefix(prefix) {
            return Some(name.to_string());
        }
    }
    let n = arg.strip_prefix("%{PATCH").and_then(|r| r.strip_suffix('}'))?;
    patches.get(&n.trim().parse().ok()?).cloned()
}

/// The `%define`/`%global` macros and the Name, Version, Release and Epoch tags; and the
/// Patch tags (number to file name). Both may be anywhere in the spec.
fn macros_and_patch_tags(spec: &str) -> (Macros, BTreeMap<u32, String>) {
    let mut macros = Macros(BTreeMap::new());
    let mut patches: BTreeMap<u32, String> = BTreeMap::new();
    for line in spec.lines() {
        let t = line.trim();
        let define = t.strip_prefix("%define ").or_else(|| t.strip_prefix("%global "));
        if let Some(d) = define {
            let mut it = d.trim().splitn(2, char::is_whitespace);
            if let (Some(name), Some(value)) = (it.next(), it.next()) {
                macros.0.insert(name.to_string(), value.trim().to_string());
            }
            continue;
        }
        if let Some((tag, value)) = t.split_once(':') {
            let lower = tag.trim().to_ascii_lowercase();
            let value = value.trim();
            if ["name", "version", "release", "epoch"].contains(&lower.as_str()) {
                macros.0.entry(lower).or_insert_with(|| value.to_string());
            } else if let Some(n) = lower.strip_prefix("patch") {
                if let Ok(n) = if n.is_empty() { Ok(0) } else { n.parse::<u32>() } {
                    let expanded = macros.expand(value).unwrap_or_else(|| value.to_string());
                    patches.insert(n, expanded.rsplit('/').next().unwrap_or(&expanded).to_string());
                }
            }
        }
    }
    (macros, patches)
}

/// One line of `%prep` (trimmed), for refusals that quote it.
struct PrepLine<'a> {
    number: usize,
    text: &'a str,
}

impl PrepLine<'_> {
    fn refuse(&self, reason: &str) -> PrepError {
        PrepError { line: self.number, text: self.text.to_string(), reason: reason.to_string() }
    }
}

/// What surrounds the steps of `%prep`: shell function definitions and `%if` blocks.
#[derive(Default)]
struct PrepState {
    conds: Vec<Cond>,
    in_function: bool,
}

impl PrepState {
    /// Follows function definitions, blank lines, comments and conditionals; `true` when
    /// the line is one of those rather than a step.
    fn is_structure(&mut self, raw: &str, t: &str, macros: &Macros) -> bool {
        // Shell functions (RHEL's ApplyPatch/ApplyOptionalPatch) are definitions, not steps.
        if self.in_function {
            if raw.starts_with('}') {
                self.in_function = false;
            }
            return true;
        }
        if t.ends_with("()") || t.ends_with("() {") || t.ends_with("(){") {
            self.in_function = true;
            return true;
        }
        if t.is_empty() || t.starts_with('#') {
            return true;
        }
        if let Some(expr) = t.strip_prefix("%if ") {
            self.conds.push(evaluate(expr, macros));
        } else if t.starts_with("%ifarch") || t.starts_with("%ifnarch") || t.starts_with("%ifos") {
            self.conds.push(Cond::Unknown);
        } else if t == "%else" {
            if let Some(c) = self.conds.last_mut() {
                *c = match c {
                    Cond::True => Cond::False,
                    Cond::False => Cond::True,
                    Cond::Unknown => Cond::Unknown,
                };
            }
        } else if t == "%endif" {
            self.conds.pop();
        } else {
            return false;
        }
        true
    }

    /// Whether steps here run: not inside any false block; unknown inside an unknown one.
    fn active(&self) -> Cond {
        if self.conds.contains(&Cond::False) {
            Cond::False
        } else if self.conds.contains(&Cond::Unknown) {
            Cond::Unknown
        } else {
            Cond::True
        }
    }
}

/// The patches `%prep` applies, in order.
pub fn prep_patches(spec: &str) -> Result<Vec<PrepPatch>, PrepError> {
    let (macros, patches) = macros_and_patch_tags(spec);
    let lines: Vec<&str> = spec.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim() == "%prep" || l.trim().starts_with("%prep ")) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut state = PrepState::default();
    for (i, raw) in lines.iter().enumerate().skip(start + 1) {
        let t = raw.trim();
        if SECTIONS_AFTER_PREP.iter().any(|s| t == *s || t.starts_with(&format!("{s} "))) {
            break;
        }
        if state.is_structure(raw, t, &macros) {
            continue;
        }
        let line = PrepLine { number: i + 1, text: t };
        let found = patches_applied(&line, &macros, &patches)?;
        if found.is_empty() {
            continue;
        }
        match state.active() {
            Cond::False => {}
            Cond::Unknown => {
                return Err(line.refuse("the patch is applied under a condition that cannot be evaluated here"))
            }
            Cond::True => {
                out.extend(found.into_iter().map(|(name, optional)| PrepPatch { name, optional, line: line.number }))
            }
        }
    }
    Ok(out)
}

/// Refuses the patch options that change what a patch does: reversing, and strip levels
/// other than `-p1`.
fn check_args(line: &PrepLine<'_>, args: &[&str]) -> Result<(), PrepError> {
    for a in args {
        if *a == "-R" || a.starts_with("--reverse") {
            return Err(line.refuse("reversed patches are not followed"));
        }
        if let Some(level) = a.strip_prefix("-p") {
            if level != "1" {
                return Err(line.refuse("only -p1 patches are followed"));
            }
        }
    }
    Ok(())
}

/// The patch number of `%patch3 -p1`, `%patch 3`, `%patch -P 3`, `%patch -P3` (`rest`: what
/// follows `%patch`; `args`: the words after it), and the arguments left.
fn patch_macro_number<'a>(rest: &str, args: &'a [&'a str]) -> (Option<u32>, &'a [&'a str]) {
    if let Ok(n) = rest.parse::<u32>() {
        return (Some(n), args);
    }
    match args.first() {
        Some(&"-P") => (args.get(1).and_then(|n| n.parse().ok()), args.get(2..).unwrap_or(&[])),
        Some(a) => (a.strip_prefix("-P").unwrap_or(a).parse().ok(), &args[1..]),
        None => (Some(0), args),
    }
}

/// The patches one `%prep` line applies, each with whether it is optional.
fn patches_applied(
    line: &PrepLine<'_>,
    macros: &Macros,
    patches: &BTreeMap<u32, String>,
) -> Result<Vec<(String, bool)>, PrepError> {
    let t = line.text;
    let words: Vec<&str> = t.split_whitespace().collect();
    let first = words.first().copied().unwrap_or("");
    let mut found: Vec<(String, bool)> = Vec::new();
    if first == "ApplyPatch" || first == "ApplyOptionalPatch" {
        let name = words.get(1).ok_or_else(|| line.refuse("no patch named"))?;
        check_args(line, &words[2..])?;
        let name = macros.expand(name).ok_or_else(|| line.refuse("a macro in the patch name is not defined"))?;
        found.push((name, first == "ApplyOptionalPatch"));
    } else if let Some(rest) = first.strip_prefix("%patch") {
        let (number, args) = patch_macro_number(rest, &words[1..]);
        check_args(line, args)?;
        let n = number.ok_or_else(|| line.refuse("cannot tell which patch"))?;
        let name = patches.get(&n).ok_or_else(|| line.refuse(&format!("there is no Patch{n} tag")))?;
        found.push((name.clone(), false));
    } else if first == "%autosetup" || first == "%autopatch" {
        check_args(line, &words[1..])?;
        found.extend(patches.values().map(|p| (p.clone(), false)));
    } else if first == "patch" {
        check_args(line, &words[1..])?;
        let file = words
            .iter()
            .position(|w| *w == "<" || *w == "-i")
            .and_then(|at| words.get(at + 1))
            .and_then(|f| source_file(f, patches))
            .ok_or_else(|| line.refuse("cannot tell which file this patch command reads"))?;
        found.push((file, false));
    } else if t.starts_with("git am") || t.starts_with("git apply") {
        found.extend(git_patches(line, &words, patches)?.into_iter().map(|f| (f, false)));
    } else if t.contains("patch") && (t.contains('<') || t.contains('|') || t.contains("xargs") || t.contains("for ")) {
        return Err(line.refuse("this line applies patches in a way that is not followed"));
    }
    Ok(found)
}

/// The files a `git am`/`git apply` line applies.
fn git_patches(line: &PrepLine<'_>, words: &[&str], patches: &BTreeMap<u32, String>) -> Result<Vec<String>, PrepError> {
    let files: Vec<String> = words[2..]
        .iter()
        .filter(|w| !w.starts_with('-'))
        .map(|w| source_file(w, patches))
        .collect::<Option<_>>()
        .ok_or_else(|| line.refuse("cannot tell which files git applies"))?;
    if files.is_empty() {
        return Err(line.refuse("cannot tell which files git applies"));
    }
    check_args(line, &words[2..])?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        prep_patches(spec).unwrap().into_iter().map(|p| p.name).collect()
    }

    /// The shape of RHEL 7's kernel.spec %prep (abridged): helper functions whose bodies
    /// run `patch`, then one optional test patch.
    #[test]
    fn rhel7_style_prep() {
        let spec = r#"Name: kernel
%define rpmversion 3.10.0
%define pkgrelease 957.el7
Source0: linux-%{rpmversion}-%{pkgrelease}.tar.xz
Patch999999: linux-kernel-test.patch

%prep
ApplyPatch()
{
  local patch=$1
  shift
  case "$patch" in
  *) $patch_command ${1+"$@"} < "$RPM_SOURCE_DIR/$patch" ;;
  esac
}

ApplyOptionalPatch()
{
  local patch=$1
  if [ "$C" -gt 9 ]; then
    ApplyPatch $patch ${1+"$@"}
  fi
}

%setup -q -n kernel-%{rpmversion}-%{pkgrelease} -c
cd linux-%{rpmversion}-%{pkgrelease}
ApplyOptionalPatch linux-kernel-test.patch

%build
ApplyPatch not-in-prep.patch
"#;
        let got = prep_patches(spec).unwrap();
        assert_eq!(got, vec![PrepPatch { name: "linux-kernel-test.patch".into(), optional: true, line: 27 }]);
    }

    #[test]
    fn rhel9_style_conditional_with_macros() {
        let spec = "%global patchversion 5.14.0-284.11.1.el9_2\n%define nopatches 0\nName: kernel\n%prep\n%if !%{nopatches}\nApplyOptionalPatch patch-%{patchversion}-redhat.patch\n%endif\n%if 0\nApplyPatch never.patch\n%else\nApplyPatch always.patch\n%endif\nApplyOptionalPatch linux-kernel-test.patch\n";
        assert_eq!(
            names(spec),
            ["patch-5.14.0-284.11.1.el9_2-redhat.patch", "always.patch", "linux-kernel-test.patch"]
        );
    }

    #[test]
    fn numbered_and_plain_patch_forms() {
        let spec = "Name: k\nPatch0: zero.patch\nPatch1: https://example.invalid/one.patch\nPatch7: seven.patch\n%prep\n%setup -q\n%patch0 -p1\n%patch -P 1 -p1\n%patch 7\npatch -p1 -s < $RPM_SOURCE_DIR/extra.patch\npatch -p1 -i %{PATCH7}\ngit am %{_sourcedir}/a.patch %{_sourcedir}/b.patch\n%build\n";
        assert_eq!(
            names(spec),
            ["zero.patch", "one.patch", "seven.patch", "extra.patch", "seven.patch", "a.patch", "b.patch"]
        );
        let auto = "Name: k\nPatch2: b.patch\nPatch1: a.patch\n%prep\n%autosetup -p1\n";
        assert_eq!(names(auto), ["a.patch", "b.patch"]);
    }

    #[test]
    fn what_cannot_be_followed_is_refused_with_its_line() {
        for (spec, why) in [
            ("%prep\nfor p in *.patch; do patch -p1 < $p; done\n", "not followed"),
            ("Patch1: a.patch\n%prep\n%patch1 -p0\n", "-p1"),
            ("%prep\nApplyPatch x.patch -R\n", "reversed"),
            ("%prep\n%ifarch x86_64\nApplyPatch x.patch\n%endif\n", "condition"),
            ("%prep\n%if %{with_foo}\nApplyPatch x.patch\n%endif\n", "condition"),
            ("%prep\nApplyPatch %{undefined}.patch\n", "not defined"),
            ("%prep\n%patch4\n", "no Patch4"),
            ("%prep\npatch -p1 < somewhere/else.patch\n", "which file"),
        ] {
            let err = prep_patches(spec).unwrap_err();
            assert!(err.to_string().contains(why), "{spec:?}: {err}");
        }
        // No %prep at all: nothing to apply.
        assert!(prep_patches("Name: k\n").unwrap().is_empty());
    }
}
