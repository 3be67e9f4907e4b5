//! MNIST in its original IDX format (also Fashion-MNIST, which uses the same
//! files): a big-endian header (magic 0x00000803 for images, 0x00000801 for
//! labels, then one u32 per dimension) followed by unsigned bytes. Files may
//! be gzipped, as they are distributed.

use super::validate::Classes;
use super::{Dataset, Split, Targets};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// An IDX array of unsigned bytes.
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file with `ndim` dimensions (3 for images, 1 for labels),
/// gunzipping it first when it starts with the gzip magic.
pub fn read(path: &Path, ndim: u8) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    parse(&bytes, ndim).map_err(|msg| Error::data(path, msg))
}

fn parse(b: &[u8], ndim: u8) -> std::result::Result<IdxArray, String> {
    let want = 0x0800 | ndim as u32;
    if b.len() < 4 {
        return Err(format!(
            "truncated: expected a 4-byte IDX magic, found {} bytes",
            b.len()
        ));
    }
    let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if magic != want {
        return Err(format!(
            "expected IDX magic 0x{want:08x} (unsigned bytes, {ndim} dimensions), found 0x{magic:08x}"
        ));
    }
    let start = 4 + 4 * ndim as usize;
    if b.len() < start {
        return Err(format!(
            "truncated header: expected {start} bytes, found {}",
            b.len()
        ));
    }
    let dims: Vec<usize> = b[4..start]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} are too large"))?;
    let found = b.len() - start;
    if found != count {
        return Err(format!(
            "dimensions {dims:?} need {count} bytes of data, found {found}"
        ));
    }
    Ok(IdxArray {
        dims,
        data: b[start..].to_vec(),
    })
}

/// Loads the MNIST train and test sets from `dir`; pixels stay in 0..=255
/// and labels are held to `classes`.
pub(super) fn load_dir(dir: &Path, classes: &Classes) -> Result<Split> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            "expected a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, \
             t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz)",
        ));
    }
    let train = load_pair(dir, "train", classes)?;
    let test = load_pair(dir, "t10k", classes)?;
    Ok(Split {
        train,
        test: Some(test),
    })
}

fn load_pair(dir: &Path, prefix: &str, classes: &Classes) -> Result<Dataset> {
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read(&images_path, 3)?;
    let labels = read(&labels_path, 1)?;
    if images.dims.contains(&0) {
        return Err(Error::data(
            &images_path,
            format!("holds no pixels (dimensions {:?})", images.dims),
        ));
    }
    let n = images.dims[0];
    if labels.dims[0] != n {
        return Err(Error::data(
            &images_path,
            format!(
                "holds {n} images but {} holds {} labels",
                labels_path.display(),
                labels.dims[0]
            ),
        ));
    }
    classes.check(
        labels.data.iter().map(|&l| l as usize),
        &labels_path,
        "the labels",
    )?;
    Ok(Dataset {
        x: images.data.iter().map(|&p| p as f64).collect(),
        n,
        d: images.dims[1] * images.dims[2],
        y: Targets::Labels {
            y: labels.data.iter().map(|&l| l as usize).collect(),
            classes: classes.count,
        },
    })
}

/// `dir/name`, or else `dir/name.gz`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::data(plain, format!("not found (nor {name}.gz)")))
}
