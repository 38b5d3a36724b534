//! SVHN's cropped-digit files (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`), which are
//! MATLAB level-5 MAT files holding `X` (32 x 32 x 3 x N, uint8, column-major) and `y` (N x 1,
//! labels 1..10 where 10 stands for the digit 0). The small MAT reader below handles what these
//! files (and scipy.io.savemat) use: numeric arrays, optionally zlib-compressed.

use super::{Dataset, DatasetMeta};
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// A numeric array read from a MAT file, in MATLAB's column-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    pub dims: Vec<usize>,
    pub data: MatData,
}

/// The stored element type of a [`MatArray`] (MAT files may store doubles as smaller integers).
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    U8(Vec<u8>),
    F64(Vec<f64>),
}

impl MatData {
    pub fn len(&self) -> usize {
        match self {
            MatData::U8(v) => v.len(),
            MatData::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            MatData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            MatData::F64(v) => v.clone(),
        }
    }
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().unwrap()))
    }
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated: needs {n} bytes at offset {} but the data ends at {}", self.pos, self.bytes.len()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// Reads a data element tag (normal or small format) and returns (type, payload).
    fn element(&mut self, pad: bool) -> std::result::Result<(u32, &'a [u8]), String> {
        let first = self.u32()?;
        if first >> 16 != 0 {
            // Small data element: type and size share the first word, data fills the second.
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            let word = self.take(4)?;
            return word.get(..n).map(|d| (ty, d)).ok_or_else(|| format!("small element claims {n} bytes"));
        }
        let n = self.u32()? as usize;
        let data = self.take(n)?;
        // Data is padded to 8 bytes, except compressed elements, which are stored back to back.
        if pad && first != MI_COMPRESSED && !n.is_multiple_of(8) {
            self.take((8 - n % 8).min(self.bytes.len() - self.pos))?;
        }
        Ok((first, data))
    }
}

fn numeric(ty: u32, d: &[u8]) -> std::result::Result<MatData, String> {
    fn conv<const N: usize>(d: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        d.chunks_exact(N).map(|c| f(c.try_into().unwrap())).collect()
    }
    Ok(match ty {
        MI_UINT8 => MatData::U8(d.to_vec()),
        MI_INT8 => MatData::F64(d.iter().map(|&b| b as i8 as f64).collect()),
        MI_INT16 => MatData::F64(conv(d, |b| i16::from_le_bytes(b) as f64)),
        MI_UINT16 => MatData::F64(conv(d, |b| u16::from_le_bytes(b) as f64)),
        MI_INT32 => MatData::F64(conv(d, |b| i32::from_le_bytes(b) as f64)),
        MI_UINT32 => MatData::F64(conv(d, |b| u32::from_le_bytes(b) as f64)),
        MI_SINGLE => MatData::F64(conv(d, |b| f32::from_le_bytes(b) as f64)),
        MI_DOUBLE => MatData::F64(conv(d, f64::from_le_bytes)),
        MI_INT64 => MatData::F64(conv(d, |b| i64::from_le_bytes(b) as f64)),
        MI_UINT64 => MatData::F64(conv(d, |b| u64::from_le_bytes(b) as f64)),
        other => return Err(format!("unsupported MAT data type {other}")),
    })
}

fn parse_matrix(body: &[u8]) -> std::result::Result<Option<(String, MatArray)>, String> {
    let mut c = Cursor { bytes: body, pos: 0 };
    let (_, flags) = c.element(true)?;
    let class = *flags.first().ok_or("matrix without array flags")?;
    // Classes 6..=13 are the numeric ones (double, single, int8 .. uint32); 14, 15 are int64/uint64.
    if !(6..=15).contains(&class) {
        return Ok(None); // cells, structs, chars, sparse: not needed here
    }
    let (_, dims) = c.element(true)?;
    let dims: Vec<usize> = dims.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as usize).collect();
    let (_, name) = c.element(true)?;
    let name = String::from_utf8_lossy(name).into_owned();
    let (ty, real) = c.element(true)?;
    let data = numeric(ty, real)?;
    if data.len() != dims.iter().product::<usize>() {
        return Err(format!("array '{name}' has {} values for dimensions {dims:?}", data.len()));
    }
    Ok(Some((name, MatArray { dims, data })))
}

/// Reads every numeric array of a level-5 MAT file, by variable name.
pub fn read_mat(path: &Path) -> Result<HashMap<String, MatArray>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_mat(&bytes).map_err(|p| Error::bad_data_file(path, p))
}

fn parse_mat(bytes: &[u8]) -> std::result::Result<HashMap<String, MatArray>, String> {
    if bytes.len() < 128 {
        return Err("too short for a MAT file header".into());
    }
    if bytes.starts_with(b"\x89HDF") || bytes[512.min(bytes.len() - 4)..].starts_with(b"\x89HDF") {
        return Err("MATLAB v7.3 (HDF5) files are not supported; save with -v7 or use the official SVHN files".into());
    }
    if &bytes[126..128] != b"IM" {
        return Err("not a little-endian level-5 MAT file (bad header)".into());
    }
    let mut out = HashMap::new();
    let mut c = Cursor { bytes, pos: 128 };
    while c.pos + 8 <= bytes.len() {
        let (ty, data) = c.element(true)?;
        let matrix = match ty {
            MI_MATRIX => Cow::Borrowed(data),
            MI_COMPRESSED => {
                let mut inflated = Vec::new();
                flate2::read::ZlibDecoder::new(data)
                    .read_to_end(&mut inflated)
                    .map_err(|e| format!("compressed element is damaged ({e})"))?;
                let mut inner = Cursor { bytes: &inflated, pos: 0 };
                match inner.element(false)? {
                    (MI_MATRIX, d) => Cow::Owned(d.to_vec()),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if let Some((name, arr)) = parse_matrix(&matrix)? {
            out.insert(name, arr);
        }
    }
    Ok(out)
}

/// Loads one SVHN split file into a 3 x 32 x 32 dataset with labels 0..9 (10 becomes 0).
pub fn load_svhn_mat(path: &Path, split: &str) -> Result<Dataset> {
    let vars = read_mat(path)?;
    let x = vars.get("X").ok_or_else(|| Error::bad_data_file(path, "no variable 'X' (images)"))?;
    let y = vars.get("y").ok_or_else(|| Error::bad_data_file(path, "no variable 'y' (labels)"))?;
    let pixels = match &x.data {
        MatData::U8(p) => p,
        MatData::F64(_) => return Err(Error::bad_data_file(path, "'X' is not uint8")),
    };
    if x.dims.len() != 4 || x.dims[0] != 32 || x.dims[1] != 32 || x.dims[2] != 3 {
        return Err(Error::bad_data_file(path, format!("'X' has dimensions {:?}, expected 32 x 32 x 3 x N", x.dims)));
    }
    let n = x.dims[3];
    let labels: Vec<i64> = y.data.to_f64().into_iter().map(|v| if v == 10.0 { 0 } else { v as i64 }).collect();
    if labels.len() != n || labels.iter().any(|&l| !(0..10).contains(&l)) {
        return Err(Error::bad_data_file(path, format!("'y' must hold {n} labels in 1..=10")));
    }
    // Column-major (row, col, channel, image) -> row-major image x channel x row x col.
    let mut chw = vec![0u8; pixels.len()];
    for img in 0..n {
        let base = img * 3072;
        for ch in 0..3 {
            for row in 0..32 {
                for col in 0..32 {
                    chw[base + ch * 1024 + row * 32 + col] = pixels[base + ch * 1024 + col * 32 + row];
                }
            }
        }
    }
    let classes = (0..10).map(|d| d.to_string()).collect();
    let meta = DatasetMeta { name: format!("svhn/{split}"), provenance: format!("SVHN MAT file {}", path.display()), hflip: false };
    Dataset::from_raw(chw, [n as i64, 3, 32, 32], labels, classes, meta)
}

/// Loads `train_32x32.mat` and `test_32x32.mat` from a folder.
pub fn load_svhn(dir: &Path) -> Result<(Dataset, Dataset)> {
    Ok((load_svhn_mat(&dir.join("train_32x32.mat"), "train")?, load_svhn_mat(&dir.join("test_32x32.mat"), "test")?))
}
