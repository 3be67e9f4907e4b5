//! The GPU kernel sources, embedded at build time by `build.rs`: WGSL shaders
//! from `shaders/NAME.wgsl` (already validated by naga) and CUDA C from
//! `kernels/NAME.cu` (plus shared `kernels/*.cuh` headers), looked up by
//! NAME. The two directories hold the same kernel families under the same
//! names.

include!(concat!(env!("OUT_DIR"), "/sources.rs"));

/// The WGSL source of `shaders/{name}.wgsl`.
pub fn shader(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The CUDA C source of `kernels/{name}.cu`.
pub fn kernel(name: &str) -> Option<&'static str> {
    KERNELS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
