//! GPU tensor storage and the buffer pool behind it. A training step makes
//! and drops the same activation-sized buffers every step; the pool keeps
//! dropped buffers by size class and hands them out again, so a steady-state
//! step allocates nothing. Reuse is safe without waiting for the GPU: wgpu
//! executes submissions in order, so a kernel that writes a recycled buffer
//! runs after every earlier kernel that read it.
//!
//! Storage is reference-counted and copy-on-write, like the CPU's
//! `Arc<Vec>`: cloning a tensor onto the tape is free, and an in-place op on
//! a shared buffer first copies it on the GPU so the tape keeps its value.

use crate::backend::DType;
use crate::error::{Error, Result};
use ::wgpu::{Buffer, BufferUsages, Device};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Dropped buffers kept for reuse, by size class in bytes.
pub struct Pool {
    device: Device,
    free: Mutex<(HashMap<u64, Vec<Buffer>>, u64)>,
    max_buffer: u64,
}

/// Bytes of idle buffers the pool keeps; past this, dropped buffers are
/// released to the driver instead.
const MAX_IDLE_BYTES: u64 = 1 << 30;

/// The size class of a request: the next power of two, or for requests
/// above 1 MiB the next multiple of a quarter of the power of two below it,
/// so large buffers waste at most a quarter of their size.
fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(16);
    let p = bytes.next_power_of_two();
    if p <= 1 << 20 || p == bytes {
        return p;
    }
    let quarter = p / 8;
    bytes.div_ceil(quarter) * quarter
}

impl Pool {
    pub fn new(device: Device) -> Self {
        // A tensor is bound whole, so the binding limit caps it too.
        let limits = device.limits();
        let max_buffer = limits
            .max_buffer_size
            .min(limits.max_storage_buffer_binding_size);
        Pool {
            device,
            free: Mutex::new((HashMap::new(), 0)),
            max_buffer,
        }
    }

    /// A buffer of at least `bytes` bytes (reused when one is idle).
    pub fn take(self: &Arc<Self>, bytes: u64) -> Result<Arc<Pooled>> {
        let class = size_class(bytes);
        if class > self.max_buffer {
            return Err(Error::Device(format!(
                "wgpu: a tensor of {bytes} bytes exceeds the adapter's largest storage binding ({} bytes); \
                 use smaller chunks or --device cpu",
                self.max_buffer
            )));
        }
        let reused = {
            let mut free = self.free.lock().unwrap();
            let got = free.0.get_mut(&class).and_then(Vec::pop);
            if got.is_some() {
                free.1 -= class;
            }
            got
        };
        let buffer = reused.unwrap_or_else(|| {
            self.device.create_buffer(&::wgpu::BufferDescriptor {
                label: Some("lmech tensor"),
                size: class,
                usage: BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        Ok(Arc::new(Pooled {
            buffer,
            class,
            pool: self.clone(),
        }))
    }

    fn give_back(&self, class: u64, buffer: Buffer) {
        let mut free = self.free.lock().unwrap();
        if free.1 + class <= MAX_IDLE_BYTES {
            free.0.entry(class).or_default().push(buffer);
            free.1 += class;
        }
    }
}

/// A pooled buffer; dropping it returns the buffer to the pool.
pub struct Pooled {
    buffer: Buffer,
    class: u64,
    pool: Arc<Pool>,
}

impl Pooled {
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(self.class, self.buffer.clone());
    }
}

/// A tensor's data on the device: `len` values of `dtype` (f32 or f16) at
/// the start of a pooled buffer. The backend's dtype, except optimizer state,
/// which is f32 whatever the parameters are (`optim.rs`).
#[derive(Clone)]
pub struct WgpuStorage {
    pub(super) buf: Arc<Pooled>,
    pub(super) len: usize,
    pub(super) dtype: DType,
}

impl std::fmt::Debug for WgpuStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WgpuStorage({} {})", self.len, self.dtype.name())
    }
}

impl WgpuStorage {
    pub(super) fn buffer(&self) -> &Buffer {
        self.buf.buffer()
    }

    /// Bytes the values take.
    pub(super) fn bytes(&self) -> usize {
        self.len * self.dtype.size()
    }
}
