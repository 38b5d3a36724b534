//! Downloads against a small HTTP server on loopback (never the real hosts): whole files,
//! resume after a broken connection, checksum failures, HTTP errors.

mod common;

use common::*;
use doublewin::data::download::{download, fetch, md5_file, Remote};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Serves `body` at any path ending in `name` (404 elsewhere), honouring `Range: bytes=N-`.
/// The first `cut_first` requests break the connection halfway through the body.
fn serve(name: &'static str, body: Vec<u8>, cut_first: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut from = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    from = r.trim().trim_end_matches('-').parse().unwrap();
                }
            }
            if !first.split_whitespace().nth(1).unwrap_or("").ends_with(name) {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let part = &body[from..];
            let status = if from > 0 { "206 Partial Content" } else { "200 OK" };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", part.len());
            stream.write_all(head.as_bytes()).unwrap();
            let send = if n < cut_first { &part[..part.len() / 2] } else { part };
            let _ = stream.write_all(send);
        }
    });
    (format!("http://{addr}/"), requests)
}

fn md5_hex(bytes: &[u8]) -> String {
    let dir = temp_dir("md5");
    std::fs::write(dir.join("f"), bytes).unwrap();
    md5_file(&dir.join("f")).unwrap()
}

fn payload() -> Vec<u8> {
    // Real content: the embedded digits' training images.
    std::fs::read(doublewin::data::embedded::data_dir().join("digits/train-images.idx")).unwrap()
}

#[test]
fn downloads_verify_and_skip_when_present() {
    let body = payload();
    let (base, requests) = serve("digits.idx", body.clone(), 0);
    let dir = temp_dir("dl-whole");
    let dest = dir.join("digits.idx");
    download(&format!("{base}digits.idx"), &dest, &md5_hex(&body)).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    download(&format!("{base}digits.idx"), &dest, &md5_hex(&body)).unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 1, "a verified file is not fetched again");
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let body = payload();
    let (base, requests) = serve("digits.idx", body.clone(), 1);
    let dir = temp_dir("dl-resume");
    let dest = dir.join("digits.idx");
    let err = download(&format!("{base}digits.idx"), &dest, &md5_hex(&body)).unwrap_err().to_string();
    assert!(err.contains("Re-run to resume"), "{err}");
    assert!(!dest.exists());
    let part = std::fs::metadata(dir.join("digits.idx.part")).unwrap().len() as usize;
    assert_eq!(part, body.len() / 2);
    download(&format!("{base}digits.idx"), &dest, &md5_hex(&body)).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[test]
fn checksum_mismatch_and_http_errors_are_reported() {
    let body = payload();
    let (base, _) = serve("digits.idx", body, 0);
    let dir = temp_dir("dl-errors");
    let err = download(&format!("{base}digits.idx"), &dir.join("d.idx"), "00000000000000000000000000000000").unwrap_err().to_string();
    assert!(err.contains("MD5") && err.contains("removed"), "{err}");
    assert!(!dir.join("d.idx.part").exists());
    let err = download(&format!("{base}nothing.bin"), &dir.join("n.bin"), "0").unwrap_err().to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    // A dataset fetch from a server holding other content fails on the published checksum.
    let err = fetch(Remote::Svhn, &dir, Some(&format!("{base}x/"))).unwrap_err().to_string();
    assert!(err.contains("404") || err.contains("MD5"), "{err}");
}
