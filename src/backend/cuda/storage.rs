//! Device storage: a reference-counted f32 buffer, copy-on-write like the
//! CPU's `Arc<Vec>` (tapes hold clones of parameter tensors, so an in-place
//! update of a shared buffer first copies it on the device). Buffers come
//! from the driver's stream-ordered pool (`cuMemAllocAsync`), which the
//! backend tells to keep freed memory cached, so steady-state steps do not
//! call into the OS allocator.

use super::context::drv;
use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, CudaStream};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct CudaStorage {
    buf: Arc<CudaSlice<f32>>,
}

impl CudaStorage {
    pub(super) fn new(buf: CudaSlice<f32>) -> Self {
        CudaStorage { buf: Arc::new(buf) }
    }

    /// The buffer, checked to belong to `stream`: tensors of one `Cuda`
    /// backend are ordered by its stream only, so another stream's buffer
    /// could be read before it is written or freed while still in use.
    pub(super) fn on(&self, stream: &Arc<CudaStream>) -> Result<&CudaSlice<f32>> {
        if Arc::ptr_eq(self.buf.stream(), stream) {
            Ok(&self.buf)
        } else {
            Err(foreign())
        }
    }

    /// Mutable access for an in-place op; copies first if a tape still
    /// shares the buffer.
    pub(super) fn on_mut(&mut self, stream: &Arc<CudaStream>) -> Result<&mut CudaSlice<f32>> {
        if !Arc::ptr_eq(self.buf.stream(), stream) {
            return Err(foreign());
        }
        if Arc::get_mut(&mut self.buf).is_none() {
            let copy = stream
                .clone_dtod(&*self.buf)
                .map_err(|e| drv("device copy", e))?;
            self.buf = Arc::new(copy);
        }
        Arc::get_mut(&mut self.buf)
            .ok_or_else(|| Error::msg("internal: fresh CUDA buffer is shared"))
    }
}

fn foreign() -> Error {
    Error::Device(
        "a CUDA tensor was used with a different Cuda backend instance (each has its own \
         stream); create tensors with the backend that computes on them"
            .into(),
    )
}
