//! im2col and its adjoint col2im on channels-last images, the CPU reference
//! for `kernels/conv.cu` and `shaders/conv.wgsl`. A convolution is im2col
//! followed by one GEMM, so it runs at the `gemm` crate's speed; col2im
//! gathers (each pixel sums the patch entries read from it) rather than
//! scatters, so it needs no atomics and sums in a fixed order.

use super::pointwise::for_rows;
use super::{Cpu, Elem};
use crate::backend::Window;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn im2col<T: Elem>(x: &Tensor<Cpu>, win: &Window) -> Result<Tensor<Cpu>> {
    let (_, shape) = win.im2col_shape(x.shape())?;
    let xv = T::view(x.storage())?;
    let (p, ow, k) = (win.positions(), win.out_w(), win.patch());
    let mut out = vec![T::ZERO; shape.iter().product()];
    for_rows(&mut out, k, |r, row| {
        // Row r is window position (oy, ox) of image `img` (group-major).
        let (img, pos) = (r / p, r % p);
        let (oy, ox) = (pos / ow, pos % ow);
        let base = img * win.h * win.w * win.c;
        for ci in 0..win.c {
            for i in 0..win.kh {
                let iy = (oy * win.sh + i) as isize - win.ph as isize;
                for j in 0..win.kw {
                    let ix = (ox * win.sw + j) as isize - win.pw as isize;
                    let inside =
                        iy >= 0 && (iy as usize) < win.h && ix >= 0 && (ix as usize) < win.w;
                    if inside {
                        let at = base + ((iy as usize) * win.w + ix as usize) * win.c + ci;
                        row[(ci * win.kh + i) * win.kw + j] = xv[at];
                    }
                }
            }
        }
    });
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}

/// The window offsets `i` (along one axis) and output coordinates `o` with
/// `o * stride + i - pad == at`, for pixel coordinate `at`.
fn sources(
    at: usize,
    k: usize,
    stride: usize,
    pad: usize,
    out: usize,
) -> impl Iterator<Item = (usize, usize)> {
    (0..k).filter_map(move |i| {
        let shifted = (at + pad) as isize - i as isize;
        if shifted < 0 || shifted as usize % stride != 0 {
            return None;
        }
        let o = shifted as usize / stride;
        (o < out).then_some((i, o))
    })
}

pub fn col2im<T: Elem>(cols: &Tensor<Cpu>, win: &Window) -> Result<Tensor<Cpu>> {
    let (_, shape) = win.col2im_shape(cols.shape())?;
    let cv = T::view(cols.storage())?;
    let (p, oh, ow, k) = (win.positions(), win.out_h(), win.out_w(), win.patch());
    let mut out = vec![T::ZERO; shape.iter().product()];
    // One task per pixel: its c channels.
    for_rows(&mut out, win.c, |r, px| {
        let (img, pix) = (r / (win.h * win.w), r % (win.h * win.w));
        let (iy, ix) = (pix / win.w, pix % win.w);
        for (i, oy) in sources(iy, win.kh, win.sh, win.ph, oh) {
            for (j, ox) in sources(ix, win.kw, win.sw, win.pw, ow) {
                let row = &cv[(img * p + oy * ow + ox) * k..][..k];
                for (ci, v) in px.iter_mut().enumerate() {
                    *v += row[(ci * win.kh + i) * win.kw + j];
                }
            }
        }
    });
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}
