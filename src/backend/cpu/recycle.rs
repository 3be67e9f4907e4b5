//! Recycled CPU buffers. A training step, an HVP or an observer allocates the
//! same large temporaries on every call (im2col columns, activations, GEMM
//! outputs). Fresh allocations that large come from `mmap`, so every page is
//! faulted in and zeroed by the kernel and unmapped again when the tensor
//! drops: 40-58% of a CNN step's time before this cache (BENCHMARKS.md). Here
//! a buffer of at least `MIN_LEN` elements goes back to a per-type cache
//! when its last tensor drops, and the next request for the same length
//! takes it, so a step in the steady state maps no new memory.
//!
//! The cache holds at most `limit()` bytes (a quarter of the machine's
//! memory, or `LMECH_CPU_CACHE_MIB`; 0 turns it off); a buffer that would
//! exceed it is freed. `release_cached()` frees everything it holds.

use super::Elem;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, OnceLock};

/// Buffers shorter than this go straight to the allocator, which keeps them
/// in its own heap (below glibc's mmap threshold).
const MIN_LEN: usize = 1 << 14;

/// A tensor's elements; on drop they return to their type's cache.
#[derive(Debug)]
pub struct Recycled<T: Elem>(Vec<T>);

impl<T: Elem> Recycled<T> {
    pub fn new(v: Vec<T>) -> Self {
        Recycled(v)
    }
}

impl<T: Elem> Deref for Recycled<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Elem> DerefMut for Recycled<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T: Elem> Clone for Recycled<T> {
    fn clone(&self) -> Self {
        let mut v = scratch(self.0.len());
        v.copy_from_slice(&self.0);
        Recycled(v)
    }
}

impl<T: Elem> Drop for Recycled<T> {
    fn drop(&mut self) {
        T::cache().put(std::mem::take(&mut self.0));
    }
}

/// The buffers of one element type that no tensor holds, by length.
pub struct Cache<T> {
    inner: Mutex<Shelves<T>>,
}

struct Shelves<T> {
    by_len: BTreeMap<usize, Vec<Vec<T>>>,
    bytes: usize,
}

impl<T: Elem> Cache<T> {
    pub const fn new() -> Self {
        Cache {
            inner: Mutex::new(Shelves {
                by_len: BTreeMap::new(),
                bytes: 0,
            }),
        }
    }

    fn take(&self, len: usize) -> Option<Vec<T>> {
        if len < MIN_LEN {
            return None;
        }
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let shelf = s.by_len.get_mut(&len)?;
        let v = shelf.pop()?;
        if shelf.is_empty() {
            s.by_len.remove(&len);
        }
        s.bytes -= bytes_of::<T>(len);
        Some(v)
    }

    fn put(&self, v: Vec<T>) {
        let len = v.len();
        // Only exact-length buffers are handed out again.
        if len < MIN_LEN || v.capacity() != len {
            return;
        }
        let size = bytes_of::<T>(len);
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if s.bytes + size > limit() {
            return; // dropped here: freed
        }
        s.bytes += size;
        s.by_len.entry(len).or_default().push(v);
    }

    /// Frees every cached buffer; returns the bytes freed.
    fn clear(&self) -> usize {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let freed = s.bytes;
        s.by_len.clear();
        s.bytes = 0;
        freed
    }

    fn held(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

fn bytes_of<T>(len: usize) -> usize {
    len * std::mem::size_of::<T>()
}

/// The most bytes each element type's cache holds.
fn limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        if let Some(mib) = std::env::var("LMECH_CPU_CACHE_MIB")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        {
            return mib << 20;
        }
        memory_total().map(|b| b / 4).unwrap_or(4 << 30)
    })
}

/// Physical memory in bytes, where the system says (Linux).
fn memory_total() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// A buffer of `len` elements whose contents are unspecified (a recycled
/// buffer keeps its old values): for kernels that write every element.
pub fn scratch<T: Elem>(len: usize) -> Vec<T> {
    T::cache().take(len).unwrap_or_else(|| fresh(len))
}

/// A buffer of `len` zeros: for kernels that accumulate or leave elements
/// untouched (padding).
pub fn zeroed<T: Elem>(len: usize) -> Vec<T> {
    match T::cache().take(len) {
        Some(mut v) => {
            v.fill(T::ZERO);
            v
        }
        None => fresh(len),
    }
}

/// A buffer from the allocator (zeroed, which costs nothing until the pages
/// are touched), counted by the profiler when the cache could have held it.
fn fresh<T: Elem>(len: usize) -> Vec<T> {
    if len >= MIN_LEN {
        crate::backend::profile::fresh_buffer(bytes_of::<T>(len));
    }
    vec![T::ZERO; len]
}

/// Frees every buffer the CPU caches hold (both element types) and returns
/// the bytes freed: call it when a long-lived process is done with a model.
pub fn release_cached() -> usize {
    f32::cache().clear() + f64::cache().clear()
}

/// Bytes the CPU caches hold now.
pub fn cached_bytes() -> usize {
    f32::cache().held() + f64::cache().held()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lengths no other test allocates, so tests running beside these in the
    // same process do not take the buffers.
    const LEN: usize = MIN_LEN + 12_345;

    #[test]
    fn a_dropped_buffer_is_handed_out_again_for_its_length_only() {
        let mut v = scratch::<f64>(LEN);
        v.fill(7.0);
        let ptr = v.as_ptr();
        drop(Recycled::new(v));
        let other = scratch::<f64>(LEN + 1);
        assert_ne!(other.as_ptr(), ptr);
        let again = scratch::<f64>(LEN);
        assert_eq!(again.as_ptr(), ptr, "the cached buffer was not reused");
        assert_eq!(again[LEN - 1], 7.0, "scratch keeps the old values");
    }

    #[test]
    fn zeroed_clears_a_recycled_buffer() {
        let len = LEN + 2;
        let mut v = scratch::<f32>(len);
        v.fill(3.0);
        let ptr = v.as_ptr();
        drop(Recycled::new(v));
        let z = zeroed::<f32>(len);
        assert_eq!(z.as_ptr(), ptr);
        assert!(z.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn small_buffers_and_clones_behave_like_vectors() {
        let small = Recycled::new(vec![1.0f32; 8]);
        let copy = small.clone();
        assert_eq!(&copy[..], &small[..]);
        drop(small);
        assert_eq!(scratch::<f32>(8).len(), 8);
        let big = Recycled::new(vec![2.0f64; LEN + 3]);
        let big_copy = big.clone();
        assert_ne!(big_copy.as_ptr(), big.as_ptr());
        assert!(big_copy.iter().all(|&x| x == 2.0));
    }
}
