//! Downloads against a real HTTP server on 127.0.0.1 (krbd-testsupport's).

use super::*;
use krbd_testsupport::http::StaticServer;

fn payload() -> Vec<u8> {
    (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect()
}

fn setup(cut: Option<u64>) -> (tempfile::TempDir, Cache, StaticServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www/7.6.1810/os");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("kernel.rpm"), payload()).unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let server = StaticServer::start(&dir.path().join("www"), cut);
    let sha = krbd_formats::digest::sha256_hex(&payload());
    (dir, cache, server, sha)
}

#[test]
fn downloads_verifies_and_then_hits_the_cache() {
    let (_d, cache, server, sha) = setup(None);
    let url = server.url("7.6.1810/os/kernel.rpm");
    let got = fetch(&cache, &url, Some(&sha), &krbd_progress::Silent).unwrap();
    let FetchOutcome::Fetched { path, sha256, cached } = got else { panic!("{got:?}") };
    assert_eq!((sha256.as_str(), cached), (sha.as_str(), false));
    assert_eq!(std::fs::read(&path).unwrap(), payload());
    assert_eq!(path, file_path(&cache, &sha, "rpm"));
    let again = fetch(&cache, &url, None, &krbd_progress::Silent).unwrap();
    assert!(matches!(again, FetchOutcome::Fetched { cached: true, .. }));
    assert_eq!(server.requests().len(), 1, "the second fetch must not reach the server");
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let (_d, cache, server, sha) = setup(Some(500_000));
    let url = server.url("7.6.1810/os/kernel.rpm");
    let err = fetch(&cache, &url, Some(&sha), &krbd_progress::Silent).unwrap_err();
    assert!(matches!(err, FetchError::DownloadFailed { .. }), "{err}");
    assert!(err.to_string().contains("resume"), "{err}");
    let got = fetch(&cache, &url, Some(&sha), &krbd_progress::Silent).unwrap();
    let FetchOutcome::Fetched { path, .. } = got else { panic!("{got:?}") };
    assert_eq!(std::fs::read(&path).unwrap(), payload());
    let log = server.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1], "GET /7.6.1810/os/kernel.rpm bytes=500000-");
}

#[test]
fn wrong_checksum_is_refused_and_not_kept() {
    let (_d, cache, server, _) = setup(None);
    let url = server.url("7.6.1810/os/kernel.rpm");
    let wrong = "0".repeat(64);
    let err = fetch(&cache, &url, Some(&wrong), &krbd_progress::Silent).unwrap_err();
    assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
    assert_eq!(std::fs::read_dir(cache.root().join("tmp")).unwrap().count(), 0);
    assert!(
        !cache.root().join("files").exists() || std::fs::read_dir(cache.root().join("files")).unwrap().count() == 0
    );
}

#[test]
fn missing_file_and_dead_server_are_told_apart() {
    let (_d, cache, server, _) = setup(None);
    let missing = fetch(&cache, &server.url("7.6.1810/updates/kernel.rpm"), None, &krbd_progress::Silent).unwrap();
    assert_eq!(missing, FetchOutcome::NotFound);
    let port = server.port;
    drop(server);
    let err = fetch(&cache, &format!("http://127.0.0.1:{port}/x.rpm"), None, &krbd_progress::Silent).unwrap_err();
    assert!(matches!(err, FetchError::DownloadFailed { .. }), "{err}");
}
