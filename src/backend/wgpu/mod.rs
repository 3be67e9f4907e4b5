//! The wgpu backend: the `Backend` ops as hand-written WGSL compute shaders
//! (`shaders/*.wgsl`, one file per kernel family, named like the CUDA twins
//! in `kernels/`), run on whatever Vulkan, Metal or D3D12 adapter wgpu finds,
//! including Mesa's lavapipe software device in CI. Computes in f32; stores
//! f32, or f16 (`DType::F16`) on adapters with `SHADER_F16`, from the same
//! shader sources (`variant.rs`).
//!
//! Inside a training step nothing comes back to the host: kernels are queued
//! in order and only the per-member scalars a caller asks for (`sum_sq`,
//! `sum_abs`, `count_correct`, `to_f64`) wait for the GPU.

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
mod runtime_dir;
mod softmax;
mod storage;
mod variant;

pub use context::{adapters, AdapterSummary};
pub use storage::WgpuStorage;

use crate::backend::{AdamHyper, Backend, DType, SgdHyper, Window};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;
use context::Context;
use std::sync::Arc;

#[derive(Clone)]
pub struct Wgpu {
    ctx: Arc<Context>,
    dtype: DType,
}

impl std::fmt::Debug for Wgpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wgpu({}, {})", self.ctx.info.name, self.dtype.name())
    }
}

pub type WgpuTensor = Tensor<Wgpu>;

/// An f64 hyperparameter as the bits of the f32 the shaders read.
pub(crate) fn bits(x: f64) -> u32 {
    (x as f32).to_bits()
}

impl Wgpu {
    /// The backend on the best adapter (a hardware GPU when there is one).
    /// wgpu computes in f32 only; it stores f32, or f16 where the adapter
    /// has `SHADER_F16`. f64 is the CPU backend's.
    pub fn new(dtype: DType) -> Result<Self> {
        if dtype == DType::F64 {
            return Err(Error::config(
                "dtype",
                "the wgpu backend runs f32 (WGSL has no portable f64); got f64. \
                 Use dtype = \"f32\" (or \"f16\" storage), or --device cpu for f64",
            ));
        }
        let ctx = Context::shared()?;
        if dtype == DType::F16 && !ctx.shader_f16 {
            return Err(Error::config(
                "dtype",
                format!(
                    "this adapter ({}) has no SHADER_F16; use dtype = \"f32\"",
                    ctx.info.name
                ),
            ));
        }
        Ok(Wgpu { ctx, dtype })
    }

    /// The adapter this backend runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.ctx.info
    }

    /// Wait until the GPU has finished everything submitted so far (for
    /// timing; the ops themselves never wait except to read values back).
    pub fn synchronize(&self) -> Result<()> {
        let _span = crate::backend::profile::span(crate::backend::profile::Part::Sync);
        self.ctx
            .device
            .poll(::wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Device(format!("wgpu: waiting for the GPU failed: {e}")))
    }

    /// A fresh (pooled) storage of `len` values of the backend's dtype with
    /// undefined contents.
    fn alloc(&self, len: usize) -> Result<WgpuStorage> {
        self.alloc_as(len, self.dtype)
    }

    fn alloc_as(&self, len: usize, dtype: DType) -> Result<WgpuStorage> {
        Ok(WgpuStorage {
            buf: self.ctx.alloc_bytes(len * dtype.size())?,
            len,
            dtype,
        })
    }

    /// Host values as a new storage of `dtype` (f32 or f16, rounded to
    /// nearest).
    fn upload(&self, data: &[f64], dtype: DType) -> Result<WgpuStorage> {
        let s = self.alloc_as(data.len(), dtype)?;
        if data.is_empty() {
            return Ok(s);
        }
        let bytes: Vec<u8> = if dtype == DType::F16 {
            // Queue writes come in whole 4-byte words: pad an odd count.
            let mut v: Vec<u16> = data
                .iter()
                .map(|&x| half::f16::from_f64(x).to_bits())
                .collect();
            v.resize(v.len().next_multiple_of(2), 0);
            bytemuck::cast_slice(&v).to_vec()
        } else {
            let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
            bytemuck::cast_slice(&v).to_vec()
        };
        self.ctx.queue.write_buffer(s.buffer(), 0, &bytes);
        Ok(s)
    }

    /// Scalars the shaders read as f32 whatever the storage (learning rates).
    fn upload_f32(&self, data: &[f64]) -> Result<WgpuStorage> {
        self.upload(data, DType::F32)
    }

    /// Run `entry` of `shaders/{shader}.wgsl` in this backend's storage
    /// variant (`Context::launch`).
    fn launch(
        &self,
        shader: &'static str,
        entry: &'static str,
        params: &[u32],
        bindings: &[(u32, &::wgpu::Buffer)],
        groups: (u32, u32, u32),
        clear: &[&::wgpu::Buffer],
    ) -> Result<()> {
        self.ctx
            .launch(shader, entry, self.dtype, params, bindings, groups, clear)
    }

    /// Copy-on-write before an in-place op: if another tensor (a tape's
    /// copy) shares `t`'s buffer, give `t` a private copy made on the GPU.
    fn make_unique(&self, t: &mut WgpuTensor) -> Result<()> {
        let s = t.storage_mut();
        if Arc::get_mut(&mut s.buf).is_none() {
            s.buf = self.ctx.copy(s.buffer(), s.bytes())?;
        }
        Ok(())
    }

    /// Make `t` f32 storage (optimizer state is f32 whatever the storage
    /// dtype; `optim.rs`). State made by `zeros` or restored by `from_f64`
    /// is converted once, on its first update, through the host.
    fn widen(&self, t: &mut WgpuTensor) -> Result<()> {
        if t.storage().dtype != DType::F32 {
            let v = self.to_f64(t)?;
            *t.storage_mut() = self.upload_f32(&v)?;
        }
        Ok(())
    }
}

impl Backend for Wgpu {
    type Storage = WgpuStorage;

    fn describe(&self) -> String {
        let i = &self.ctx.info;
        let dtype = match self.dtype {
            DType::F16 => "f16 storage, f32 compute",
            d => d.name(),
        };
        format!(
            "wgpu ({dtype}, {} via {}, {})",
            i.name, i.backend, i.device_type
        )
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn from_f64(&self, shape: &[usize], data: &[f64]) -> Result<WgpuTensor> {
        let _span = crate::backend::profile::span(crate::backend::profile::Part::Upload);
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(format!(
                "{} values given for shape {shape:?}",
                data.len()
            )));
        }
        Ok(Tensor::from_parts(
            shape.to_vec(),
            self.upload(data, self.dtype)?,
        ))
    }

    fn to_f64(&self, t: &WgpuTensor) -> Result<Vec<f64>> {
        let _span = crate::backend::profile::span(crate::backend::profile::Part::Download);
        let s = t.storage();
        if s.dtype == DType::F16 {
            let words = self.ctx.read_words(s.buffer(), context::words(s.bytes()))?;
            return Ok(bytemuck::cast_slice::<u32, u16>(&words)[..s.len]
                .iter()
                .map(|&h| half::f16::from_bits(h).to_f64())
                .collect());
        }
        Ok(self
            .ctx
            .read(s.buffer(), s.len)?
            .into_iter()
            .map(f64::from)
            .collect())
    }

    fn zeros(&self, shape: &[usize]) -> Result<WgpuTensor> {
        let n = shape.iter().product();
        let s = self.alloc(n)?;
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&::wgpu::CommandEncoderDescriptor {
                label: Some("zeros"),
            });
        enc.clear_buffer(s.buffer(), 0, None);
        self.ctx.submit(enc);
        Ok(Tensor::from_parts(shape.to_vec(), s))
    }

    fn matmul(
        &self,
        a: &WgpuTensor,
        ta: bool,
        b: &WgpuTensor,
        tb: bool,
        alpha: f64,
    ) -> Result<WgpuTensor> {
        matmul::matmul(self, a, ta, b, tb, alpha)
    }

    fn bias_act(
        &self,
        z: &WgpuTensor,
        bias: Option<&WgpuTensor>,
        bias_scale: f64,
        act: Activation,
    ) -> Result<(WgpuTensor, WgpuTensor)> {
        pointwise::bias_act(self, z, bias, bias_scale, act)
    }

    fn act_backward(
        &self,
        pre: &WgpuTensor,
        post: &WgpuTensor,
        g_post: &WgpuTensor,
        act: Activation,
    ) -> Result<WgpuTensor> {
        pointwise::act_backward(self, pre, post, g_post, act)
    }

    fn act_backward_tangent(
        &self,
        pre: &WgpuTensor,
        post: &WgpuTensor,
        g_post: &WgpuTensor,
        g_post_dot: &WgpuTensor,
        pre_dot: &WgpuTensor,
        act: Activation,
    ) -> Result<WgpuTensor> {
        pointwise::act_backward_tangent(self, pre, post, g_post, g_post_dot, pre_dot, act)
    }

    fn sum_rows(&self, x: &WgpuTensor, alpha: f64) -> Result<WgpuTensor> {
        reduce::sum_rows(self, x, alpha)
    }

    fn scale_members(&self, x: &WgpuTensor, s: &WgpuTensor) -> Result<WgpuTensor> {
        pointwise::scale_members(self, x, s)
    }

    fn loss(
        &self,
        kind: LossKind,
        f: &WgpuTensor,
        target: &WgpuTensor,
    ) -> Result<(WgpuTensor, WgpuTensor)> {
        loss::loss(self, kind, f, target)
    }

    fn loss_hvp(
        &self,
        kind: LossKind,
        f: &WgpuTensor,
        target: &WgpuTensor,
        f_dot: &WgpuTensor,
    ) -> Result<WgpuTensor> {
        loss::loss_hvp(self, kind, f, target, f_dot)
    }

    fn dot_members(&self, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
        reduce::dot_members(self, a, b)
    }

    fn row_sq_norms(&self, x: &WgpuTensor) -> Result<WgpuTensor> {
        reduce::row_sq_norms(self, x)
    }

    fn sum_abs(&self, x: &WgpuTensor) -> Result<Vec<f64>> {
        reduce::sum_abs(self, x)
    }

    fn count_correct(&self, f: &WgpuTensor, labels: &WgpuTensor) -> Result<Vec<f64>> {
        reduce::count_correct(self, f, labels)
    }

    fn axpy(&self, y: &mut WgpuTensor, alpha: f64, x: &WgpuTensor) -> Result<()> {
        pointwise::axpy(self, y, alpha, x)
    }

    fn sum_sq(&self, x: &WgpuTensor) -> Result<Vec<f64>> {
        reduce::sum_sq(self, x)
    }

    fn im2col(&self, x: &WgpuTensor, win: &Window) -> Result<WgpuTensor> {
        conv::im2col(self, x, win)
    }

    fn col2im(&self, cols: &WgpuTensor, win: &Window) -> Result<WgpuTensor> {
        conv::col2im(self, cols, win)
    }

    fn row_max(&self, x: &WgpuTensor) -> Result<(WgpuTensor, WgpuTensor)> {
        pool::row_max(self, x)
    }

    fn row_pick(&self, x: &WgpuTensor, arg: &WgpuTensor) -> Result<WgpuTensor> {
        pool::row_pick(self, x, arg)
    }

    fn row_place(&self, g: &WgpuTensor, arg: &WgpuTensor, k: usize) -> Result<WgpuTensor> {
        pool::row_place(self, g, arg, k)
    }

    fn transpose(&self, x: &WgpuTensor) -> Result<WgpuTensor> {
        layout::transpose(self, x)
    }

    fn mul(&self, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
        pointwise::mul(self, a, b)
    }

    fn norm_rows(
        &self,
        x: &WgpuTensor,
        center: bool,
        eps: f64,
    ) -> Result<(WgpuTensor, WgpuTensor)> {
        norm::norm_rows(self, x, center, eps)
    }

    fn norm_rows_j(
        &self,
        y: &WgpuTensor,
        s: &WgpuTensor,
        t: &WgpuTensor,
        center: bool,
    ) -> Result<WgpuTensor> {
        norm::norm_rows_j(self, y, s, t, center)
    }

    fn norm_rows_second(
        &self,
        y: &WgpuTensor,
        s: &WgpuTensor,
        g: &WgpuTensor,
        x_dot: &WgpuTensor,
        center: bool,
    ) -> Result<WgpuTensor> {
        norm::norm_rows_second(self, y, s, g, x_dot, center)
    }

    fn softmax_rows(&self, x: &WgpuTensor, causal: bool) -> Result<WgpuTensor> {
        softmax::softmax_rows(self, x, causal)
    }

    fn softmax_rows_j(&self, y: &WgpuTensor, t: &WgpuTensor) -> Result<WgpuTensor> {
        softmax::softmax_rows_j(self, y, t)
    }

    fn softmax_rows_second(
        &self,
        y: &WgpuTensor,
        g: &WgpuTensor,
        x_dot: &WgpuTensor,
    ) -> Result<WgpuTensor> {
        softmax::softmax_rows_second(self, y, g, x_dot)
    }

    fn sgd_update(
        &self,
        param: &mut WgpuTensor,
        grad: &WgpuTensor,
        buf: &mut WgpuTensor,
        hp: &SgdHyper,
    ) -> Result<()> {
        optim::sgd_update(self, param, grad, buf, hp)
    }

    fn adam_update(
        &self,
        param: &mut WgpuTensor,
        grad: &WgpuTensor,
        m: &mut WgpuTensor,
        v: &mut WgpuTensor,
        hp: &AdamHyper,
    ) -> Result<()> {
        optim::adam_update(self, param, grad, m, v, hp)
    }
}
