//! Canonical downloads of MNIST, Fashion-MNIST, CIFAR-10/100 and SVHN for users with internet
//! access: resumable (a `.part` file and an HTTP Range request), checksummed (MD5, as published
//! with the datasets), with progress on stderr, and moved into place only when complete.
//! Tests point `base_url` at a server on loopback; nothing here runs during the test suite
//! against the real hosts.

use super::cifar::{self, Cifar};
use super::{idx, svhn, Dataset, DatasetMeta};
use crate::error::{Error, Result};
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A dataset that can be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remote {
    Mnist,
    FashionMnist,
    Cifar10,
    Cifar100,
    Svhn,
}

/// One file of a remote dataset.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    pub name: &'static str,
    pub md5: &'static str,
}

impl Remote {
    pub fn name(self) -> &'static str {
        match self {
            Remote::Mnist => "mnist",
            Remote::FashionMnist => "fashion-mnist",
            Remote::Cifar10 => "cifar10",
            Remote::Cifar100 => "cifar100",
            Remote::Svhn => "svhn",
        }
    }

    pub fn from_name(name: &str) -> Result<Remote> {
        [Remote::Mnist, Remote::FashionMnist, Remote::Cifar10, Remote::Cifar100, Remote::Svhn]
            .into_iter()
            .find(|r| r.name() == name.trim().to_ascii_lowercase().replace('_', "-"))
            .ok_or_else(|| {
                Error::not_found(format!("downloadable dataset '{name}'"), "choose mnist, fashion-mnist, cifar10, cifar100 or svhn")
            })
    }

    /// The canonical location the files are published at.
    pub fn canonical_base(self) -> &'static str {
        match self {
            Remote::Mnist => "https://ossci-datasets.s3.amazonaws.com/mnist/",
            Remote::FashionMnist => "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            Remote::Cifar10 | Remote::Cifar100 => "https://www.cs.toronto.edu/~kriz/",
            Remote::Svhn => "http://ufldl.stanford.edu/housenumbers/",
        }
    }

    /// The files and their published MD5 checksums.
    pub fn files(self) -> &'static [RemoteFile] {
        match self {
            Remote::Mnist => &[
                RemoteFile { name: "train-images-idx3-ubyte.gz", md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873" },
                RemoteFile { name: "train-labels-idx1-ubyte.gz", md5: "d53e105ee54ea40749a09fcbcd1e9432" },
                RemoteFile { name: "t10k-images-idx3-ubyte.gz", md5: "9fb629c4189551a2d022fa330f9573f3" },
                RemoteFile { name: "t10k-labels-idx1-ubyte.gz", md5: "ec29112dd5afa0611ce80d1b7f02629c" },
            ],
            Remote::FashionMnist => &[
                RemoteFile { name: "train-images-idx3-ubyte.gz", md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d" },
                RemoteFile { name: "train-labels-idx1-ubyte.gz", md5: "25c81989df183df01b3e8a0aad5dffbe" },
                RemoteFile { name: "t10k-images-idx3-ubyte.gz", md5: "bef4ecab320f06d8554ea6380940ec79" },
                RemoteFile { name: "t10k-labels-idx1-ubyte.gz", md5: "bb300cfdad3c16e7a12a480ee83cd310" },
            ],
            Remote::Cifar10 => &[RemoteFile { name: "cifar-10-binary.tar.gz", md5: "c32a1d4ab5d03f1284b67883e8d87530" }],
            Remote::Cifar100 => &[RemoteFile { name: "cifar-100-binary.tar.gz", md5: "03b5dce01913d631647c71ecec9e9cb8" }],
            Remote::Svhn => &[
                RemoteFile { name: "train_32x32.mat", md5: "e26dedcc434d2e4c54c9b2d4a06d8373" },
                RemoteFile { name: "test_32x32.mat", md5: "eb5a983be6a315427106f1b0d6a6f8d0" },
            ],
        }
    }
}

/// MD5 of a file, lower-case hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Md5::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(crate::fsio::hex(&h.finalize()))
}

/// Downloads `url` to `dest` unless `dest` already has the right MD5. An interrupted download
/// leaves `dest.part`, which the next call resumes from with a Range request.
pub fn download(url: &str, dest: &Path, md5: &str) -> Result<PathBuf> {
    if dest.exists() && md5_file(dest)? == md5 {
        return Ok(dest.to_path_buf());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let fail = |problem: String| Error::Download { url: url.to_string(), problem };
    let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(30)).timeout_read(Duration::from_secs(60)).build();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(r) => r,
        // 416: the part file already holds everything the server has.
        Err(ureq::Error::Status(416, _)) if have > 0 => return finish(url, &part, dest, md5),
        Err(ureq::Error::Status(code, _)) => return Err(fail(format!("server answered HTTP {code}"))),
        Err(e) => return Err(fail(e.to_string())),
    };
    let resumed = response.status() == 206;
    let total = response.header("Content-Length").and_then(|v| v.parse::<u64>().ok()).map(|n| if resumed { n + have } else { n });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(&part)
        .map_err(|e| Error::io(&part, e))?;
    let mut done = if resumed { have } else { 0 };
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut last_report = Instant::now();
    let name = dest.file_name().unwrap_or_default().to_string_lossy().into_owned();
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(format!("connection broke after {done} bytes ({e})")))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
        done += n as u64;
        if last_report.elapsed() > Duration::from_secs(1) {
            last_report = Instant::now();
            crate::progress::emit(&crate::progress::Event::Download { name: &name, done, total, finished: false });
        }
    }
    file.sync_all().map_err(|e| Error::io(&part, e))?;
    if let Some(t) = total.filter(|&t| t != done) {
        return Err(fail(format!("connection closed after {done} of {t} bytes")));
    }
    crate::progress::emit(&crate::progress::Event::Download { name: &name, done, total, finished: true });
    finish(url, &part, dest, md5)
}

fn finish(url: &str, part: &Path, dest: &Path, md5: &str) -> Result<PathBuf> {
    let actual = md5_file(part)?;
    if actual != md5 {
        let _ = std::fs::remove_file(part);
        return Err(Error::Download {
            url: url.to_string(),
            problem: format!("MD5 {actual} does not match the published {md5}; the partial file was removed"),
        });
    }
    std::fs::rename(part, dest).map_err(|e| Error::io(dest, e))?;
    Ok(dest.to_path_buf())
}

/// Downloads (or re-uses) a remote dataset into `dir/<name>/` and loads its train and test
/// splits. `base_url` overrides the canonical host (a mirror, or a test server).
pub fn fetch(remote: Remote, dir: &Path, base_url: Option<&str>) -> Result<(Dataset, Dataset)> {
    let dir = dir.join(remote.name());
    let base = base_url.unwrap_or(remote.canonical_base());
    let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
    let mut paths = Vec::new();
    for f in remote.files() {
        paths.push(download(&format!("{base}{}", f.name), &dir.join(f.name), f.md5)?);
    }
    let provenance = format!("downloaded from {base}, MD5-verified");
    match remote {
        Remote::Mnist | Remote::FashionMnist => {
            let classes: Vec<String> = if remote == Remote::Mnist {
                (0..10).map(|d| d.to_string()).collect()
            } else {
                ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
                    .map(String::from)
                    .to_vec()
            };
            let hflip = remote == Remote::FashionMnist;
            let meta = |s: &str| DatasetMeta { name: format!("{}/{s}", remote.name()), provenance: provenance.clone(), hflip };
            Ok((
                idx::load_idx_pair(&paths[0], &paths[1], classes.clone(), meta("train"))?,
                idx::load_idx_pair(&paths[2], &paths[3], classes, meta("test"))?,
            ))
        }
        Remote::Cifar10 | Remote::Cifar100 => {
            let (kind, folder) =
                if remote == Remote::Cifar10 { (Cifar::Ten, "cifar-10-batches-bin") } else { (Cifar::Hundred, "cifar-100-binary") };
            let extracted = dir.join(folder);
            if !extracted.exists() {
                extract_tar_gz(&paths[0], &dir, folder)?;
            }
            cifar::load_cifar(kind, &extracted)
        }
        Remote::Svhn => svhn::load_svhn(&dir),
    }
}

/// Extracts a .tar.gz into a temporary folder next to `into`, then renames the expected
/// top-level folder into place, so a half-extracted archive is never mistaken for a whole one.
fn extract_tar_gz(archive: &Path, into: &Path, folder: &str) -> Result<()> {
    let tmp = into.join(format!(".extract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&tmp)
        .map_err(|e| Error::bad_data_file(archive, format!("cannot extract ({e})")))?;
    let inner = tmp.join(folder);
    if !inner.is_dir() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::bad_data_file(archive, format!("archive has no top-level folder '{folder}'")));
    }
    std::fs::rename(&inner, into.join(folder)).map_err(|e| Error::io(into.join(folder), e))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
