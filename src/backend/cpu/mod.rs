//! The CPU backend: the reference every other backend is tested against, and
//! a usable engine in its own right. Computes in f32 or f64; matmul goes
//! through the `gemm` crate (multi-threaded with rayon), pointwise and
//! reduction kernels are plain loops parallelized over rows. Every reduction
//! has a fixed order, so results for a given seed are identical whatever the
//! thread count.

mod conv;
mod elem;
mod layout;
mod loss;
mod matmul;
mod norm;
mod optim;
mod pointwise;
mod pool;
mod recycle;
mod reduce;
mod softmax;
mod split_choice;

pub use elem::{CpuStorage, Elem};
pub use recycle::{cached_bytes, release_cached};

use crate::backend::profile::{self, Part};
use crate::backend::{AdamHyper, Backend, DType, SgdHyper, Window};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Cpu {
    dtype: DType,
}

impl Cpu {
    pub fn new(dtype: DType) -> Self {
        Cpu { dtype }
    }
    pub fn f32() -> Self {
        Cpu::new(DType::F32)
    }
    pub fn f64() -> Self {
        Cpu::new(DType::F64)
    }
}

pub type CpuTensor = Tensor<Cpu>;

/// The CPU stores f32 or f64; f16 storage is a wgpu option. `train` refuses
/// it before building a `Cpu`; an f16 `Cpu` made directly fails every op
/// with this error.
pub fn f16_refused() -> Error {
    Error::config(
        "dtype",
        "f16 storage is a wgpu option (adapters with SHADER_F16); use f32 or f64 on the CPU",
    )
}

/// Runs the kernel of the backend's element type, timed as `$part` (see
/// `backend::profile`).
macro_rules! dispatch {
    ($self:expr, $part:expr, $m:ident :: $f:ident, $($arg:expr),*) => {{
        let _span = profile::span($part);
        match $self.dtype {
            DType::F32 => $m::$f::<f32>($($arg),*),
            DType::F64 => $m::$f::<f64>($($arg),*),
            DType::F16 => Err(f16_refused()),
        }
    }};
}

impl Backend for Cpu {
    type Storage = CpuStorage;

    fn describe(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            self.dtype.name(),
            rayon::current_num_threads()
        )
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn steps_members_apart(&self) -> bool {
        true
    }

    fn from_f64(&self, shape: &[usize], data: &[f64]) -> Result<CpuTensor> {
        let _span = profile::span(Part::Upload);
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(format!(
                "{} values given for shape {shape:?}",
                data.len()
            )));
        }
        let storage = match self.dtype {
            DType::F32 => {
                CpuStorage::from_vec(data.iter().map(|&x| x as f32).collect::<Vec<f32>>())
            }
            DType::F64 => CpuStorage::from_vec(data.to_vec()),
            DType::F16 => return Err(f16_refused()),
        };
        Ok(Tensor::from_parts(shape.to_vec(), storage))
    }

    fn to_f64(&self, t: &CpuTensor) -> Result<Vec<f64>> {
        let _span = profile::span(Part::Download);
        Ok(match t.storage() {
            CpuStorage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            CpuStorage::F64(v) => v.to_vec(),
        })
    }

    fn zeros(&self, shape: &[usize]) -> Result<CpuTensor> {
        let _span = profile::span(Part::Upload);
        let n = shape.iter().product();
        let storage = match self.dtype {
            DType::F32 => CpuStorage::from_vec(recycle::zeroed::<f32>(n)),
            DType::F64 => CpuStorage::from_vec(recycle::zeroed::<f64>(n)),
            DType::F16 => return Err(f16_refused()),
        };
        Ok(Tensor::from_parts(shape.to_vec(), storage))
    }

    fn matmul(
        &self,
        a: &CpuTensor,
        ta: bool,
        b: &CpuTensor,
        tb: bool,
        alpha: f64,
    ) -> Result<CpuTensor> {
        dispatch!(self, Part::Gemm, matmul::matmul, a, ta, b, tb, alpha)
    }

    fn bias_act(
        &self,
        z: &CpuTensor,
        bias: Option<&CpuTensor>,
        bias_scale: f64,
        act: Activation,
    ) -> Result<(CpuTensor, CpuTensor)> {
        dispatch!(
            self,
            Part::Pointwise,
            pointwise::bias_act,
            z,
            bias,
            bias_scale,
            act
        )
    }

    fn act_backward(
        &self,
        pre: &CpuTensor,
        post: &CpuTensor,
        g_post: &CpuTensor,
        act: Activation,
    ) -> Result<CpuTensor> {
        dispatch!(
            self,
            Part::Pointwise,
            pointwise::act_backward,
            pre,
            post,
            g_post,
            act
        )
    }

    fn act_backward_tangent(
        &self,
        pre: &CpuTensor,
        post: &CpuTensor,
        g_post: &CpuTensor,
        g_post_dot: &CpuTensor,
        pre_dot: &CpuTensor,
        act: Activation,
    ) -> Result<CpuTensor> {
        dispatch!(
            self,
            Part::Pointwise,
            pointwise::act_backward_tangent,
            pre,
            post,
            g_post,
            g_post_dot,
            pre_dot,
            act
        )
    }

    fn loss_hvp(
        &self,
        kind: LossKind,
        f: &CpuTensor,
        target: &CpuTensor,
        f_dot: &CpuTensor,
    ) -> Result<CpuTensor> {
        dispatch!(self, Part::Loss, loss::loss_hvp, kind, f, target, f_dot)
    }

    fn dot_members(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        dispatch!(self, Part::Reduce, reduce::dot_members, a, b)
    }

    fn row_sq_norms(&self, x: &CpuTensor) -> Result<CpuTensor> {
        dispatch!(self, Part::Reduce, reduce::row_sq_norms, x)
    }

    fn sum_abs(&self, x: &CpuTensor) -> Result<Vec<f64>> {
        dispatch!(self, Part::Reduce, reduce::sum_abs, x)
    }

    fn sum_rows(&self, x: &CpuTensor, alpha: f64) -> Result<CpuTensor> {
        dispatch!(self, Part::Reduce, reduce::sum_rows, x, alpha)
    }

    fn scale_members(&self, x: &CpuTensor, s: &CpuTensor) -> Result<CpuTensor> {
        dispatch!(self, Part::Pointwise, pointwise::scale_members, x, s)
    }

    fn loss(
        &self,
        kind: LossKind,
        f: &CpuTensor,
        target: &CpuTensor,
    ) -> Result<(CpuTensor, CpuTensor)> {
        dispatch!(self, Part::Loss, loss::loss, kind, f, target)
    }

    fn count_correct(&self, f: &CpuTensor, labels: &CpuTensor) -> Result<Vec<f64>> {
        dispatch!(self, Part::Reduce, reduce::count_correct, f, labels)
    }

    fn axpy(&self, y: &mut CpuTensor, alpha: f64, x: &CpuTensor) -> Result<()> {
        dispatch!(self, Part::Pointwise, pointwise::axpy, y, alpha, x)
    }

    fn sum_sq(&self, x: &CpuTensor) -> Result<Vec<f64>> {
        dispatch!(self, Part::Reduce, reduce::sum_sq, x)
    }

    fn im2col(&self, x: &CpuTensor, win: &Window) -> Result<CpuTensor> {
        dispatch!(self, Part::Layout, conv::im2col, x, win)
    }

    fn col2im(&self, cols: &CpuTensor, win: &Window) -> Result<CpuTensor> {
        dispatch!(self, Part::Layout, conv::col2im, cols, win)
    }

    fn row_max(&self, x: &CpuTensor) -> Result<(CpuTensor, CpuTensor)> {
        dispatch!(self, Part::Layout, pool::row_max, x)
    }

    fn row_pick(&self, x: &CpuTensor, arg: &CpuTensor) -> Result<CpuTensor> {
        dispatch!(self, Part::Layout, pool::row_pick, x, arg)
    }

    fn row_place(&self, g: &CpuTensor, arg: &CpuTensor, k: usize) -> Result<CpuTensor> {
        dispatch!(self, Part::Layout, pool::row_place, g, arg, k)
    }

    fn transpose(&self, x: &CpuTensor) -> Result<CpuTensor> {
        dispatch!(self, Part::Layout, layout::transpose, x)
    }

    fn mul(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        dispatch!(self, Part::Pointwise, pointwise::mul, a, b)
    }

    fn norm_rows(&self, x: &CpuTensor, center: bool, eps: f64) -> Result<(CpuTensor, CpuTensor)> {
        dispatch!(self, Part::Pointwise, norm::norm_rows, x, center, eps)
    }

    fn softmax_rows(&self, x: &CpuTensor, causal: bool) -> Result<CpuTensor> {
        dispatch!(self, Part::Pointwise, softmax::softmax_rows, x, causal)
    }

    fn softmax_rows_j(&self, y: &CpuTensor, t: &CpuTensor) -> Result<CpuTensor> {
        dispatch!(self, Part::Pointwise, softmax::softmax_rows_j, y, t)
    }

    fn softmax_rows_second(
        &self,
        y: &CpuTensor,
        g: &CpuTensor,
        x_dot: &CpuTensor,
    ) -> Result<CpuTensor> {
        dispatch!(
            self,
            Part::Pointwise,
            softmax::softmax_rows_second,
            y,
            g,
            x_dot
        )
    }

    fn norm_rows_j(
        &self,
        y: &CpuTensor,
        s: &CpuTensor,
        t: &CpuTensor,
        center: bool,
    ) -> Result<CpuTensor> {
        dispatch!(self, Part::Pointwise, norm::norm_rows_j, y, s, t, center)
    }

    fn norm_rows_second(
        &self,
        y: &CpuTensor,
        s: &CpuTensor,
        g: &CpuTensor,
        x_dot: &CpuTensor,
        center: bool,
    ) -> Result<CpuTensor> {
        dispatch!(
            self,
            Part::Pointwise,
            norm::norm_rows_second,
            y,
            s,
            g,
            x_dot,
            center
        )
    }

    fn sgd_update(
        &self,
        param: &mut CpuTensor,
        grad: &CpuTensor,
        buf: &mut CpuTensor,
        hp: &SgdHyper,
    ) -> Result<()> {
        dispatch!(
            self,
            Part::Optimizer,
            optim::sgd_update,
            param,
            grad,
            buf,
            hp
        )
    }

    fn adam_update(
        &self,
        param: &mut CpuTensor,
        grad: &CpuTensor,
        m: &mut CpuTensor,
        v: &mut CpuTensor,
        hp: &AdamHyper,
    ) -> Result<()> {
        dispatch!(
            self,
            Part::Optimizer,
            optim::adam_update,
            param,
            grad,
            m,
            v,
            hp
        )
    }
}

/// Rows of at least this many elements in total go to rayon; smaller work
/// runs on the calling thread, where spawning would cost more than it saves.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 17;

/// How many rows one rayon task takes, so a task holds about
/// `PAR_MIN_ELEMS / 4` elements.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    ((PAR_MIN_ELEMS / 4) / row_len.max(1)).max(1)
}
