//! The hunk matcher against GNU patch: random files, real `diff -u` patches, and targets
//! edited so that hunks land at offsets or need fuzz. Both must produce the same file and
//! report the same offset and fuzz for every hunk.

use krbd_build::patch::{apply_file, HunkStatus, PatchFile};
use std::process::Command;

/// A small deterministic generator, so a failure can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn line(rng: &mut Rng) -> String {
    // A small vocabulary makes repeated lines (and so ambiguous matches) likely.
    const WORDS: [&str; 8] = ["foo();", "return 0;", "}", "{", "x++;", "if (a)", "", "bar(b);"];
    format!("\t{}", WORDS[rng.below(WORDS.len())])
}

struct Case {
    original: Vec<String>,
    edited: Vec<String>,
    target: Vec<String>,
}

fn make_case(seed: u64) -> Case {
    let mut rng = Rng(seed * 2654435761 + 1);
    let n = 40 + rng.below(60);
    let original: Vec<String> = (0..n).map(|_| line(&mut rng)).collect();
    // The change: a few separate edits.
    let mut edited = original.clone();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(edited.len());
        match rng.below(3) {
            0 => edited[at] = format!("\tchanged_{}();", rng.below(1000)),
            1 => edited.insert(at, format!("\tadded_{}();", rng.below(1000))),
            _ => {
                edited.remove(at);
            }
        }
    }
    // The file the patch is applied to: the original, shifted and slightly changed.
    let mut target = original.clone();
    for _ in 0..rng.below(3) {
        let at = rng.below(target.len());
        match rng.below(3) {
            0 => target.insert(at, format!("\tunrelated_{}();", rng.below(1000))),
            1 => target[at] = format!("\tdrifted_{}();", rng.below(1000)),
            _ => {
                target.remove(at);
            }
        }
    }
    Case { original, edited, target }
}

fn text(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `(hunk, offset, fuzz)` from GNU patch's messages; hunks it applied silently are exact.
fn gnu_messages(stdout: &str) -> Vec<(usize, i64, usize, bool)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Hunk #")?;
            let (num, rest) = rest.split_once(' ')?;
            let hunk: usize = num.parse().ok()?;
            let failed = rest.starts_with("FAILED");
            let offset = rest
                .split_once("(offset ")
                .and_then(|(_, r)| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let fuzz = rest
                .split_once("with fuzz ")
                .and_then(|(_, r)| r.trim_end_matches(|c: char| !c.is_ascii_digit()).split(' ').next())
                .and_then(|n| n.trim_end_matches('.').parse().ok())
                .unwrap_or(0);
            Some((hunk, offset, fuzz, failed))
        })
        .collect()
}

#[test]
fn hunks_match_where_gnu_patch_matches_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut compared, mut moved) = (0, 0);
    for seed in 0..150u64 {
        let case = make_case(seed);
        let (a, b, t) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("t"));
        std::fs::write(&a, text(&case.original)).unwrap();
        std::fs::write(&b, text(&case.edited)).unwrap();
        std::fs::write(&t, text(&case.target)).unwrap();
        let diff =
            Command::new("diff").args(["-u", "--label", "a/f", "--label", "b/f"]).arg(&a).arg(&b).output().unwrap();
        let diff = String::from_utf8_lossy(&diff.stdout).into_owned();
        if diff.is_empty() {
            continue;
        }
        let patch = PatchFile::parse(&diff).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{diff}"));
        let ours = apply_file(&patch.files[0], Some(&text(&case.target)), 2);

        let out = Command::new("patch")
            .args(["--no-backup-if-mismatch", "-r", "-", "-F2", "-N"])
            .arg(&t)
            .stdin(
                std::fs::File::open({
                    let p = dir.path().join("p.diff");
                    std::fs::write(&p, &diff).unwrap();
                    p
                })
                .unwrap(),
            )
            .output()
            .unwrap();
        let gnu_ok = out.status.success();
        let messages = gnu_messages(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            !ours.failed(),
            gnu_ok,
            "seed {seed}: GNU patch said {:?}\n{diff}",
            String::from_utf8_lossy(&out.stdout)
        );
        if !gnu_ok {
            continue;
        }
        let gnu_text = std::fs::read_to_string(&t).unwrap();
        assert_eq!(ours.content.as_deref(), Some(gnu_text.as_str()), "seed {seed}: results differ\n{diff}");
        for h in &ours.hunks {
            let (offset, fuzz) = messages.iter().find(|m| m.0 == h.hunk).map(|m| (m.1, m.2)).unwrap_or((0, 0));
            assert_eq!((h.offset, h.fuzz), (offset, fuzz), "seed {seed} hunk {}: {:?}\n{diff}", h.hunk, h.status);
            if h.status != HunkStatus::Applied {
                moved += 1;
            }
        }
        compared += 1;
    }
    println!("{compared} patches compared with GNU patch, {moved} hunks at an offset or with fuzz");
    assert!(compared > 100 && moved > 20, "the cases must exercise offsets and fuzz ({compared}, {moved})");
}
