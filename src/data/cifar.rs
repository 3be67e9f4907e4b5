//! CIFAR-10 in its binary distribution: each batch file is a sequence of
//! 3073-byte records, one label byte (0..9) then 3072 pixel bytes (the red,
//! green and blue 32x32 planes). Pixels are kept in that channel-major order
//! and in 0..=255.

use super::validate::Classes;
use super::{Dataset, Split, Targets};
use crate::error::{Error, Result};
use std::path::Path;

const PIXELS: usize = 3 * 32 * 32;
const RECORD: usize = 1 + PIXELS;

/// Loads `data_batch_1.bin` .. `data_batch_5.bin` (whichever are present,
/// at least one) as the train set and `test_batch.bin` as the test set,
/// labels held to `classes`.
pub(super) fn load_dir(dir: &Path, classes: &Classes) -> Result<Split> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            "expected a directory holding data_batch_1.bin .. data_batch_5.bin and test_batch.bin",
        ));
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 1..=5 {
        let path = dir.join(format!("data_batch_{i}.bin"));
        if path.is_file() {
            read_batch(&path, classes, &mut x, &mut y)?;
        }
    }
    if y.is_empty() {
        return Err(Error::data(
            dir,
            "no CIFAR-10 train batch found: expected at least one of data_batch_1.bin .. data_batch_5.bin",
        ));
    }
    let train = dataset(x, y, classes);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    read_batch(&dir.join("test_batch.bin"), classes, &mut x, &mut y)?;
    Ok(Split {
        train,
        test: Some(dataset(x, y, classes)),
    })
}

fn dataset(x: Vec<f64>, y: Vec<usize>, classes: &Classes) -> Dataset {
    Dataset {
        x,
        n: y.len(),
        d: PIXELS,
        y: Targets::Labels {
            y,
            classes: classes.count,
        },
    }
}

/// Appends the pixels and labels of one batch file.
fn read_batch(path: &Path, classes: &Classes, x: &mut Vec<f64>, y: &mut Vec<usize>) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(Error::data(
            path,
            format!(
                "size {} bytes is not a positive multiple of the {RECORD}-byte record \
                 (1 label byte + {PIXELS} pixel bytes)",
                bytes.len()
            ),
        ));
    }
    let records = bytes.chunks_exact(RECORD);
    classes.check(
        records.clone().map(|rec| rec[0] as usize),
        path,
        "the labels",
    )?;
    for rec in records {
        y.push(rec[0] as usize);
        x.extend(rec[1..].iter().map(|&p| p as f64));
    }
    Ok(())
}
