//! IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed: only unsigned-byte payloads,
//! which is what every image and label file of these datasets is.

use super::{Dataset, DatasetMeta};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Reads a whole file, transparently gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::bad_data_file(path, format!("gzip data is damaged ({e})")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of u8 values: returns its dimensions and payload.
pub fn read_idx_u8(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = read_maybe_gz(path)?;
    parse_idx_u8(&bytes).map_err(|problem| Error::bad_data_file(path, problem))
}

fn parse_idx_u8(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<u8>), String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (bad magic number)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!("IDX data type 0x{:02x} is not unsigned byte (0x08)", bytes[2]));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err(format!("IDX header declares {ndim} dimensions but the file is {} bytes", bytes.len()));
    }
    let dims: Vec<usize> = (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    let expected: usize = dims.iter().product();
    let payload = &bytes[header..];
    if payload.len() != expected {
        return Err(format!("IDX dimensions {dims:?} need {expected} bytes of data but the file has {} (truncated?)", payload.len()));
    }
    Ok((dims, payload.to_vec()))
}

/// Loads an image IDX file (N x H x W) and a label IDX file (N) as a one-channel dataset.
pub fn load_idx_pair(images: &Path, labels: &Path, classes: Vec<String>, meta: DatasetMeta) -> Result<Dataset> {
    let (dims, pixels) = read_idx_u8(images)?;
    if dims.len() != 3 {
        return Err(Error::bad_data_file(images, format!("expected N x H x W images, found dimensions {dims:?}")));
    }
    let (ldims, raw_labels) = read_idx_u8(labels)?;
    if ldims.len() != 1 || ldims[0] != dims[0] {
        return Err(Error::bad_data_file(labels, format!("has {ldims:?} labels for {} images in {}", dims[0], images.display())));
    }
    if let Some(&bad) = raw_labels.iter().find(|&&l| l as usize >= classes.len()) {
        return Err(Error::bad_data_file(labels, format!("label {bad} but only {} classes", classes.len())));
    }
    let labels = raw_labels.into_iter().map(i64::from).collect();
    let shape = [dims[0] as i64, 1, dims[1] as i64, dims[2] as i64];
    Dataset::from_raw(pixels, shape, labels, classes, meta)
}

/// Writes u8 data as an IDX file (used by tests and for exporting subsets).
pub fn encode_idx_u8(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let enc = encode_idx_u8(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(parse_idx_u8(&enc).unwrap(), (vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
        assert!(parse_idx_u8(&enc[..enc.len() - 1]).unwrap_err().contains("truncated"));
        let mut wrong_type = enc.clone();
        wrong_type[2] = 0x0d;
        assert!(parse_idx_u8(&wrong_type).unwrap_err().contains("unsigned byte"));
        assert!(parse_idx_u8(b"PK\x03\x04").unwrap_err().contains("magic"));
    }
}
