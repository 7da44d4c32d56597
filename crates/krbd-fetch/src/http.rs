//! Downloads over HTTP(S) into the content-addressed cache.
//!
//! A download goes to `tmp/partial-<hash of the URL>` first; an interrupted one resumes
//! from where it stopped with an HTTP `Range` request (a server that ignores the range and
//! answers 200 gets the file rewritten from the start). The finished file is hashed, checked
//! against the expected SHA-256 when one is given, and renamed to
//! `files/<sha256>.<ext>`; `urls/<hash of the URL>` remembers which content the URL gave,
//! so a second fetch of the same URL is a cache hit without any network traffic.

use crate::cache::Cache;
use crate::error::FetchError;
use crate::hash::KeyHasher;
use krbd_formats::digest::sha256_file;
use krbd_progress::{Listener, Unit};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the server said about one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The file, and whether it was already in the cache.
    Fetched { path: PathBuf, sha256: String, cached: bool },
    /// 404 or 410: the file is not there (try the next location).
    NotFound,
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // Per read, not for the whole body: a large package on a slow link is fine, a
        // stalled connection is not.
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build();
    ureq::Agent::new_with_config(config)
}

fn url_key(url: &str) -> String {
    KeyHasher::new("url-v1").str(url).finish()
}

/// The file name's extension in the cache (`rpm`, `deb`, else `bin`).
fn extension(url: &str) -> &'static str {
    if url.ends_with(".rpm") {
        "rpm"
    } else if url.ends_with(".deb") {
        "deb"
    } else {
        "bin"
    }
}

/// Where content with this sha256 lives once fetched.
pub fn file_path(cache: &Cache, sha256: &str, ext: &str) -> PathBuf {
    cache.root().join("files").join(format!("{sha256}.{ext}"))
}

/// Fetches `url` into the cache, resuming a partial download, and verifies `expected_sha256`
/// when given.
pub fn fetch(
    cache: &Cache,
    url: &str,
    expected_sha256: Option<&str>,
    listener: &dyn Listener,
) -> Result<FetchOutcome, FetchError> {
    let key = url_key(url);
    let index = cache.root().join("urls").join(&key);
    if let Some(hit) = cached(cache, url, &index, expected_sha256) {
        return Ok(hit);
    }
    let _lock = cache.lock("urls", &key)?;
    let tmp = cache.root().join("tmp");
    std::fs::create_dir_all(&tmp).map_err(FetchError::io("create cache folder", &tmp))?;
    let partial = tmp.join(format!("partial-{key}"));
    let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let mut request = agent().get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|e| download_failed(url, e.to_string()))?;
    let status = response.status().as_u16();
    let append = match status {
        200 => false,
        206 => true,
        // The partial file is already whole.
        416 if have > 0 => true,
        404 | 410 => return Ok(FetchOutcome::NotFound),
        other => return Err(download_failed(url, format!("the server answered HTTP {other}"))),
    };
    if status != 416 {
        let start = if append { have } else { 0 };
        receive(&mut response, url, &partial, start, listener)?;
    }
    publish(cache, url, &partial, &index, expected_sha256)
}

fn download_failed(url: &str, detail: String) -> FetchError {
    FetchError::DownloadFailed { url: url.to_string(), detail }
}

/// A known URL whose content is still in the cache (and is what the caller expects): no traffic.
fn cached(cache: &Cache, url: &str, index: &Path, expected_sha256: Option<&str>) -> Option<FetchOutcome> {
    let sha = std::fs::read_to_string(index).ok()?.trim().to_string();
    let path = file_path(cache, &sha, extension(url));
    let wanted = expected_sha256.is_none_or(|e| e.eq_ignore_ascii_case(&sha));
    (path.is_file() && wanted).then_some(FetchOutcome::Fetched { path, sha256: sha, cached: true })
}

/// Streams the response body into `partial`, appending when `start` > 0, with progress.
fn receive(
    response: &mut ureq::http::Response<ureq::Body>,
    url: &str,
    partial: &Path,
    start: u64,
    listener: &dyn Listener,
) -> Result<(), FetchError> {
    let total = response.body().content_length().map(|n| n + start);
    let append = start > 0;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(partial)
        .map_err(FetchError::io("create", partial))?;
    let name = url.rsplit('/').next().unwrap_or(url);
    listener.task_start(&format!("download {name}"), total, Unit::Bytes);
    let mut done = start;
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 256 * 1024];
    let result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = file.write_all(&buf[..n]) {
                    break Err(FetchError::io("write", partial)(e));
                }
                done += n as u64;
                listener.task_progress(done);
            }
            // What arrived stays in the partial file: the next run resumes there.
            Err(e) => break Err(download_failed(url, format!("{e} after {done} bytes; run again to resume"))),
        }
    };
    listener.task_finish();
    result?;
    file.sync_all().map_err(FetchError::io("sync", partial))
}

/// Verifies the finished download and moves it to its content address, then records the URL.
fn publish(
    cache: &Cache,
    url: &str,
    partial: &Path,
    index: &Path,
    expected_sha256: Option<&str>,
) -> Result<FetchOutcome, FetchError> {
    let sha = sha256_file(partial, |_| {}).map_err(FetchError::io("read", partial))?;
    if let Some(expected) = expected_sha256 {
        if !expected.eq_ignore_ascii_case(&sha) {
            // A corrupt partial file must not be resumed from.
            let _ = std::fs::remove_file(partial);
            return Err(FetchError::ChecksumMismatch {
                path: PathBuf::from(url),
                expected: expected.to_string(),
                actual: sha,
            });
        }
    }
    let path = file_path(cache, &sha, extension(url));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(FetchError::io("create cache folder", parent))?;
    }
    std::fs::rename(partial, &path).map_err(FetchError::io("publish download", &path))?;
    if let Some(parent) = index.parent() {
        std::fs::create_dir_all(parent).map_err(FetchError::io("create cache folder", parent))?;
    }
    krbd_formats::atomic::write_atomic(index, sha.as_bytes()).map_err(|e| FetchError::Io {
        op: "write",
        path: e.path,
        source: e.source,
    })?;
    Ok(FetchOutcome::Fetched { path, sha256: sha, cached: false })
}

/// The body of `url` (at most `limit` bytes), outside the cache: for indices that change
/// at the same URL (`repomd.xml`). `None`: 404 or 410.
pub fn get(url: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
    let mut response = agent().get(url).call().map_err(|e| download_failed(url, e.to_string()))?;
    match response.status().as_u16() {
        200 => {}
        404 | 410 => return Ok(None),
        other => return Err(download_failed(url, format!("the server answered HTTP {other}"))),
    }
    let body = crate::repodata::read_limited(response.body_mut().as_reader(), limit, url)
        .map_err(|e| download_failed(url, e.to_string()))?;
    Ok(Some(body))
}

/// Forgets what `url` gave (after its content turned out to be bad), so the next fetch
/// downloads it again.
pub fn forget(cache: &Cache, url: &str) {
    let index = cache.root().join("urls").join(url_key(url));
    if let Ok(sha) = std::fs::read_to_string(&index) {
        let _ = std::fs::remove_file(file_path(cache, sha.trim(), extension(url)));
    }
    let _ = std::fs::remove_file(index);
}

#[cfg(test)]
mod tests;
