//! Launches the batched transpose of `kernels/layout.cu`; shapes as in
//! `src/backend/cpu/layout.rs`.

use super::{launch, to_i32, to_u32, Cuda, CudaTensor};
use crate::backend::shapes::rows_of;
use crate::error::Result;
use cudarc::driver::LaunchConfig;

/// Tile edge and rows of threads per tile (TILE, TILE_ROWS in layout.cu).
const TILE: usize = 32;
const TILE_ROWS: u32 = 8;
/// The most matrices given a block row each; the kernel strides over more.
const MAX_BATCH_BLOCKS: usize = 65535;

pub(super) fn transpose(be: &Cuda, x: &CudaTensor) -> Result<CudaTensor> {
    let (n, r, c) = rows_of("transpose", x.shape())?;
    let shape = match x.shape().len() {
        3 => vec![n, c, r],
        _ => vec![c, r],
    };
    let total = x.numel();
    let mut out = be.alloc(total)?;
    if total > 0 {
        let tiles = r.div_ceil(TILE) * c.div_ceil(TILE);
        let cfg = LaunchConfig {
            grid_dim: (
                to_u32(tiles, "transpose tiles")?,
                n.min(MAX_BATCH_BLOCKS) as u32,
                1,
            ),
            block_dim: (TILE as u32, TILE_ROWS, 1),
            shared_mem_bytes: 0,
        };
        let (ni, ri, ci) = (n as i64, to_i32(r, "rows")?, to_i32(c, "columns")?);
        launch!(
            be,
            "layout",
            "transpose",
            cfg,
            be.buf(x)?,
            &mut out,
            &ni,
            &ri,
            &ci
        )?;
    }
    Ok(be.wrap(shape, out))
}
