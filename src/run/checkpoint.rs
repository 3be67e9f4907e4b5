//! Checkpoints as safetensors files, so that weights trained here load in
//! PyTorch with `safetensors.torch.load_file(path)` (and in anything else
//! that reads the format) for analysis.
//!
//! The format stores tensors sorted by dtype and then by name, not in the
//! order given, and `load_checkpoint` returns them sorted by name.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};

use super::atomic::write_atomic;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl TensorData {
    fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
        }
    }
}

/// A tensor in row-major (C) order, as PyTorch expects.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// Lets safetensors pull each tensor's little-endian bytes only while it is
/// writing that tensor, instead of holding a byte copy of the whole model.
struct LeBytes<'a>(&'a NamedTensor);

impl View for LeBytes<'_> {
    fn dtype(&self) -> Dtype {
        match self.0.data {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F64(_) => Dtype::F64,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(match &self.0.data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
    }

    fn data_len(&self) -> usize {
        self.0.data.len() * self.dtype().size()
    }
}

/// Writes `tensors` and string `metadata` to `path` atomically. Fails on a
/// shape that does not match the data length or on duplicate names, either
/// of which would make a file other readers reject.
pub fn save_checkpoint(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut names = HashSet::new();
    for t in tensors {
        let numel = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(t.data.len()) {
            return Err(Error::shape(format!(
                "checkpoint tensor `{}`: shape {:?} does not hold {} values",
                t.name,
                t.shape,
                t.data.len()
            )));
        }
        // `__metadata__` is the format's own header key.
        if t.name == "__metadata__" || !names.insert(t.name.as_str()) {
            return Err(Error::msg(format!(
                "{}: tensor name `{}` is duplicated or reserved",
                path.display(),
                t.name
            )));
        }
    }
    let info: Option<HashMap<String, String>> =
        (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    let bytes =
        safetensors::serialize(tensors.iter().map(|t| (t.name.as_str(), LeBytes(t))), &info)
            .map_err(|e| {
                Error::msg(format!(
                    "{}: cannot serialize checkpoint: {e}",
                    path.display()
                ))
            })?;
    write_atomic(path, &canonical_header(path, bytes)?)
}

/// The same file with its JSON header's keys in sorted order: the
/// safetensors crate writes the metadata from a hash map, whose order
/// changes from run to run, and a checkpoint of the same weights should be
/// the same bytes. Data offsets are relative to the data section, so only
/// the header is rewritten (padded with spaces to 8 bytes, as the format
/// allows).
fn canonical_header(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = || Error::msg(format!("{}: malformed serialized header", path.display()));
    let len = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let header = bytes.get(8..8 + len).ok_or_else(bad)?;
    // serde_json's default map is ordered by key.
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|_| bad())?;
    let mut text = serde_json::to_string(&value)
        .map_err(|_| bad())?
        .into_bytes();
    while (8 + text.len()) % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text);
    out.extend(&bytes[8 + len..]);
    Ok(out)
}

/// Reads a checkpoint written by [`save_checkpoint`] (or any safetensors
/// file holding only F32/F64 tensors). Tensors come back sorted by name.
pub fn load_checkpoint(path: &Path) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    // Checks that the header parses and that the offsets tile the data
    // section exactly, so the slicing below stays in bounds.
    let (header_len, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        Error::data(
            path,
            format!("not a valid safetensors checkpoint (truncated or corrupt?): {e}"),
        )
    })?;
    let body = &bytes[8 + header_len..];
    let mut tensors = header
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let raw = &body[info.data_offsets.0..info.data_offsets.1];
            let data = match info.dtype {
                Dtype::F32 => TensorData::F32(
                    raw.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                Dtype::F64 => TensorData::F64(
                    raw.chunks_exact(8)
                        .map(|b| {
                            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect(),
                ),
                other => {
                    return Err(Error::data(
                        path,
                        format!(
                            "tensor `{name}` has dtype {other:?}; only F32 and F64 are supported"
                        ),
                    ))
                }
            };
            Ok(NamedTensor {
                name,
                shape: info.shape.clone(),
                data,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok((tensors, metadata))
}
