//! Finding the CUDA driver and GPUs, and turning the kernel sources into
//! loaded functions: NVRTC compiles each family (`kernels/NAME.cu`, with its
//! `#include "x.cuh"` lines inlined) to PTX once per architecture, and each
//! device loads each family once; both caches live for the whole process.
//! cudarc loads libcuda / libnvrtc / libcublas on first use and panics when
//! one is missing, so every entry point checks presence first and returns an
//! error value instead.

use crate::backend::sources;
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The kernel families, one `kernels/NAME.cu` each.
pub const FAMILIES: [&str; 10] = [
    "matmul",
    "pointwise",
    "reduce",
    "loss",
    "optim",
    "conv",
    "pool",
    "layout",
    "norm",
    "softmax",
];

pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library; nothing is called through it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

pub fn nvrtc_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

pub fn cublas_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

pub(crate) fn drv(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("CUDA {what} failed: {e:?}"))
}

fn require_driver() -> Result<()> {
    if driver_present() {
        Ok(())
    } else {
        Err(Error::Device(
            "no CUDA driver found (libcuda.so could not be loaded: no NVIDIA driver installed, \
             or its library is not on the loader path); run with --device cpu"
                .into(),
        ))
    }
}

/// Number of CUDA GPUs, after checking that the driver can be loaded.
pub fn device_count() -> Result<usize> {
    require_driver()?;
    use cudarc::driver::sys::CUresult;
    match CudaContext::device_count() {
        Ok(n) => Ok(n.max(0) as usize),
        // cuInit reports a driver without GPUs (e.g. a container started
        // without them) as an error.
        Err(cudarc::driver::DriverError(CUresult::CUDA_ERROR_NO_DEVICE)) => Ok(0),
        Err(e) => Err(drv("device count", e)),
    }
}

/// One GPU as `lmech devices` shows it.
#[derive(Clone, Debug)]
pub struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_mem: usize,
}

/// Every visible GPU.
pub fn list_gpus() -> Result<Vec<GpuInfo>> {
    (0..device_count()?)
        .map(|i| {
            let ctx = CudaContext::new(i).map_err(|e| drv("context creation", e))?;
            Ok(GpuInfo {
                ordinal: i,
                name: ctx.name().map_err(|e| drv("device name", e))?,
                compute_capability: ctx
                    .compute_capability()
                    .map_err(|e| drv("compute capability", e))?,
                total_mem: ctx.total_mem().map_err(|e| drv("memory query", e))?,
            })
        })
        .collect()
}

/// The NVRTC virtual architecture for a compute capability, e.g. `compute_90`.
pub fn arch_name(major: i32, minor: i32) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<(i32, i32), &'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap();
    names
        .entry((major, minor))
        .or_insert_with(|| Box::leak(format!("compute_{major}{minor}").into_boxed_str()))
}

/// The source of one family with its `#include "NAME.cuh"` lines replaced by
/// the embedded headers (NVRTC gets a single string, no file system).
pub fn family_source(family: &str) -> Result<String> {
    let src = sources::kernel(family)
        .ok_or_else(|| Error::msg(format!("internal: no kernel source kernels/{family}.cu")))?;
    let mut out = String::with_capacity(src.len() + 8192);
    for line in src.lines() {
        let included = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|r| r.strip_suffix(".cuh\""));
        match included {
            Some(name) => {
                let header = sources::KERNEL_HEADERS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| {
                        Error::msg(format!("kernels/{family}.cu includes missing {name}.cuh"))
                    })?;
                out.push_str(header.1);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// Compile one family to PTX for `arch` (e.g. `compute_80`). A compile error
/// comes back with NVRTC's log.
pub fn compile_family(family: &str, arch: &'static str) -> Result<Ptx> {
    if !nvrtc_present() {
        return Err(Error::Device(
            "NVRTC (libnvrtc.so) could not be loaded: install the CUDA toolkit or \
             `pip install nvidia-cuda-nvrtc-cu12` and put its lib/ on LD_LIBRARY_PATH"
                .into(),
        ));
    }
    let opts = CompileOptions {
        arch: Some(arch),
        name: Some(format!("{family}.cu")),
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(family_source(family)?, opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => Error::Device(format!(
            "NVRTC failed to compile kernels/{family}.cu for {arch}:\n{}",
            log.to_string_lossy()
        )),
        other => drv(&format!("NVRTC on kernels/{family}.cu"), other),
    })
}

/// PTX of `family` for `arch`, compiled once per process.
fn cached_ptx(family: &'static str, arch: &'static str) -> Result<Ptx> {
    static PTX: OnceLock<Mutex<HashMap<(&'static str, &'static str), Ptx>>> = OnceLock::new();
    let cache = PTX.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap().get(&(family, arch)) {
        return Ok(p.clone());
    }
    // Compiled outside the lock: two threads may both compile once, harmlessly.
    let ptx = compile_family(family, arch)?;
    cache.lock().unwrap().insert((family, arch), ptx.clone());
    Ok(ptx)
}

/// The kernel `name` of `family` on the device of `ctx`, loading the family
/// into that device's (primary) context on first use.
pub fn function(
    ctx: &Arc<CudaContext>,
    arch: &'static str,
    family: &'static str,
    name: &'static str,
) -> Result<CudaFunction> {
    type Key = (usize, &'static str);
    static FUNCS: OnceLock<Mutex<HashMap<Key, CudaFunction>>> = OnceLock::new();
    static MODULES: OnceLock<Mutex<HashMap<Key, Arc<CudaModule>>>> = OnceLock::new();
    let ordinal = ctx.ordinal();
    let funcs = FUNCS.get_or_init(Default::default);
    if let Some(f) = funcs.lock().unwrap().get(&(ordinal, name)) {
        return Ok(f.clone());
    }
    let modules = MODULES.get_or_init(Default::default);
    let module = {
        let found = modules.lock().unwrap().get(&(ordinal, family)).cloned();
        match found {
            Some(m) => m,
            None => {
                let m = ctx.load_module(cached_ptx(family, arch)?).map_err(|e| {
                    if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
                        Error::Device(format!(
                            "the driver cannot load the PTX of kernels/{family}.cu: the NVRTC \
                             library found (libnvrtc.so) is newer than the driver; use the \
                             NVRTC of the driver's CUDA version (or update the driver)"
                        ))
                    } else {
                        drv(&format!("loading kernels/{family}.cu"), e)
                    }
                })?;
                modules.lock().unwrap().insert((ordinal, family), m.clone());
                m
            }
        }
    };
    let f = module
        .load_function(name)
        .map_err(|e| drv(&format!("finding kernel {name} in {family}.cu"), e))?;
    funcs.lock().unwrap().insert((ordinal, name), f.clone());
    Ok(f)
}
