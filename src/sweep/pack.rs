//! Packing runs into ensembles: runs whose configs differ only in the
//! per-member scalars (model seed, learning rate) share an
//! `ensemble_key` and train together, at most `max_ensemble` at a time.
//! Runs with observers train one by one: observers measure one model.

use crate::error::Result;
use crate::sweep::spec::RunSpec;

/// Groups `runs` (indices into `all`) into ensembles, keeping the order in
/// which each group first appears and the run order inside a group.
pub fn pack(all: &[RunSpec], runs: &[usize], max_ensemble: usize) -> Result<Vec<Vec<usize>>> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for &i in runs {
        let key = all[i].cfg.ensemble_key()?;
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let mut packs = Vec::new();
    for (_, g) in groups {
        let cap = if all[g[0]].cfg.observe.any() {
            1
        } else {
            max_ensemble.max(1)
        };
        // Equal-sized chunks: 70 runs under a cap of 64 train as 35 + 35.
        let size = g.len().div_ceil(g.len().div_ceil(cap));
        packs.extend(g.chunks(size).map(<[usize]>::to_vec));
    }
    Ok(packs)
}
