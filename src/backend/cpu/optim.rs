//! Fused optimizer updates, one pass over each parameter tensor. Semantics
//! are PyTorch's `SGD` (momentum without dampening, optional Nesterov,
//! coupled weight decay), `Adam` (coupled) and `AdamW` (decoupled).

use super::{Cpu, Elem};
use crate::backend::shapes::{adam_members, sgd_members};
use crate::backend::{AdamHyper, SgdHyper};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

pub fn sgd_update<T: Elem>(
    p: &mut Tensor<Cpu>,
    g: &Tensor<Cpu>,
    buf: &mut Tensor<Cpu>,
    hp: &SgdHyper,
) -> Result<()> {
    let use_momentum = hp.momentum != 0.0;
    // Without momentum the buffer is unused and may be empty.
    let e = sgd_members(p.shape(), g.shape(), buf.shape(), hp)?;
    let per = p.numel() / e;
    let gv = T::view(g.storage())?;
    let pv = T::view_mut(p.storage_mut())?;
    let mu = T::from_f64(hp.momentum);
    let wd = T::from_f64(hp.weight_decay);
    let chunk = 4096;
    if !use_momentum {
        for m in 0..e {
            let lr = T::from_f64(hp.lr[m]);
            let range = m * per..(m + 1) * per;
            pv[range.clone()]
                .par_chunks_mut(chunk)
                .zip(gv[range].par_chunks(chunk))
                .for_each(|(ps, gs)| {
                    for (p, &g) in ps.iter_mut().zip(gs) {
                        *p = *p - lr * (g + wd * *p);
                    }
                });
        }
        return Ok(());
    }
    let bv = T::view_mut(buf.storage_mut())?;
    for m in 0..e {
        let lr = T::from_f64(hp.lr[m]);
        let range = m * per..(m + 1) * per;
        pv[range.clone()]
            .par_chunks_mut(chunk)
            .zip(bv[range.clone()].par_chunks_mut(chunk))
            .zip(gv[range].par_chunks(chunk))
            .for_each(|((ps, bs), gs)| {
                for ((p, b), &g) in ps.iter_mut().zip(bs.iter_mut()).zip(gs) {
                    let g = g + wd * *p;
                    *b = mu * *b + g;
                    let d = if hp.nesterov { g + mu * *b } else { *b };
                    *p = *p - lr * d;
                }
            });
    }
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
    let gv = T::view(g.storage())?;
    let pv = T::view_mut(p.storage_mut())?;
    let mv = T::view_mut(m1.storage_mut())?;
    let vv = T::view_mut(m2.storage_mut())?;
    let (b1, b2) = (T::from_f64(hp.beta1), T::from_f64(hp.beta2));
    let bc1 = T::from_f64(1.0 - hp.beta1.powi(hp.step as i32));
    let bc2_sqrt = T::from_f64((1.0 - hp.beta2.powi(hp.step as i32)).sqrt());
    let eps = T::from_f64(hp.eps);
    let wd = T::from_f64(hp.weight_decay);
    let chunk = 4096;
    for m in 0..e {
        let lr = T::from_f64(hp.lr[m]);
        let decay = T::ONE - lr * wd;
        let range = m * per..(m + 1) * per;
        pv[range.clone()]
            .par_chunks_mut(chunk)
            .zip(mv[range.clone()].par_chunks_mut(chunk))
            .zip(vv[range.clone()].par_chunks_mut(chunk))
            .zip(gv[range].par_chunks(chunk))
            .for_each(|(((ps, ms), vs), gs)| {
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
            });
    }
    Ok(())
}
