//! CPU storage (a reference-counted vector of f32 or f64, so cloning a
//! tensor onto the tape is free, recycled when the last clone drops) and the
//! `Elem` trait that lets each kernel be written once over both element types.

use super::recycle::{Cache, Recycled};
use crate::error::{Error, Result};
use crate::scalar::Scalar;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Arc<Recycled<f32>>),
    F64(Arc<Recycled<f64>>),
}

impl CpuStorage {
    pub fn from_vec<T: Elem>(v: Vec<T>) -> Self {
        T::wrap(v)
    }
}

pub trait Elem: Scalar {
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn view(s: &CpuStorage) -> Result<&[Self]>;
    /// Mutable access; copies the data first if a tape still shares it.
    fn view_mut(s: &mut CpuStorage) -> Result<&mut Vec<Self>>;
    /// Where this type's unused buffers wait to be reused.
    fn cache() -> &'static Cache<Self>;
}

fn mismatch() -> Error {
    Error::msg("internal: tensor dtype differs from the backend's dtype")
}

impl Elem for f32 {
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(Arc::new(Recycled::new(v)))
    }
    fn view(s: &CpuStorage) -> Result<&[Self]> {
        match s {
            CpuStorage::F32(v) => Ok(v),
            _ => Err(mismatch()),
        }
    }
    fn view_mut(s: &mut CpuStorage) -> Result<&mut Vec<Self>> {
        match s {
            CpuStorage::F32(v) => Ok(&mut *Arc::make_mut(v)),
            _ => Err(mismatch()),
        }
    }
    fn cache() -> &'static Cache<Self> {
        static CACHE: Cache<f32> = Cache::new();
        &CACHE
    }
}

impl Elem for f64 {
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(Arc::new(Recycled::new(v)))
    }
    fn view(s: &CpuStorage) -> Result<&[Self]> {
        match s {
            CpuStorage::F64(v) => Ok(v),
            _ => Err(mismatch()),
        }
    }
    fn view_mut(s: &mut CpuStorage) -> Result<&mut Vec<Self>> {
        match s {
            CpuStorage::F64(v) => Ok(&mut *Arc::make_mut(v)),
            _ => Err(mismatch()),
        }
    }
    fn cache() -> &'static Cache<Self> {
        static CACHE: Cache<f64> = Cache::new();
        &CACHE
    }
}
