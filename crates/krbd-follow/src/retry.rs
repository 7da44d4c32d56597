//! `follow retry`: a release recorded as failed stays failed (a plain run does not work it
//! again, so a broken release does not cost a build on every timer tick). Once the cause is
//! fixed, retry marks it pending again; the next run then skips the stages that passed and
//! redoes the release from its first failed stage, or from build when discovery finds that
//! its packages changed in the mirror ([`crate::state::State::refresh_index`]).

use crate::error::FollowError;
use crate::state::{ReleaseRow, ReleaseState, State, Verdict};

/// Which releases to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrySelection {
    /// These releases (`6.12.118+deb12-amd64`), each of which must be known.
    Releases(Vec<String>),
    /// Every release recorded as failed.
    AllFailed,
}

/// A release that was failed and is pending again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Retried {
    pub release: String,
    pub line: String,
    /// The stage the next run begins with (the first one that failed).
    pub from_stage: Option<String>,
    /// Why it had failed.
    pub reason: Option<String>,
}

/// A named release that was not failed, so nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotFailed {
    pub release: String,
    pub state: ReleaseState,
}

/// What a retry did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetryOutcome {
    pub retried: Vec<Retried>,
    /// Named releases that were pending or published already (left as they are).
    pub not_failed: Vec<NotFailed>,
}

/// Marks the selected failed releases pending again. A named release the state does not
/// know is [`FollowError::UnknownRelease`], before anything changes.
pub fn retry(state: &State, selection: &RetrySelection) -> Result<RetryOutcome, FollowError> {
    let rows = state.releases()?;
    let chosen: Vec<&ReleaseRow> = match selection {
        RetrySelection::AllFailed => rows.iter().filter(|r| r.state == ReleaseState::Failed).collect(),
        RetrySelection::Releases(names) => {
            if let Some(unknown) = names.iter().find(|n| !rows.iter().any(|r| &r.release == *n)) {
                return Err(FollowError::UnknownRelease { what: unknown.clone() });
            }
            rows.iter().filter(|r| names.contains(&r.release)).collect()
        }
    };
    let mut outcome = RetryOutcome::default();
    for row in chosen {
        if row.state != ReleaseState::Failed {
            // The same release under an older series can be failed while this one is not.
            if !outcome.not_failed.iter().any(|n| n.release == row.release) {
                outcome.not_failed.push(NotFailed { release: row.release.clone(), state: row.state });
            }
            continue;
        }
        state.set_release_state(row.id, ReleaseState::Pending, None)?;
        let first_failed = row.stages.iter().find(|s| s.verdict != Verdict::Ok).map(|s| s.stage.clone());
        outcome.retried.push(Retried {
            release: row.release.clone(),
            line: row.line.clone(),
            from_stage: first_failed,
            reason: row.reason.clone(),
        });
    }
    // A release retried under one series is not "not failed" because of another.
    outcome.not_failed.retain(|n| !outcome.retried.iter().any(|r| r.release == n.release));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{tests::new_release, StageEnd};

    fn ended(verdict: Verdict, reason: Option<&str>) -> StageEnd {
        StageEnd { verdict, exit_code: None, kind: None, reason: reason.map(String::from), artifacts: Vec::new() }
    }

    /// A state with `a` failed at check (build ok), `b` published and `c` failed at build.
    fn three_releases(dir: &std::path::Path) -> State {
        let state = State::open(&dir.join("state.db")).unwrap();
        for (key, release) in [("ka", "a"), ("kb", "b"), ("kc", "c")] {
            let mut r = new_release(key);
            r.release = release;
            assert!(state.add_release(&r).unwrap());
        }
        let id = |release: &str| state.releases().unwrap().into_iter().find(|r| r.release == release).unwrap().id;
        state.begin_stage(id("a"), "build").unwrap();
        state.end_stage(id("a"), "build", &ended(Verdict::Ok, None)).unwrap();
        state.begin_stage(id("a"), "check").unwrap();
        state.end_stage(id("a"), "check", &ended(Verdict::Failed, Some("rbd refused"))).unwrap();
        state.set_release_state(id("b"), ReleaseState::Published, None).unwrap();
        state.begin_stage(id("c"), "build").unwrap();
        state.end_stage(id("c"), "build", &ended(Verdict::Failed, Some("patch does not apply"))).unwrap();
        state
    }

    fn state_of(state: &State, release: &str) -> ReleaseState {
        state.releases().unwrap().into_iter().find(|r| r.release == release).unwrap().state
    }

    #[test]
    fn a_named_failed_release_is_pending_again_from_its_failed_stage() {
        let dir = tempfile::tempdir().unwrap();
        let state = three_releases(dir.path());
        let out = retry(&state, &RetrySelection::Releases(vec!["a".into(), "b".into()])).unwrap();
        assert_eq!(
            out.retried,
            [Retried {
                release: "a".into(),
                line: new_release("x").line.into(),
                from_stage: Some("check".into()),
                reason: Some("check: rbd refused".into()),
            }]
        );
        assert_eq!(out.not_failed, [NotFailed { release: "b".into(), state: ReleaseState::Published }]);
        assert_eq!(state_of(&state, "a"), ReleaseState::Pending);
        assert_eq!(state_of(&state, "c"), ReleaseState::Failed, "not named, not retried");
        let a = state.releases().unwrap().into_iter().find(|r| r.release == "a").unwrap();
        assert_eq!(a.stage("build").unwrap().verdict, Verdict::Ok, "the build that passed is kept");
    }

    #[test]
    fn all_failed_retries_every_failed_release_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let state = three_releases(dir.path());
        let out = retry(&state, &RetrySelection::AllFailed).unwrap();
        let names: Vec<_> = out.retried.iter().map(|r| (r.release.as_str(), r.from_stage.as_deref())).collect();
        assert_eq!(names, [("a", Some("check")), ("c", Some("build"))]);
        assert_eq!(state_of(&state, "b"), ReleaseState::Published);
        assert_eq!(retry(&state, &RetrySelection::AllFailed).unwrap(), RetryOutcome::default(), "nothing left");
    }

    #[test]
    fn an_unknown_release_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = three_releases(dir.path());
        match retry(&state, &RetrySelection::Releases(vec!["a".into(), "zz".into()])) {
            Err(FollowError::UnknownRelease { what }) => assert_eq!(what, "zz"),
            other => panic!("{other:?}"),
        }
        assert_eq!(state_of(&state, "a"), ReleaseState::Failed);
    }
}
