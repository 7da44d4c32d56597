//! A tiny static HTTP/1.1 server on 127.0.0.1 for tests: serves a folder, honours
//! `Range: bytes=N-`, and can cut a response short once to exercise resuming.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct StaticServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// "METHOD PATH RANGE" of every request, in order.
    pub log: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    /// Serves `root`. `cut_after`: the first full (non-range) response stops after this
    /// many body bytes and closes the connection.
    pub fn start(root: &Path, cut_after: Option<u64>) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = root.to_path_buf();
        let cut = Arc::new(AtomicU64::new(cut_after.unwrap_or(u64::MAX)));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = serve_one(conn, &root, &log2, &cut);
            }
        });
        StaticServer { port, stop, log, thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(mut conn: TcpStream, root: &Path, log: &Mutex<Vec<String>>, cut: &AtomicU64) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/").to_string());
    let mut range_from: Option<u64> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range_from = v.trim().strip_prefix("bytes=").and_then(|r| r.trim_end_matches('-').parse().ok());
            }
        }
    }
    if let Ok(mut l) = log.lock() {
        l.push(
            format!("{method} {path} {}", range_from.map(|r| format!("bytes={r}-")).unwrap_or_default())
                .trim()
                .to_string(),
        );
    }
    let path = percent_decode(path.split('?').next().unwrap_or(""));
    let rel: PathBuf =
        Path::new(path.trim_start_matches('/')).components().filter(|c| matches!(c, Component::Normal(_))).collect();
    let file = root.join(rel);
    let Ok(data) = std::fs::read(&file) else {
        conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    };
    let len = data.len() as u64;
    match range_from {
        Some(from) if from >= len => {
            conn.write_all(format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())?;
        }
        Some(from) => {
            let body = &data[from as usize..];
            conn.write_all(
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    len - 1,
                    body.len()
                )
                .as_bytes(),
            )?;
            conn.write_all(body)?;
        }
        None => {
            conn.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").as_bytes(),
            )?;
            let limit = cut.swap(u64::MAX, Ordering::SeqCst);
            if limit < len {
                conn.write_all(&data[..limit as usize])?;
                conn.flush()?;
                // Dropping the connection early: the client sees a short body.
                return Ok(());
            }
            conn.write_all(&data)?;
        }
    }
    conn.flush()
}

/// `%XX` escapes decoded, as a web server does before it maps a path to a file (apt asks
/// for `pool/.../name_1.0%7edeb12%2b1_amd64.deb`).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
