//! A static split of a sweep over processes, for those who want one (workers
//! share a store dynamically without it): shard i of n owns the runs whose
//! position in the grid is i modulo n, so the shards are disjoint and
//! together cover the grid, whatever any of them has already finished.
//! `--shard slurm` takes the shard from a Slurm job array's
//! `SLURM_ARRAY_TASK_ID` (relative to `SLURM_ARRAY_TASK_MIN`) and
//! `SLURM_ARRAY_TASK_COUNT`.

use crate::error::{Error, Result};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/n` (0 <= i < n).
    pub fn parse(s: &str) -> Result<Self> {
        let err = || {
            Error::config(
                "--shard",
                format!("expected i/n with 0 <= i < n (e.g. 0/4), got {s:?}"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: usize = i.trim().parse().map_err(|_| err())?;
        let count: usize = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    /// `--shard`'s value: `i/n`, or `slurm` for the shard of this task of a
    /// Slurm job array; `var` reads an environment variable.
    pub fn from_arg(s: &str, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if s != "slurm" {
            return Self::parse(s);
        }
        Self::from_slurm(var)?.ok_or_else(|| {
            Error::config(
                "--shard",
                "`slurm` takes the shard from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, \
                 which are not set (is this a task of a job array?)",
            )
        })
    }

    /// The shard Slurm's array variables name, if they are set; `var` reads
    /// an environment variable.
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
        else {
            return Ok(None);
        };
        let num = |name: &str, v: &str| -> Result<usize> {
            v.trim().parse().map_err(|_| {
                Error::config(name, format!("expected a non-negative integer, got {v:?}"))
            })
        };
        let id = num("SLURM_ARRAY_TASK_ID", &id)?;
        let count = num("SLURM_ARRAY_TASK_COUNT", &count)?;
        let min = match var("SLURM_ARRAY_TASK_MIN") {
            Some(m) => num("SLURM_ARRAY_TASK_MIN", &m)?,
            None => 0,
        };
        let index = id.checked_sub(min).filter(|&i| i < count).ok_or_else(|| {
            Error::config(
                "SLURM_ARRAY_TASK_ID",
                format!(
                    "task {id} is outside an array of {count} tasks starting at {min}; \
                     use a contiguous --array range"
                ),
            )
        })?;
        Ok(Some(Shard { index, count }))
    }

    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}
