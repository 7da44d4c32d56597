//! The follow state, in SQLite (bundled into the binary; no server): every release seen,
//! its inputs' hashes, each stage's verdict with its start and end, the artifacts (path and
//! sha256), and why a release failed.
//!
//! A stage's result is written in one transaction, and only after its artifacts are in
//! their final place: a run killed at any moment leaves either no record (the next run
//! redoes or adopts the stage) or a complete one. The schema is versioned with SQLite's
//! `user_version`.

use crate::error::FollowError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The schema this build writes; older states are migrated, newer ones refused.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE releases (
    id INTEGER PRIMARY KEY,
    job_key TEXT NOT NULL UNIQUE,
    line TEXT NOT NULL,
    family TEXT NOT NULL,
    release TEXT NOT NULL,
    version TEXT NOT NULL,
    series TEXT NOT NULL,
    series_digest TEXT NOT NULL,
    index_sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    first_seen INTEGER NOT NULL,
    finished INTEGER
);
CREATE TABLE inputs (
    release_id INTEGER NOT NULL REFERENCES releases(id),
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (release_id, role)
);
CREATE TABLE stages (
    release_id INTEGER NOT NULL REFERENCES releases(id),
    stage TEXT NOT NULL,
    verdict TEXT NOT NULL,
    started INTEGER NOT NULL,
    finished INTEGER,
    exit_code INTEGER,
    kind TEXT,
    reason TEXT,
    PRIMARY KEY (release_id, stage)
);
CREATE TABLE artifacts (
    release_id INTEGER NOT NULL REFERENCES releases(id),
    stage TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (release_id, stage, path)
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started INTEGER NOT NULL,
    finished INTEGER,
    discovered INTEGER,
    published INTEGER,
    failed INTEGER
);
";

/// Where a release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseState {
    /// Seen; stages still to run (or a run was killed in the middle).
    Pending,
    /// Every stage passed and the packages are in the repositories.
    Published,
    /// A stage failed; the reason says which and why. Nothing was published.
    Failed,
}

impl ReleaseState {
    fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Pending => "pending",
            ReleaseState::Published => "published",
            ReleaseState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> ReleaseState {
        match s {
            "published" => ReleaseState::Published,
            "failed" => ReleaseState::Failed,
            _ => ReleaseState::Pending,
        }
    }
}

/// A stage's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Started and not finished: the run was killed, or is running now.
    Running,
    Ok,
    Failed,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Running => "running",
            Verdict::Ok => "ok",
            Verdict::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Verdict {
        match s {
            "ok" => Verdict::Ok,
            "failed" => Verdict::Failed,
            _ => Verdict::Running,
        }
    }
}

/// A file a stage produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// One input package of a build, as its report records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputRow {
    pub role: String,
    pub name: String,
    pub version: Option<String>,
    pub sha256: String,
}

/// A stage's record.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: String,
    pub verdict: Verdict,
    /// Unix seconds.
    pub started: i64,
    pub finished: Option<i64>,
    pub exit_code: Option<i32>,
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub artifacts: Vec<Artifact>,
}

/// A release's record, with its stages and inputs.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRow {
    #[serde(skip)]
    pub id: i64,
    pub job_key: String,
    pub line: String,
    pub family: String,
    pub release: String,
    pub version: String,
    pub series: String,
    pub series_digest: String,
    /// The sha256 the mirror's index lists for the release's headers package.
    pub index_sha256: String,
    pub state: ReleaseState,
    pub reason: Option<String>,
    pub first_seen: i64,
    pub finished: Option<i64>,
    pub inputs: Vec<InputRow>,
    pub stages: Vec<StageRow>,
}

impl ReleaseRow {
    /// The record of `stage`, if any.
    pub fn stage(&self, stage: &str) -> Option<&StageRow> {
        self.stages.iter().find(|s| s.stage == stage)
    }
}

/// A release as discovery found it, before any work.
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub job_key: &'a str,
    pub line: &'a str,
    pub family: &'a str,
    pub release: &'a str,
    pub version: &'a str,
    pub series: &'a str,
    pub series_digest: &'a str,
    pub index_sha256: &'a str,
}

/// How a stage ended, to record.
#[derive(Debug, Clone)]
pub struct StageEnd {
    pub verdict: Verdict,
    pub exit_code: Option<i32>,
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub artifacts: Vec<Artifact>,
}

/// The open state database.
pub struct State {
    conn: Connection,
    path: PathBuf,
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl State {
    /// Opens (creating or migrating) the state at `path`.
    pub fn open(path: &Path) -> Result<State, FollowError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(FollowError::io("create the state folder", parent))?;
        }
        let conn = Connection::open(path).map_err(FollowError::state(path))?;
        // Durable before a stage is reported done; a busy wait for `status` beside a run.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(FollowError::state(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(FollowError::state(path))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(FollowError::state(path))?;
        if version > SCHEMA_VERSION {
            return Err(FollowError::StateTooNew { path: path.to_path_buf(), found: version, known: SCHEMA_VERSION });
        }
        if version == 0 {
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
                .map_err(FollowError::state(path))?;
        }
        Ok(State { conn, path: path.to_path_buf() })
    }

    fn err(&self) -> impl FnOnce(rusqlite::Error) -> FollowError + '_ {
        FollowError::state(&self.path)
    }

    /// Records a discovered release once; `true` when it is new.
    pub fn add_release(&self, r: &NewRelease<'_>) -> Result<bool, FollowError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO releases (job_key, line, family, release, version, series, series_digest,
                 index_sha256, state, first_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9)",
                params![
                    r.job_key,
                    r.line,
                    r.family,
                    r.release,
                    r.version,
                    r.series,
                    r.series_digest,
                    r.index_sha256,
                    now()
                ],
            )
            .map_err(self.err())?;
        Ok(n == 1)
    }

    /// Every release, oldest first, with its stages and inputs.
    pub fn releases(&self) -> Result<Vec<ReleaseRow>, FollowError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, job_key, line, family, release, version, series, series_digest, index_sha256, state,
                 reason, first_seen, finished FROM releases ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ReleaseRow {
                    id: r.get(0)?,
                    job_key: r.get(1)?,
                    line: r.get(2)?,
                    family: r.get(3)?,
                    release: r.get(4)?,
                    version: r.get(5)?,
                    series: r.get(6)?,
                    series_digest: r.get(7)?,
                    index_sha256: r.get(8)?,
                    state: ReleaseState::parse(&r.get::<_, String>(9)?),
                    reason: r.get(10)?,
                    first_seen: r.get(11)?,
                    finished: r.get(12)?,
                    inputs: Vec::new(),
                    stages: Vec::new(),
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|mut row| {
                row.stages = self.stages(row.id)?;
                row.inputs = self.inputs(row.id)?;
                Ok(row)
            })
            .collect()
    }

    /// The release with this job key.
    pub fn release(&self, job_key: &str) -> Result<Option<ReleaseRow>, FollowError> {
        Ok(self.releases()?.into_iter().find(|r| r.job_key == job_key))
    }

    fn stages(&self, release_id: i64) -> Result<Vec<StageRow>, FollowError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT stage, verdict, started, finished, exit_code, kind, reason FROM stages
                 WHERE release_id = ?1 ORDER BY started, rowid",
            )
            .map_err(self.err())?;
        let stages = stmt
            .query_map([release_id], |r| {
                Ok(StageRow {
                    stage: r.get(0)?,
                    verdict: Verdict::parse(&r.get::<_, String>(1)?),
                    started: r.get(2)?,
                    finished: r.get(3)?,
                    exit_code: r.get(4)?,
                    kind: r.get(5)?,
                    reason: r.get(6)?,
                    artifacts: Vec::new(),
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        stages
            .into_iter()
            .map(|mut s| {
                s.artifacts = self.artifacts(release_id, &s.stage)?;
                Ok(s)
            })
            .collect()
    }

    fn artifacts(&self, release_id: i64, stage: &str) -> Result<Vec<Artifact>, FollowError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, sha256, size FROM artifacts WHERE release_id = ?1 AND stage = ?2 ORDER BY path")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![release_id, stage], |r| {
                Ok(Artifact {
                    path: PathBuf::from(r.get::<_, String>(0)?),
                    sha256: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err());
        rows
    }

    fn inputs(&self, release_id: i64) -> Result<Vec<InputRow>, FollowError> {
        let mut stmt = self
            .conn
            .prepare("SELECT role, name, version, sha256 FROM inputs WHERE release_id = ?1 ORDER BY role")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([release_id], |r| {
                Ok(InputRow { role: r.get(0)?, name: r.get(1)?, version: r.get(2)?, sha256: r.get(3)? })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err());
        rows
    }

    /// Marks `stage` as started now (replacing an earlier, unfinished or failed record).
    pub fn begin_stage(&self, release_id: i64, stage: &str) -> Result<(), FollowError> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        tx.execute("DELETE FROM artifacts WHERE release_id = ?1 AND stage = ?2", params![release_id, stage])
            .map_err(self.err())?;
        tx.execute(
            "INSERT OR REPLACE INTO stages (release_id, stage, verdict, started) VALUES (?1, ?2, 'running', ?3)",
            params![release_id, stage, now()],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Records how `stage` ended, with its artifacts, in one transaction; a failure also
    /// marks the release failed with the stage's reason.
    pub fn end_stage(&self, release_id: i64, stage: &str, end: &StageEnd) -> Result<(), FollowError> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        let t = now();
        tx.execute(
            "INSERT INTO stages (release_id, stage, verdict, started) VALUES (?1, ?2, 'running', ?3)
             ON CONFLICT (release_id, stage) DO NOTHING",
            params![release_id, stage, t],
        )
        .map_err(self.err())?;
        tx.execute(
            "UPDATE stages SET verdict = ?3, finished = ?4, exit_code = ?5, kind = ?6, reason = ?7
             WHERE release_id = ?1 AND stage = ?2",
            params![release_id, stage, end.verdict.as_str(), t, end.exit_code, end.kind, end.reason],
        )
        .map_err(self.err())?;
        tx.execute("DELETE FROM artifacts WHERE release_id = ?1 AND stage = ?2", params![release_id, stage])
            .map_err(self.err())?;
        for a in &end.artifacts {
            tx.execute(
                "INSERT OR REPLACE INTO artifacts (release_id, stage, path, sha256, size) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![release_id, stage, a.path.display().to_string(), a.sha256, a.size as i64],
            )
            .map_err(self.err())?;
        }
        if end.verdict == Verdict::Failed {
            let reason = format!("{stage}: {}", end.reason.as_deref().unwrap_or("failed"));
            tx.execute(
                "UPDATE releases SET state = 'failed', reason = ?2, finished = ?3 WHERE id = ?1",
                params![release_id, reason, t],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// Records the build's inputs (replacing earlier ones).
    pub fn set_inputs(&self, release_id: i64, inputs: &[InputRow]) -> Result<(), FollowError> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        tx.execute("DELETE FROM inputs WHERE release_id = ?1", [release_id]).map_err(self.err())?;
        for i in inputs {
            tx.execute(
                "INSERT OR REPLACE INTO inputs (release_id, role, name, version, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![release_id, i.role, i.name, i.version, i.sha256],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// Sets a release's state (and the reason, for a failure).
    pub fn set_release_state(
        &self,
        release_id: i64,
        state: ReleaseState,
        reason: Option<&str>,
    ) -> Result<(), FollowError> {
        let finished = (state != ReleaseState::Pending).then(now);
        self.conn
            .execute(
                "UPDATE releases SET state = ?2, reason = ?3, finished = ?4 WHERE id = ?1",
                params![release_id, state.as_str(), reason, finished],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Forgets a release's stage records, so that the next run works it again.
    pub fn reset_release(&self, release_id: i64) -> Result<(), FollowError> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        tx.execute("DELETE FROM artifacts WHERE release_id = ?1", [release_id]).map_err(self.err())?;
        tx.execute("DELETE FROM stages WHERE release_id = ?1", [release_id]).map_err(self.err())?;
        tx.execute("UPDATE releases SET state = 'pending', reason = NULL, finished = NULL WHERE id = ?1", [release_id])
            .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// The release with `job_key` when it is pending (new, killed or retried) and the mirror
    /// now lists another `index_sha256` for its headers package than it was recorded with:
    /// its packages changed, so what was built from them must not be used.
    pub fn changed_pending(&self, job_key: &str, index_sha256: &str) -> Result<Option<ReleaseRow>, FollowError> {
        Ok(self.release(job_key)?.filter(|r| r.state == ReleaseState::Pending && r.index_sha256 != index_sha256))
    }

    /// Records the index entry a release is worked from now.
    pub fn set_index(&self, release_id: i64, index_sha256: &str) -> Result<(), FollowError> {
        self.conn
            .execute("UPDATE releases SET index_sha256 = ?2 WHERE id = ?1", params![release_id, index_sha256])
            .map_err(self.err())?;
        Ok(())
    }

    /// Starts a run's record; returns its id.
    pub fn begin_run(&self) -> Result<i64, FollowError> {
        self.conn.execute("INSERT INTO runs (started) VALUES (?1)", [now()]).map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Ends a run's record with its counts.
    pub fn end_run(&self, run: i64, discovered: usize, published: usize, failed: usize) -> Result<(), FollowError> {
        self.conn
            .execute(
                "UPDATE runs SET finished = ?2, discovered = ?3, published = ?4, failed = ?5 WHERE id = ?1",
                params![run, now(), discovered as i64, published as i64, failed as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The schema version of the open state.
    pub fn schema_version(&self) -> Result<i64, FollowError> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(self.err())
    }

    /// Whether a release with this key is known.
    pub fn knows(&self, job_key: &str) -> Result<bool, FollowError> {
        self.conn
            .query_row("SELECT 1 FROM releases WHERE job_key = ?1", [job_key], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(self.err())
    }
}

/// `2026-12-06T09:15:02Z` for Unix seconds.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn new_release<'a>(key: &'a str) -> NewRelease<'a> {
        NewRelease {
            job_key: key,
            line: "debian/6.12-amd64",
            family: "debian",
            release: "6.12.117+deb12-amd64",
            version: "6.12.117-1~deb12u1",
            series: "recovery-weight",
            series_digest: "s",
            index_sha256: "h",
        }
    }

    #[test]
    fn stages_are_recorded_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let state = State::open(&path).unwrap();
        assert!(state.add_release(&new_release("k1")).unwrap());
        assert!(!state.add_release(&new_release("k1")).unwrap(), "a release is added once");
        let id = state.releases().unwrap()[0].id;
        state.begin_stage(id, "build").unwrap();
        let artifact = Artifact { path: "/o/rbd.ko".into(), sha256: "ab".into(), size: 3 };
        let ok =
            StageEnd { verdict: Verdict::Ok, exit_code: Some(0), kind: None, reason: None, artifacts: vec![artifact] };
        state.end_stage(id, "build", &ok).unwrap();
        state.begin_stage(id, "check").unwrap();
        drop(state);
        let state = State::open(&path).unwrap();
        assert_eq!(state.schema_version().unwrap(), SCHEMA_VERSION);
        let r = &state.releases().unwrap()[0];
        assert_eq!(r.stage("build").unwrap().verdict, Verdict::Ok);
        assert_eq!(r.stage("build").unwrap().artifacts[0].sha256, "ab");
        assert_eq!(r.stage("check").unwrap().verdict, Verdict::Running, "an unfinished stage stays visible");
        let failed = StageEnd {
            verdict: Verdict::Failed,
            exit_code: Some(10),
            kind: Some("would-not-load".into()),
            reason: Some("rbd: refused".into()),
            artifacts: vec![],
        };
        state.end_stage(id, "check", &failed).unwrap();
        let r = &state.releases().unwrap()[0];
        assert_eq!(r.state, ReleaseState::Failed);
        assert_eq!(r.reason.as_deref(), Some("check: rbd: refused"));
    }

    #[test]
    fn only_a_pending_release_with_another_index_entry_counts_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        state.add_release(&new_release("k1")).unwrap();
        let id = state.releases().unwrap()[0].id;
        assert!(state.changed_pending("k1", "h").unwrap().is_none(), "the same entry");
        assert_eq!(state.changed_pending("k1", "h2").unwrap().map(|r| r.id), Some(id));
        state.set_index(id, "h2").unwrap();
        assert!(state.changed_pending("k1", "h2").unwrap().is_none(), "recorded");
        state.set_release_state(id, ReleaseState::Failed, Some("build: x")).unwrap();
        assert!(state.changed_pending("k1", "h3").unwrap().is_none(), "a failed one waits for retry");
        assert!(state.changed_pending("k2", "h3").unwrap().is_none(), "unknown");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(State::open(&path), Err(FollowError::StateTooNew { found: 99, .. })));
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_796_549_702), "2026-12-06T09:35:02Z");
    }
}
