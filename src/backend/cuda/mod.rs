//! The CUDA backend: hand-written kernels (`kernels/*.cu`) compiled at run
//! time by NVRTC and launched through cudarc, computing in f32. Each `Cuda`
//! value owns one stream (one per model group); every op is queued on it and
//! nothing waits for the GPU except the ops that return host values
//! (`to_f64`, `sum_abs`, `sum_sq`, `count_correct`). Tensors are
//! copy-on-write device buffers from the driver's stream-ordered memory pool.
//!
//! Matmul runs the fp32 SIMT kernel by default, so results match the CPU
//! reference to f32 rounding. `GemmKind` (or `LMECH_CUDA_GEMM=simt|tf32|bf16|
//! cublas`) selects tensor cores in TF32 or BF16 (fp32 accumulate) for
//! products whose M, N and K are all at least `TC_MIN_DIM`, or cuBLAS, the
//! benchmark baseline for the hand-written kernels.

mod context;
mod conv;
mod layout;
mod loss;
mod matmul;
mod norm;
mod optim;
mod pointwise;
mod pool;
mod reduce;
mod softmax;
mod storage;

pub use context::{
    arch_name, compile_family, cublas_present, device_count, driver_present, family_source,
    list_gpus, nvrtc_present, GpuInfo, FAMILIES,
};
pub use matmul::TC_MIN_DIM;
pub use storage::CudaStorage;

use crate::backend::{AdamHyper, Backend, DType, SgdHyper, Window};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;
use context::drv;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig};
use std::sync::{Arc, Mutex};

/// Which GEMM kernel `matmul` uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GemmKind {
    /// fp32 FMA on the SIMT cores (the default; exact to f32 rounding).
    Simt,
    /// Tensor cores, inputs rounded to TF32, fp32 accumulate.
    Tf32,
    /// Tensor cores, inputs rounded to BF16, fp32 accumulate.
    Bf16,
    /// cuBLAS `sgemm` (fp32), as a benchmark baseline.
    Cublas,
}

impl GemmKind {
    pub fn parse(key: &str, s: &str) -> Result<Self> {
        match s {
            "simt" | "fp32" => Ok(GemmKind::Simt),
            "tf32" | "tc-tf32" => Ok(GemmKind::Tf32),
            "bf16" | "tc-bf16" => Ok(GemmKind::Bf16),
            "cublas" => Ok(GemmKind::Cublas),
            _ => Err(Error::config(
                key,
                format!("unknown GEMM kind {s:?}; expected simt, tc-tf32, tc-bf16 or cublas"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GemmKind::Simt => "simt",
            GemmKind::Tf32 => "tc-tf32",
            GemmKind::Bf16 => "tc-bf16",
            GemmKind::Cublas => "cublas",
        }
    }
}

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: &'static str,
    cc: (i32, i32),
    /// Streaming multiprocessors: matmul picks smaller tiles below this many
    /// blocks.
    sms: usize,
    name: String,
    blas: Mutex<Option<Arc<cudarc::cublas::CudaBlas>>>,
}

#[derive(Clone)]
pub struct Cuda {
    inner: Arc<Inner>,
    gemm: GemmKind,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cuda({})", self.describe())
    }
}

pub type CudaTensor = Tensor<Cuda>;

impl Cuda {
    /// A backend on GPU `ordinal` with its own stream. The GEMM kind comes
    /// from `LMECH_CUDA_GEMM` when set, else `simt`.
    pub fn new(ordinal: usize, dtype: DType) -> Result<Self> {
        if dtype != DType::F32 {
            return Err(Error::config(
                "dtype",
                "the CUDA backend computes in f32; set dtype = \"f32\" or run f64 on the CPU \
                 backend (--device cpu)",
            ));
        }
        let count = device_count()?;
        if count == 0 {
            return Err(Error::Device(
                "the CUDA driver is installed but reports no GPU; run with --device cpu".into(),
            ));
        }
        if ordinal >= count {
            return Err(Error::Device(format!(
                "cuda:{ordinal} requested, but this machine has {count} CUDA GPU(s) \
                 (cuda:0 to cuda:{})",
                count - 1
            )));
        }
        if !nvrtc_present() {
            return Err(Error::Device(
                "the CUDA backend compiles its kernels with NVRTC, but libnvrtc.so could not \
                 be loaded: install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12` \
                 and put its lib/ on LD_LIBRARY_PATH"
                    .into(),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| drv("context creation", e))?;
        // SAFETY: each backend orders all work on its one stream, and
        // CudaStorage refuses buffers of another stream, so cudarc's
        // per-buffer events (a cost on every launch) are not needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| drv("stream creation", e))?;
        if ctx.has_async_alloc() {
            keep_pool_memory(&ctx)?;
        }
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| drv("compute capability", e))?;
        let name = ctx.name().map_err(|e| drv("device name", e))?;
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| drv("SM count", e))?;
        let gemm = match std::env::var("LMECH_CUDA_GEMM") {
            Ok(s) => GemmKind::parse("LMECH_CUDA_GEMM", &s)?,
            Err(_) => GemmKind::Simt,
        };
        let be = Cuda {
            inner: Arc::new(Inner {
                ctx,
                stream,
                arch: arch_name(major, minor),
                cc: (major, minor),
                sms: sms.max(1) as usize,
                name: format!("{name} (sm_{major}{minor})"),
                blas: Mutex::new(None),
            }),
            gemm,
        };
        be.with_gemm(gemm)
    }

    /// The same backend (same stream) with another GEMM kind.
    pub fn with_gemm(mut self, gemm: GemmKind) -> Result<Self> {
        if gemm == GemmKind::Cublas && !cublas_present() {
            return Err(Error::Device(
                "GEMM kind cublas needs libcublas.so, which could not be loaded".into(),
            ));
        }
        if matches!(gemm, GemmKind::Tf32 | GemmKind::Bf16) && self.inner.cc.0 < 8 {
            return Err(Error::Device(format!(
                "tensor-core GEMM ({}) needs compute capability 8.0 or newer; this GPU is {}",
                gemm.name(),
                self.inner.name
            )));
        }
        self.gemm = gemm;
        Ok(self)
    }

    pub fn gemm(&self) -> GemmKind {
        self.gemm
    }

    fn sm_count(&self) -> usize {
        self.inner.sms
    }

    /// Wait for all queued work (benchmarks time with this).
    pub fn synchronize(&self) -> Result<()> {
        let _span = crate::backend::profile::span(crate::backend::profile::Part::Sync);
        self.inner
            .stream
            .synchronize()
            .map_err(|e| drv("stream synchronize", e))
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    fn func(&self, family: &'static str, name: &'static str) -> Result<CudaFunction> {
        context::function(&self.inner.ctx, self.inner.arch, family, name)
    }

    fn blas(&self) -> Result<Arc<cudarc::cublas::CudaBlas>> {
        let mut slot = self.inner.blas.lock().unwrap();
        if slot.is_none() {
            let blas = cudarc::cublas::CudaBlas::new(self.inner.stream.clone())
                .map_err(|e| drv("cuBLAS init", e))?;
            *slot = Some(Arc::new(blas));
        }
        Ok(slot.as_ref().unwrap().clone())
    }

    /// An uninitialized buffer of `n` f32 (at least one: the driver rejects
    /// empty allocations).
    fn alloc(&self, n: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: every caller writes all `n` elements before reading them.
        unsafe { self.inner.stream.alloc::<f32>(n.max(1)) }.map_err(|e| drv("allocation", e))
    }

    fn alloc_zeros(&self, n: usize) -> Result<CudaSlice<f32>> {
        self.inner
            .stream
            .alloc_zeros::<f32>(n.max(1))
            .map_err(|e| drv("allocation", e))
    }

    fn wrap(&self, shape: Vec<usize>, buf: CudaSlice<f32>) -> CudaTensor {
        Tensor::from_parts(shape, CudaStorage::new(buf))
    }

    fn buf<'a>(&self, t: &'a CudaTensor) -> Result<&'a CudaSlice<f32>> {
        t.storage().on(&self.inner.stream)
    }

    fn buf_mut<'a>(&self, t: &'a mut CudaTensor) -> Result<&'a mut CudaSlice<f32>> {
        t.storage_mut().on_mut(&self.inner.stream)
    }

    /// Copy the first `n` elements of a device buffer to the host and wait.
    fn download<T: cudarc::driver::DeviceRepr + Default + Clone>(
        &self,
        buf: &CudaSlice<T>,
        n: usize,
    ) -> Result<Vec<T>> {
        let mut host = vec![T::default(); n];
        if n > 0 {
            self.inner
                .stream
                .memcpy_dtoh(&buf.slice(0..n), &mut host)
                .map_err(|e| drv("device-to-host copy", e))?;
        }
        self.synchronize()?;
        Ok(host)
    }
}

/// Tell the device's default memory pool to keep freed memory instead of
/// returning it to the OS at each synchronization: this makes the driver's
/// stream-ordered allocator a caching pool.
fn keep_pool_memory(ctx: &Arc<CudaContext>) -> Result<()> {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold: u64 = u64::MAX;
    // SAFETY: plain driver calls on a live device with valid out-pointers.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            .result()
            .map_err(|e| drv("memory pool query", e))?;
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            &mut threshold as *mut u64 as *mut std::ffi::c_void,
        )
        .result()
        .map_err(|e| drv("memory pool setup", e))
    }
}

/// Threads per block of the one-thread-per-element kernels.
const THREADS: u32 = 256;

/// A grid-stride launch over `total` elements.
fn grid_1d(total: usize) -> LaunchConfig {
    let blocks = total.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row, eight rows per block.
fn grid_rows(nrows: usize) -> Result<LaunchConfig> {
    let blocks = nrows.div_ceil(8).max(1);
    Ok(LaunchConfig {
        grid_dim: (to_u32(blocks, "row blocks")?, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Rows up to this long are summed by one warp (at most 32 entries a lane)
/// in the row kernels (`norm.cu`, `softmax.cu`); longer ones by a whole
/// block.
const WARP_ROW_MAX: usize = 1024;
/// Threads of a block of the row kernels (ROW_THREADS in common.cuh).
const ROW_THREADS: u32 = 256;

/// The launch of a row kernel for `nrows` rows of `c`, and the kernels'
/// `warp_rows` flag: a warp per row (`grid_rows`) up to `WARP_ROW_MAX`, a
/// block per row beyond.
fn row_groups(nrows: usize, c: usize) -> Result<(LaunchConfig, i32)> {
    if c <= WARP_ROW_MAX {
        return Ok((grid_rows(nrows)?, 1));
    }
    let cfg = LaunchConfig {
        grid_dim: (to_u32(nrows, "row blocks")?, 1, 1),
        block_dim: (ROW_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    Ok((cfg, 0))
}

fn to_i32(x: usize, what: &str) -> Result<i32> {
    i32::try_from(x)
        .map_err(|_| Error::shape(format!("{what} = {x} exceeds the CUDA kernels' i32 range")))
}

fn to_u32(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::shape(format!("{what} = {x} exceeds a CUDA grid")))
}

/// Queue a kernel. Arguments are references to values that outlive the call
/// (device buffers, or locals of the kernel's exact C types: i32 for `int`,
/// i64 for `long long`, f32 for `float`, f64 for `double`, `&0u64` for a null
/// pointer).
macro_rules! launch {
    ($be:expr, $family:literal, $name:literal, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        use cudarc::driver::PushKernelArg as _;
        let f = $be.func($family, $name)?;
        let mut args = $be.stream().launch_builder(&f);
        $( args.arg($arg); )+
        // SAFETY: the argument list matches the kernel's signature in
        // kernels/$family.cu, and the sizes passed bound every access.
        unsafe { args.launch($cfg) }
            .map(|_| ())
            .map_err(|e| $crate::backend::cuda::context::drv(concat!("launch of ", $name), e))
    }};
}
pub(crate) use launch;

/// A pointer argument for a kernel that treats a null pointer as "absent"
/// (an optional buffer such as momentum or per-member learning rates): the
/// wrapped argument when there is one, else a null device pointer.
pub(super) struct OrNull<A>(pub(super) Option<A>);

// SAFETY: pushes either the wrapped argument, through its own
// implementation (with its stream synchronization), or a pointer-sized zero
// that lives for the whole program.
unsafe impl<'a, A> cudarc::driver::PushKernelArg<OrNull<A>> for cudarc::driver::LaunchArgs<'a>
where
    cudarc::driver::LaunchArgs<'a>: cudarc::driver::PushKernelArg<A>,
{
    fn arg(&mut self, arg: OrNull<A>) -> &mut Self {
        use cudarc::driver::PushKernelArg;
        static NULL: u64 = 0;
        match arg.0 {
            Some(a) => <Self as PushKernelArg<A>>::arg(self, a),
            None => <Self as PushKernelArg<&'static u64>>::arg(self, &NULL),
        }
    }
}

impl Backend for Cuda {
    type Storage = CudaStorage;

    fn describe(&self) -> String {
        format!(
            "cuda:{} {} (f32, gemm {})",
            self.inner.ctx.ordinal(),
            self.inner.name,
            self.gemm.name()
        )
    }

    fn dtype(&self) -> DType {
        DType::F32
    }

    fn from_f64(&self, shape: &[usize], data: &[f64]) -> Result<CudaTensor> {
        let _span = crate::backend::profile::span(crate::backend::profile::Part::Upload);
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(format!(
                "{} values given for shape {shape:?}",
                data.len()
            )));
        }
        let host: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        let mut buf = self.alloc(n)?;
        if n > 0 {
            self.inner
                .stream
                .memcpy_htod(&host, &mut buf)
                .map_err(|e| drv("host-to-device copy", e))?;
        }
        Ok(self.wrap(shape.to_vec(), buf))
    }

    fn to_f64(&self, t: &CudaTensor) -> Result<Vec<f64>> {
        let _span = crate::backend::profile::span(crate::backend::profile::Part::Download);
        let host = self.download(self.buf(t)?, t.numel())?;
        Ok(host.into_iter().map(|x| x as f64).collect())
    }

    fn zeros(&self, shape: &[usize]) -> Result<CudaTensor> {
        let n = shape.iter().product();
        Ok(self.wrap(shape.to_vec(), self.alloc_zeros(n)?))
    }

    fn matmul(
        &self,
        a: &CudaTensor,
        ta: bool,
        b: &CudaTensor,
        tb: bool,
        alpha: f64,
    ) -> Result<CudaTensor> {
        matmul::matmul(self, a, ta, b, tb, alpha)
    }

    fn bias_act(
        &self,
        z: &CudaTensor,
        bias: Option<&CudaTensor>,
        bias_scale: f64,
        act: Activation,
    ) -> Result<(CudaTensor, CudaTensor)> {
        pointwise::bias_act(self, z, bias, bias_scale, act)
    }

    fn act_backward(
        &self,
        pre: &CudaTensor,
        post: &CudaTensor,
        g_post: &CudaTensor,
        act: Activation,
    ) -> Result<CudaTensor> {
        pointwise::act_backward(self, pre, post, g_post, act)
    }

    fn act_backward_tangent(
        &self,
        pre: &CudaTensor,
        post: &CudaTensor,
        g_post: &CudaTensor,
        g_post_dot: &CudaTensor,
        pre_dot: &CudaTensor,
        act: Activation,
    ) -> Result<CudaTensor> {
        pointwise::act_backward_tangent(self, pre, post, g_post, g_post_dot, pre_dot, act)
    }

    fn sum_rows(&self, x: &CudaTensor, alpha: f64) -> Result<CudaTensor> {
        reduce::sum_rows(self, x, alpha)
    }

    fn scale_members(&self, x: &CudaTensor, s: &CudaTensor) -> Result<CudaTensor> {
        pointwise::scale_members(self, x, s)
    }

    fn loss(
        &self,
        kind: LossKind,
        f: &CudaTensor,
        target: &CudaTensor,
    ) -> Result<(CudaTensor, CudaTensor)> {
        loss::loss(self, kind, f, target)
    }

    fn loss_hvp(
        &self,
        kind: LossKind,
        f: &CudaTensor,
        target: &CudaTensor,
        f_dot: &CudaTensor,
    ) -> Result<CudaTensor> {
        loss::loss_hvp(self, kind, f, target, f_dot)
    }

    fn dot_members(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        reduce::dot_members(self, a, b)
    }

    fn row_sq_norms(&self, x: &CudaTensor) -> Result<CudaTensor> {
        reduce::row_sq_norms(self, x)
    }

    fn sum_abs(&self, x: &CudaTensor) -> Result<Vec<f64>> {
        reduce::host_member_sum(self, x, reduce::MODE_ABS)
    }

    fn count_correct(&self, f: &CudaTensor, labels: &CudaTensor) -> Result<Vec<f64>> {
        reduce::count_correct(self, f, labels)
    }

    fn axpy(&self, y: &mut CudaTensor, alpha: f64, x: &CudaTensor) -> Result<()> {
        pointwise::axpy(self, y, alpha, x)
    }

    fn sum_sq(&self, x: &CudaTensor) -> Result<Vec<f64>> {
        reduce::host_member_sum(self, x, reduce::MODE_SQ)
    }

    fn im2col(&self, x: &CudaTensor, win: &Window) -> Result<CudaTensor> {
        conv::im2col(self, x, win)
    }

    fn col2im(&self, cols: &CudaTensor, win: &Window) -> Result<CudaTensor> {
        conv::col2im(self, cols, win)
    }

    fn row_max(&self, x: &CudaTensor) -> Result<(CudaTensor, CudaTensor)> {
        pool::row_max(self, x)
    }

    fn row_pick(&self, x: &CudaTensor, arg: &CudaTensor) -> Result<CudaTensor> {
        pool::row_pick(self, x, arg)
    }

    fn row_place(&self, g: &CudaTensor, arg: &CudaTensor, k: usize) -> Result<CudaTensor> {
        pool::row_place(self, g, arg, k)
    }

    fn transpose(&self, x: &CudaTensor) -> Result<CudaTensor> {
        layout::transpose(self, x)
    }

    fn mul(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        pointwise::mul(self, a, b)
    }

    fn norm_rows(
        &self,
        x: &CudaTensor,
        center: bool,
        eps: f64,
    ) -> Result<(CudaTensor, CudaTensor)> {
        norm::norm_rows(self, x, center, eps)
    }

    fn norm_rows_j(
        &self,
        y: &CudaTensor,
        s: &CudaTensor,
        t: &CudaTensor,
        center: bool,
    ) -> Result<CudaTensor> {
        norm::norm_rows_j(self, y, s, t, center)
    }

    fn norm_rows_second(
        &self,
        y: &CudaTensor,
        s: &CudaTensor,
        g: &CudaTensor,
        x_dot: &CudaTensor,
        center: bool,
    ) -> Result<CudaTensor> {
        norm::norm_rows_second(self, y, s, g, x_dot, center)
    }

    fn softmax_rows(&self, x: &CudaTensor, causal: bool) -> Result<CudaTensor> {
        softmax::softmax_rows(self, x, causal)
    }

    fn softmax_rows_j(&self, y: &CudaTensor, t: &CudaTensor) -> Result<CudaTensor> {
        softmax::softmax_rows_j(self, y, t)
    }

    fn softmax_rows_second(
        &self,
        y: &CudaTensor,
        g: &CudaTensor,
        x_dot: &CudaTensor,
    ) -> Result<CudaTensor> {
        softmax::softmax_rows_second(self, y, g, x_dot)
    }

    fn sgd_update(
        &self,
        param: &mut CudaTensor,
        grad: &CudaTensor,
        buf: &mut CudaTensor,
        hp: &SgdHyper,
    ) -> Result<()> {
        optim::sgd_update(self, param, grad, buf, hp)
    }

    fn adam_update(
        &self,
        param: &mut CudaTensor,
        grad: &CudaTensor,
        m: &mut CudaTensor,
        v: &mut CudaTensor,
        hp: &AdamHyper,
    ) -> Result<()> {
        optim::adam_update(self, param, grad, m, v, hp)
    }
}

#[cfg(test)]
mod tests {
    use super::GemmKind;

    #[test]
    fn gemm_kinds_parse_by_name_and_alias() {
        for kind in [
            GemmKind::Simt,
            GemmKind::Tf32,
            GemmKind::Bf16,
            GemmKind::Cublas,
        ] {
            assert_eq!(GemmKind::parse("k", kind.name()).unwrap(), kind);
        }
        assert_eq!(GemmKind::parse("k", "tf32").unwrap(), GemmKind::Tf32);
        let err = GemmKind::parse("LMECH_CUDA_GEMM", "fp16")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LMECH_CUDA_GEMM") && err.contains("tc-bf16"),
            "{err}"
        );
    }
}
