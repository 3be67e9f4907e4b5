//! im2col and its adjoint col2im on channels-last images, the CPU reference
//! for `kernels/conv.cu` and `shaders/conv.wgsl`. A convolution is im2col
//! followed by one GEMM, so it runs at the `gemm` crate's speed; col2im
//! gathers (each pixel sums the patch entries read from it) rather than
//! scatters, so it needs no atomics and sums in a fixed order.

use super::pointwise::for_rows;
use super::recycle::scratch;
use super::{Cpu, Elem};
use crate::backend::Window;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn im2col<T: Elem>(x: &Tensor<Cpu>, win: &Window) -> Result<Tensor<Cpu>> {
    let (_, shape) = win.im2col_shape(x.shape())?;
    let xv = T::view(x.storage())?;
    let (p, ow, k) = (win.positions(), win.out_w(), win.patch());
    let (image_len, taps) = (win.h * win.w * win.c, win.kh * win.kw);
    // Every element is written (zeros where the window leaves the image).
    let mut out = scratch(shape.iter().product());
    for_rows(&mut out, k, |r, row| {
        // Row r is window position (oy, ox) of image `img` (group-major);
        // column (ci * kh + i) * kw + j is channel ci at tap (i, j). The input
        // is channels-last, so each tap reads one contiguous pixel and writes
        // it with stride kh * kw.
        let (img, pos) = (r / p, r % p);
        let (oy, ox) = (pos / ow, pos % ow);
        let image = &xv[img * image_len..(img + 1) * image_len];
        for i in 0..win.kh {
            let iy = inside(oy * win.sh + i, win.ph, win.h);
            for j in 0..win.kw {
                let dst = row[i * win.kw + j..].iter_mut().step_by(taps);
                match (iy, inside(ox * win.sw + j, win.pw, win.w)) {
                    (Some(iy), Some(ix)) => {
                        let px = &image[(iy * win.w + ix) * win.c..][..win.c];
                        dst.zip(px).for_each(|(d, &v)| *d = v);
                    }
                    _ => dst.for_each(|d| *d = T::ZERO),
                }
            }
        }
    });
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}

/// The image coordinate of padded coordinate `at`, if it is inside.
fn inside(at: usize, pad: usize, size: usize) -> Option<usize> {
    at.checked_sub(pad).filter(|&a| a < size)
}

/// The window offsets `i` (along one axis) and output coordinates `o` with
/// `o * stride + i - pad == at`, for each pixel coordinate `at < size`.
fn sources(
    size: usize,
    k: usize,
    stride: usize,
    pad: usize,
    out: usize,
) -> Vec<Vec<(usize, usize)>> {
    (0..size)
        .map(|at| {
            (0..k)
                .filter_map(|i| {
                    let shifted = (at + pad).checked_sub(i)?;
                    let o = shifted / stride;
                    (shifted % stride == 0 && o < out).then_some((i, o))
                })
                .collect()
        })
        .collect()
}

pub fn col2im<T: Elem>(cols: &Tensor<Cpu>, win: &Window) -> Result<Tensor<Cpu>> {
    let (_, shape) = win.col2im_shape(cols.shape())?;
    let cv = T::view(cols.storage())?;
    let (p, ow, k) = (win.positions(), win.out_w(), win.patch());
    let taps = win.kh * win.kw;
    let ys = sources(win.h, win.kh, win.sh, win.ph, win.out_h());
    let xs = sources(win.w, win.kw, win.sw, win.pw, ow);
    let mut out = scratch(shape.iter().product());
    // One task per pixel: its c channels, summed over the window positions
    // that read it, in a fixed order.
    for_rows(&mut out, win.c, |r, px| {
        let (img, pix) = (r / (win.h * win.w), r % (win.h * win.w));
        let (iy, ix) = (pix / win.w, pix % win.w);
        px.fill(T::ZERO);
        for &(i, oy) in &ys[iy] {
            for &(j, ox) in &xs[ix] {
                let row = &cv[(img * p + oy * ow + ox) * k..][..k];
                let src = row[i * win.kw + j..].iter().step_by(taps);
                px.iter_mut().zip(src).for_each(|(v, &g)| *v += g);
            }
        }
    });
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}
