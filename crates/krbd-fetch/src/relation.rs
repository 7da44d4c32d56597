//! Debian package relations (`Depends: a (>= 1.0) | b, c (= 2.0)`), as Debian Policy §7.1
//! writes them, and the version apt picks to satisfy one.
//!
//! A field is a comma-separated list of relations; a relation is a `|`-separated list of
//! alternatives; an alternative is a package name, optionally with an architecture
//! qualifier (`:any`), a version constraint in parentheses, an architecture list in
//! brackets and build profiles in angle brackets. Only names and version constraints
//! matter for choosing a binary package here; the rest is read and dropped.

use crate::apt::AptPackage;
use crate::error::FetchError;
use crate::version;
use std::cmp::Ordering;
use std::fmt;

/// A version comparison, as written between the parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<<`
    Earlier,
    /// `<=` (and the obsolete `<`, which dpkg reads the same way)
    EarlierOrEqual,
    /// `=`
    Exactly,
    /// `>=` (and the obsolete `>`, which dpkg reads the same way)
    LaterOrEqual,
    /// `>>`
    Later,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Earlier => "<<",
            Op::EarlierOrEqual => "<=",
            Op::Exactly => "=",
            Op::LaterOrEqual => ">=",
            Op::Later => ">>",
        }
    }

    /// Whether `candidate` compared with the constraint's version is allowed.
    fn allows(self, candidate_vs_wanted: Ordering) -> bool {
        match self {
            Op::Earlier => candidate_vs_wanted == Ordering::Less,
            Op::EarlierOrEqual => candidate_vs_wanted != Ordering::Greater,
            Op::Exactly => candidate_vs_wanted == Ordering::Equal,
            Op::LaterOrEqual => candidate_vs_wanted != Ordering::Less,
            Op::Later => candidate_vs_wanted == Ordering::Greater,
        }
    }
}

/// `(op version)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub op: Op,
    pub version: String,
}

impl Constraint {
    /// Whether `candidate` satisfies the constraint, in dpkg's version order.
    pub fn allows(&self, candidate: &str) -> bool {
        self.op.allows(version::compare(candidate, &self.version))
    }
}

/// One alternative of a relation: a package name with an optional version constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    pub constraint: Option<Constraint>,
}

impl Alternative {
    /// Whether `name`=`version` satisfies this alternative.
    pub fn allows(&self, name: &str, version: &str) -> bool {
        self.name == name && self.constraint.as_ref().is_none_or(|c| c.allows(version))
    }
}

/// One comma-separated item of a relation field: satisfied by any of its alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub alternatives: Vec<Alternative>,
}

impl Relation {
    /// The package apt installs for this relation among `known` (every version apt's index
    /// holds of the packages involved): the first alternative, in the order written, that
    /// some known version satisfies, and of that alternative the highest such version.
    /// `None` when nothing known satisfies the relation.
    pub fn choose<'a>(&self, known: &'a [AptPackage]) -> Option<&'a AptPackage> {
        self.alternatives.iter().find_map(|alt| {
            known
                .iter()
                .filter(|p| alt.allows(&p.name, &p.version))
                .max_by(|a, b| version::compare(&a.version, &b.version))
        })
    }

    /// Whether any alternative names `name`.
    pub fn names(&self, name: impl Fn(&str) -> bool) -> bool {
        self.alternatives.iter().any(|a| name(&a.name))
    }
}

impl fmt::Display for Alternative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.constraint {
            Some(c) => write!(f, "{} ({} {})", self.name, c.op.symbol(), c.version),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Relation {
    type Err = FetchError;
    fn from_str(s: &str) -> Result<Relation, FetchError> {
        let alternatives = s.split('|').map(|a| parse_alternative(a, s)).collect::<Result<Vec<_>, _>>()?;
        Ok(Relation { alternatives })
    }
}

/// Every relation of a field such as `Depends`; an empty field has none.
pub fn parse_field(field: &str) -> Result<Vec<Relation>, FetchError> {
    field.split(',').filter(|r| !r.trim().is_empty()).map(str::parse).collect()
}

fn bad(relation: &str, reason: &str) -> FetchError {
    FetchError::BadRelation { relation: relation.trim().to_string(), reason: reason.to_string() }
}

fn parse_alternative(text: &str, relation: &str) -> Result<Alternative, FetchError> {
    let text = text.trim();
    let name_end = text.find(|c: char| c.is_whitespace() || "([<".contains(c)).unwrap_or(text.len());
    let (name, mut rest) = text.split_at(name_end);
    // `name:any`, `name:amd64`: the architecture qualifier does not change the name.
    let name = name.split(':').next().unwrap_or("");
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !name_ok {
        return Err(bad(relation, "expected a package name"));
    }
    let mut constraint = None;
    rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('(') {
        let (body, after) = inner.split_once(')').ok_or_else(|| bad(relation, "unclosed '('"))?;
        constraint = Some(parse_constraint(body, relation)?);
        rest = after.trim_start();
    }
    // Architecture lists and build profiles restrict where a relation applies; for the
    // binary packages of one architecture apt already kept only what applies.
    while let Some(open) = rest.chars().next().filter(|c| *c == '[' || *c == '<') {
        let close = if open == '[' { ']' } else { '>' };
        let end = rest.find(close).ok_or_else(|| bad(relation, "unclosed '[' or '<'"))?;
        rest = rest[end + 1..].trim_start();
    }
    if !rest.is_empty() {
        return Err(bad(relation, "unexpected text after the package name"));
    }
    Ok(Alternative { name: name.to_string(), constraint })
}

fn parse_constraint(body: &str, relation: &str) -> Result<Constraint, FetchError> {
    let body = body.trim();
    let op_len = body.find(|c: char| !"<>=".contains(c)).unwrap_or(body.len());
    let (op, version) = body.split_at(op_len);
    let op = match op {
        "<<" => Op::Earlier,
        "<=" | "<" => Op::EarlierOrEqual,
        "=" => Op::Exactly,
        ">=" | ">" => Op::LaterOrEqual,
        ">>" => Op::Later,
        _ => return Err(bad(relation, "expected one of << <= = >= >> before the version")),
    };
    let version = version.trim();
    if version.is_empty() || version.contains(char::is_whitespace) {
        return Err(bad(relation, "expected one version inside the parentheses"));
    }
    Ok(Constraint { op, version: version.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> AptPackage {
        AptPackage {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            sha256: format!("{name}={version}"),
            size: 1,
            depends: String::new(),
            source: "linux".into(),
        }
    }

    fn chosen(relation: &str, known: &[AptPackage]) -> Option<String> {
        relation.parse::<Relation>().unwrap().choose(known).map(AptPackage::spec)
    }

    /// The archive as it was when the kbuild relations mattered: one linux-kbuild-6.1 per
    /// suite, linux-source-6.1 in many versions.
    fn archive() -> Vec<AptPackage> {
        vec![
            pkg("linux-kbuild-6.1", "6.1.176-1"),
            pkg("linux-kbuild-6.1", "6.1.192-3"),
            pkg("linux-source-6.1", "6.1.170-3"),
            pkg("linux-source-6.1", "6.1.176-1"),
            pkg("linux-source-6.1", "6.1.192-2"),
            pkg("linux-source-6.1", "6.1.192-3"),
            pkg("linux-kbuild-6.12.117+deb12", "6.12.117-1~deb12u1"),
        ]
    }

    #[test]
    fn each_operator_picks_the_highest_version_it_allows() {
        let a = archive();
        let cases = [
            ("linux-kbuild-6.1 (>= 6.1.170-3)", Some("linux-kbuild-6.1=6.1.192-3")),
            ("linux-kbuild-6.1 (>= 6.1.192-3)", Some("linux-kbuild-6.1=6.1.192-3")),
            ("linux-kbuild-6.1 (>> 6.1.192-3)", None),
            ("linux-kbuild-6.1 (>> 6.1.176-1)", Some("linux-kbuild-6.1=6.1.192-3")),
            ("linux-kbuild-6.1 (<= 6.1.192-2)", Some("linux-kbuild-6.1=6.1.176-1")),
            ("linux-kbuild-6.1 (<< 6.1.176-1)", None),
            ("linux-kbuild-6.1 (<< 6.1.192-3)", Some("linux-kbuild-6.1=6.1.176-1")),
            ("linux-source-6.1 (= 6.1.176-1)", Some("linux-source-6.1=6.1.176-1")),
            ("linux-source-6.1 (= 6.1.192-1)", None),
            ("linux-source-6.1 (<< 6.1.192-2)", Some("linux-source-6.1=6.1.176-1")),
            ("linux-source-6.1", Some("linux-source-6.1=6.1.192-3")),
            // The obsolete single-character forms mean <= and >=.
            ("linux-source-6.1 (< 6.1.192-2)", Some("linux-source-6.1=6.1.192-2")),
            ("linux-source-6.1 (> 6.1.170-3)", Some("linux-source-6.1=6.1.192-3")),
            // Tilde sorts before everything: 6.12.117-1~deb12u1 is earlier than 6.12.117-1.
            ("linux-kbuild-6.12.117+deb12 (>= 6.12.117-1)", None),
            ("linux-kbuild-6.12.117+deb12 (>= 6.12.117-1~)", Some("linux-kbuild-6.12.117+deb12=6.12.117-1~deb12u1")),
        ];
        for (relation, want) in cases {
            assert_eq!(chosen(relation, &a).as_deref(), want, "{relation}");
        }
    }

    #[test]
    fn alternatives_are_tried_in_the_order_written() {
        let a = archive();
        let first = "linux-kbuild-6.1 (>= 6.1.200-1) | linux-source-6.1 (<= 6.1.192-2) | linux-kbuild-6.1";
        // The first alternative is unsatisfiable, the second is, the third is not reached.
        assert_eq!(chosen(first, &a).as_deref(), Some("linux-source-6.1=6.1.192-2"));
        assert_eq!(chosen("no-such-package | linux-kbuild-6.1", &a).as_deref(), Some("linux-kbuild-6.1=6.1.192-3"));
        assert_eq!(chosen("no-such-package | linux-kbuild-6.1 (= 6.1.170-3)", &a), None);
    }

    #[test]
    fn a_field_parses_into_relations_and_prints_back() {
        let field = "linux-headers-6.1.0-47-common (= 6.1.170-3), linux-kbuild-6.1 (>= 6.1.170-3),\n \
                     linux-image-6.12.107+deb12-amd64 (= 6.12.107-1~deb12u1) | \
                     linux-image-6.12.107+deb12-amd64-unsigned (= 6.12.107-1~deb12u1), \
                     gcc-12:any, foo (>=1.0) [amd64 i386] <!nocheck>";
        let rels = parse_field(field).unwrap();
        assert_eq!(rels.len(), 5);
        assert_eq!(rels[1].to_string(), "linux-kbuild-6.1 (>= 6.1.170-3)");
        assert_eq!(
            rels[1].alternatives[0].constraint,
            Some(Constraint { op: Op::LaterOrEqual, version: "6.1.170-3".into() })
        );
        assert_eq!(rels[2].alternatives.len(), 2);
        assert_eq!(rels[2].alternatives[1].name, "linux-image-6.12.107+deb12-amd64-unsigned");
        assert_eq!(rels[3].to_string(), "gcc-12");
        assert_eq!(rels[4].to_string(), "foo (>= 1.0)");
        assert!(parse_field("").unwrap().is_empty());
    }

    #[test]
    fn malformed_relations_are_refused() {
        for bad in ["foo (>= )", "foo (~ 1.0)", "foo (>= 1.0", "Foo", "foo bar", "(>= 1.0)", "foo | ", "foo [amd64"] {
            let e = bad.parse::<Relation>().expect_err(bad);
            assert!(matches!(e, FetchError::BadRelation { .. }), "{bad}: {e}");
        }
    }
}
