//! Launches im2col and col2im (`kernels/conv.cu`); the shapes accepted and
//! returned are `Window`'s (`im2col_shape`, `col2im_shape`), as on the CPU
//! (`src/backend/cpu/conv.rs`).

use super::{grid_1d, launch, to_i32, Cuda, CudaTensor};
use crate::backend::Window;
use crate::error::Result;

/// The window as the kernels take it: conv.cu's `struct Window`, field for
/// field, passed by value.
#[repr(C)]
struct Geometry {
    c: i32,
    h: i32,
    w: i32,
    kh: i32,
    kw: i32,
    sh: i32,
    sw: i32,
    ph: i32,
    pw: i32,
    oh: i32,
    ow: i32,
}

// SAFETY: a plain C struct of `int`s, laid out like conv.cu's `Window`.
unsafe impl cudarc::driver::DeviceRepr for Geometry {}

impl Geometry {
    /// The kernels index one image's pixels, positions and patch entries
    /// with `int`s, so those counts must fit (flat offsets are 64-bit).
    fn of(win: &Window) -> Result<Self> {
        to_i32(win.h * win.w * win.c, "pixel values per image")?;
        to_i32(win.positions(), "window positions per image")?;
        to_i32(win.patch(), "patch entries")?;
        Ok(Geometry {
            c: to_i32(win.c, "channels")?,
            h: to_i32(win.h, "height")?,
            w: to_i32(win.w, "width")?,
            kh: to_i32(win.kh, "kernel height")?,
            kw: to_i32(win.kw, "kernel width")?,
            sh: to_i32(win.sh, "stride")?,
            sw: to_i32(win.sw, "stride")?,
            ph: to_i32(win.ph, "padding")?,
            pw: to_i32(win.pw, "padding")?,
            oh: to_i32(win.out_h(), "output height")?,
            ow: to_i32(win.out_w(), "output width")?,
        })
    }
}

pub(super) fn im2col(be: &Cuda, x: &CudaTensor, win: &Window) -> Result<CudaTensor> {
    // Refuses an empty input, so there is always something to launch.
    let (_, shape) = win.im2col_shape(x.shape())?;
    let geo = Geometry::of(win)?;
    let total: usize = shape.iter().product();
    let mut out = be.alloc(total)?;
    let t = total as i64;
    launch!(
        be,
        "conv",
        "im2col",
        grid_1d(total),
        be.buf(x)?,
        &mut out,
        &t,
        &geo
    )?;
    Ok(be.wrap(shape, out))
}

pub(super) fn col2im(be: &Cuda, cols: &CudaTensor, win: &Window) -> Result<CudaTensor> {
    let (_, shape) = win.col2im_shape(cols.shape())?;
    let geo = Geometry::of(win)?;
    let total: usize = shape.iter().product();
    let mut out = be.alloc(total)?;
    let t = total as i64;
    launch!(
        be,
        "conv",
        "col2im",
        grid_1d(total),
        be.buf(cols)?,
        &mut out,
        &t,
        &geo
    )?;
    Ok(be.wrap(shape, out))
}
