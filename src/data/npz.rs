//! NumPy `.npz` archives: a zip of `.npy` members (stored by `np.savez`,
//! deflated by `np.savez_compressed`), read by array name.

use super::npy::{self, NpyArray};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

pub struct Npz {
    path: PathBuf,
    archive: zip::ZipArchive<BufReader<File>>,
}

impl Npz {
    pub fn open(path: &Path) -> Result<Npz> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let archive = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| Error::data(path, format!("not a readable .npz (zip) archive: {e}")))?;
        Ok(Npz {
            path: path.to_path_buf(),
            archive,
        })
    }

    /// Array names, as `np.load(path).files` lists them (member names without `.npy`).
    pub fn keys(&self) -> Vec<String> {
        self.archive
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect()
    }

    /// The array stored under `key` (member `key.npy`, or `key` itself).
    pub fn array(&mut self, key: &str) -> Result<NpyArray> {
        let member = format!("{key}.npy");
        let name = if self.archive.index_for_name(&member).is_some() {
            member
        } else if self.archive.index_for_name(key).is_some() {
            key.to_string()
        } else {
            let mut keys = self.keys();
            keys.sort();
            return Err(Error::data(
                &self.path,
                format!(
                    "no array named '{key}'; the archive holds: {}",
                    keys.join(", ")
                ),
            ));
        };
        let origin = format!("{}[{name}]", self.path.display());
        let mut entry = self
            .archive
            .by_name(&name)
            .map_err(|e| Error::data(&origin, format!("cannot open member: {e}")))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| Error::data(&origin, format!("cannot decompress member: {e}")))?;
        npy::parse(&bytes, &origin)
    }
}
