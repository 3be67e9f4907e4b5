//! Fused optimizer updates, one pass over each parameter tensor. Semantics
//! are PyTorch's `SGD` (momentum without dampening, optional Nesterov,
//! coupled weight decay), `Adam` (coupled) and `AdamW` (decoupled).
//!
//! A tensor of an ensemble holds its E members one after another, each
//! with its own learning rate. The update is one parallel pass over the
//! whole tensor in fixed chunks, each chunk cut where a member ends
//! (`member_spans`), not one parallel pass per member: from the caller's
//! thread every parallel pass is a hand-off to the pool and back, and E
//! of them per tensor cost more than the update of a small member.

use super::{Cpu, Elem, PAR_MIN_ELEMS};
use crate::backend::shapes::{adam_members, sgd_members};
use crate::backend::{AdamHyper, SgdHyper};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::ops::Range;

/// Elements per parallel task.
const CHUNK: usize = 4096;

/// The pieces of the chunk starting at flat index `start` with `len`
/// elements, one per member it touches: `(member, range within the chunk)`.
fn member_spans(
    start: usize,
    len: usize,
    per: usize,
) -> impl Iterator<Item = (usize, Range<usize>)> {
    let (end, per) = (start + len, per.max(1));
    (start / per..).map_while(move |m| {
        let lo = (m * per).max(start);
        let hi = ((m + 1) * per).min(end);
        (lo < hi).then(|| (m, lo - start..hi - start))
    })
}

/// Rayon's minimum task length for a tensor of `total` elements: small
/// tensors run on the caller's thread in one piece (no hand-off at all).
fn min_chunks(total: usize) -> usize {
    if total < PAR_MIN_ELEMS {
        usize::MAX
    } else {
        1
    }
}

pub fn sgd_update<T: Elem>(
    p: &mut Tensor<Cpu>,
    g: &Tensor<Cpu>,
    buf: &mut Tensor<Cpu>,
    hp: &SgdHyper,
) -> Result<()> {
    // Without momentum the buffer is unused and may be empty.
    let e = sgd_members(p.shape(), g.shape(), buf.shape(), hp)?;
    let per = p.numel() / e;
    let lrs: Vec<T> = hp.lr.iter().map(|&l| T::from_f64(l)).collect();
    let gv = T::view(g.storage())?;
    let pv = T::view_mut(p.storage_mut())?;
    let min = min_chunks(pv.len());
    let (mu, wd) = (T::from_f64(hp.momentum), T::from_f64(hp.weight_decay));
    if hp.momentum == 0.0 {
        pv.par_chunks_mut(CHUNK)
            .zip(gv.par_chunks(CHUNK))
            .enumerate()
            .with_min_len(min)
            .for_each(|(c, (ps, gs))| {
                for (m, r) in member_spans(c * CHUNK, ps.len(), per) {
                    let lr = lrs[m];
                    for (p, &g) in ps[r.clone()].iter_mut().zip(&gs[r]) {
                        *p = *p - lr * (g + wd * *p);
                    }
                }
            });
        return Ok(());
    }
    let bv = T::view_mut(buf.storage_mut())?;
    pv.par_chunks_mut(CHUNK)
        .zip(bv.par_chunks_mut(CHUNK))
        .zip(gv.par_chunks(CHUNK))
        .enumerate()
        .with_min_len(min)
        .for_each(|(c, ((ps, bs), gs))| {
            for (m, r) in member_spans(c * CHUNK, ps.len(), per) {
                let lr = lrs[m];
                let (ps, bs, gs) = (&mut ps[r.clone()], &mut bs[r.clone()], &gs[r]);
                for ((p, b), &g) in ps.iter_mut().zip(bs.iter_mut()).zip(gs) {
                    let g = g + wd * *p;
                    *b = mu * *b + g;
                    let d = if hp.nesterov { g + mu * *b } else { *b };
                    *p = *p - lr * d;
                }
            }
        });
    Ok(())
}

pub fn adam_update<T: Elem>(
    p: &mut Tensor<Cpu>,
    g: &Tensor<Cpu>,
    m1: &mut Tensor<Cpu>,
    m2: &mut Tensor<Cpu>,
    hp: &AdamHyper,
) -> Result<()> {
    let e = adam_members(p.shape(), g.shape(), m1.shape(), m2.shape(), hp)?;
    let per = p.numel() / e;
    let lrs: Vec<T> = hp.lr.iter().map(|&l| T::from_f64(l)).collect();
    let gv = T::view(g.storage())?;
    let pv = T::view_mut(p.storage_mut())?;
    let mv = T::view_mut(m1.storage_mut())?;
    let vv = T::view_mut(m2.storage_mut())?;
    let min = min_chunks(pv.len());
    let (b1, b2) = (T::from_f64(hp.beta1), T::from_f64(hp.beta2));
    let bc1 = T::from_f64(1.0 - hp.beta1.powi(hp.step as i32));
    let bc2_sqrt = T::from_f64((1.0 - hp.beta2.powi(hp.step as i32)).sqrt());
    let eps = T::from_f64(hp.eps);
    let wd = T::from_f64(hp.weight_decay);
    pv.par_chunks_mut(CHUNK)
        .zip(mv.par_chunks_mut(CHUNK))
        .zip(vv.par_chunks_mut(CHUNK))
        .zip(gv.par_chunks(CHUNK))
        .enumerate()
        .with_min_len(min)
        .for_each(|(c, (((ps, ms), vs), gs))| {
            for (member, r) in member_spans(c * CHUNK, ps.len(), per) {
                let lr = lrs[member];
                let decay = T::ONE - lr * wd;
                let (ps, ms) = (&mut ps[r.clone()], &mut ms[r.clone()]);
                let (vs, gs) = (&mut vs[r.clone()], &gs[r]);
                for (((p, m), v), &g) in ps.iter_mut().zip(ms.iter_mut()).zip(vs.iter_mut()).zip(gs)
                {
                    let g = if hp.decoupled {
                        *p = *p * decay;
                        g
                    } else {
                        g + wd * *p
                    };
                    *m = b1 * *m + (T::ONE - b1) * g;
                    *v = b2 * *v + (T::ONE - b2) * g * g;
                    // PyTorch's form: lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
                    let denom = v.sqrt() / bc2_sqrt + eps;
                    *p = *p - lr / bc1 * *m / denom;
                }
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::member_spans;

    #[test]
    fn chunks_are_cut_where_members_end() {
        let spans: Vec<_> = member_spans(8, 8, 5).collect();
        assert_eq!(spans, vec![(1, 0..2), (2, 2..7), (3, 7..8)]);
        let spans: Vec<_> = member_spans(0, 4, 10).collect();
        assert_eq!(spans, vec![(0, 0..4)]);
        let spans: Vec<_> = member_spans(4096, 4096, 1 << 20).collect();
        assert_eq!(spans, vec![(0, 0..4096)]);
    }
}
