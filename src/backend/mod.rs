//! The `Backend` trait: the few coarse ops everything above it (tape, models,
//! optimizers, observers) is written in. Each backend (CPU reference, CUDA,
//! WGSL) implements all of them; a new op goes into every backend in the same
//! change, with a parity test against the CPU.
//!
//! Conventions shared by every op: tensors are contiguous row-major; rank-3
//! tensors carry the ensemble dimension E first; a rank-2 operand is shared
//! across the ensemble; per-member scalars (learning rates) come as slices of
//! length E or 1.

pub mod cpu;
pub mod cuda;
pub mod device;
pub mod profile;
pub mod shapes;
pub mod sources;
pub mod wgpu;
pub mod window;

use crate::error::Result;
use crate::nn::activation::Activation;
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;
pub use window::Window;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F64,
    /// IEEE half storage, computed and accumulated in f32: a wgpu option on
    /// adapters with `SHADER_F16`.
    F16,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
        }
    }

    /// Bytes per stored element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

/// Hyperparameters of one SGD update (PyTorch's `torch.optim.SGD` semantics:
/// coupled weight decay, momentum buffer without dampening).
#[derive(Clone, Debug)]
pub struct SgdHyper<'a> {
    /// Learning rate per ensemble member (length E, or 1 for all).
    pub lr: &'a [f64],
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

/// Hyperparameters of one Adam / AdamW update (PyTorch semantics; `step` is
/// 1 on the first update, for bias correction).
#[derive(Clone, Debug)]
pub struct AdamHyper<'a> {
    pub lr: &'a [f64],
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the weights directly instead of adding `wd * p` to the
    /// gradient.
    pub decoupled: bool,
    pub step: u64,
}

#[allow(clippy::wrong_self_convention)]
pub trait Backend: Clone + Send + Sync + Sized + 'static {
    type Storage: Clone + Send + Sync + std::fmt::Debug;

    /// What this backend is, for logs (e.g. "cpu (f32, 2 threads)").
    fn describe(&self) -> String;
    fn dtype(&self) -> DType;

    /// Whether an ensemble trains faster with its members stepped apart,
    /// one member per thread (`member_steps`), than as packed tensors. Yes
    /// on the CPU, where a member's working set stays in cache; no on a
    /// GPU, where packing fills the device.
    fn steps_members_apart(&self) -> bool {
        false
    }

    /// Upload host values (converted to the backend's dtype).
    fn from_f64(&self, shape: &[usize], data: &[f64]) -> Result<Tensor<Self>>;
    /// Download to the host as f64.
    fn to_f64(&self, t: &Tensor<Self>) -> Result<Vec<f64>>;
    fn zeros(&self, shape: &[usize]) -> Result<Tensor<Self>>;

    /// `alpha * op(a) @ op(b)` batched over the ensemble dimension, where
    /// `op(x)` is `x` or its transpose (`ta`, `tb`) per matrix. A batch of one
    /// broadcasts against a batch of E.
    fn matmul(
        &self,
        a: &Tensor<Self>,
        ta: bool,
        b: &Tensor<Self>,
        tb: bool,
        alpha: f64,
    ) -> Result<Tensor<Self>>;

    /// Fused `pre = z + bias_scale * bias` (bias `[E, n]` broadcast over the
    /// rows of `z` `[E, B, n]`) and `post = act(pre)`. Returns `(pre, post)`.
    fn bias_act(
        &self,
        z: &Tensor<Self>,
        bias: Option<&Tensor<Self>>,
        bias_scale: f64,
        act: Activation,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// `g_post * act'(pre)`, elementwise; `post = act(pre)` is passed too so
    /// activations whose derivative is a function of the output need not
    /// recompute it.
    fn act_backward(
        &self,
        pre: &Tensor<Self>,
        post: &Tensor<Self>,
        g_post: &Tensor<Self>,
        act: Activation,
    ) -> Result<Tensor<Self>>;

    /// The tangent of `act_backward` along a tangent `pre_dot` of the
    /// pre-activation and `g_post_dot` of the incoming cotangent:
    /// `g_post_dot * act'(pre) + g_post * act''(pre) * pre_dot`.
    fn act_backward_tangent(
        &self,
        pre: &Tensor<Self>,
        post: &Tensor<Self>,
        g_post: &Tensor<Self>,
        g_post_dot: &Tensor<Self>,
        pre_dot: &Tensor<Self>,
        act: Activation,
    ) -> Result<Tensor<Self>>;

    /// `alpha * sum over rows`: `[E, B, n] -> [E, n]`.
    fn sum_rows(&self, x: &Tensor<Self>, alpha: f64) -> Result<Tensor<Self>>;

    /// Each ensemble member's slice of `x` (`[E, ...]`) times `s[e]` (`s` of
    /// shape `[E]`).
    fn scale_members(&self, x: &Tensor<Self>, s: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// Loss head on outputs `f` `[E, B, K]`: per-member mean loss `[E]` and
    /// its gradient with respect to `f`. `target` is `[B]` class indices for
    /// cross-entropy and `[B, K]` (shared) or `[E, B, K]` values for the
    /// squared losses.
    fn loss(
        &self,
        kind: LossKind,
        f: &Tensor<Self>,
        target: &Tensor<Self>,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// The Hessian of each member's mean loss with respect to its outputs,
    /// applied to `f_dot` (`[E, B, K]`): for cross-entropy
    /// `(p * (f_dot - <p, f_dot>)) / B` row by row, for `Mse` `f_dot / B`.
    fn loss_hvp(
        &self,
        kind: LossKind,
        f: &Tensor<Self>,
        target: &Tensor<Self>,
        f_dot: &Tensor<Self>,
    ) -> Result<Tensor<Self>>;

    /// Per member, the inner product of `a` and `b` (`[E, ...]`): `[E]`.
    fn dot_members(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// Squared norm of each row: `[E, B, n] -> [E, B]`. Per-sample gradient
    /// norms are products of these (DESIGN.md, 5).
    fn row_sq_norms(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// Per member, the sum of absolute values of `[E, ...]`.
    fn sum_abs(&self, x: &Tensor<Self>) -> Result<Vec<f64>>;

    /// Per member, the number of rows of `f` `[E, B, K]` whose argmax is the
    /// label in `labels` `[B]` (compared as numbers, so a negative label, an
    /// ignored position, is never right).
    fn count_correct(&self, f: &Tensor<Self>, labels: &Tensor<Self>) -> Result<Vec<f64>>;

    /// `y += alpha * x`.
    fn axpy(&self, y: &mut Tensor<Self>, alpha: f64, x: &Tensor<Self>) -> Result<()>;

    /// Per member squared Frobenius norm of `[E, ...]`.
    fn sum_sq(&self, x: &Tensor<Self>) -> Result<Vec<f64>>;

    /// Patches of channels-last images as rows (im2col). `x` holds whole
    /// groups (ensemble members) of `win.n` images `[h, w, c]`: rank 2
    /// `[n, h * w * c]` (one group) or rank 3 `[groups, ...]`. Returns
    /// `[groups, n * positions, c * kh * kw]` (rank 2 for a rank-2 `x`),
    /// one row per window position, columns ordered (channel, kernel row,
    /// kernel column); padding reads zeros.
    fn im2col(&self, x: &Tensor<Self>, win: &Window) -> Result<Tensor<Self>>;

    /// The adjoint of `im2col`: every patch entry added back to the pixel it
    /// was read from (entries from padding are dropped). Returns
    /// `[groups, n, h * w * c]` (rank 2 for a rank-2 `cols`).
    fn col2im(&self, cols: &Tensor<Self>, win: &Window) -> Result<Tensor<Self>>;

    /// The largest entry of each row of `x` (`[M, R, K]`, rank 1 to 3) and
    /// its column, the first on ties, stored as a value: both `[M, R, 1]`.
    fn row_max(&self, x: &Tensor<Self>) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// `x[r, arg[r]]` for each row of `x` (`[M, R, K]`): `[M, R, 1]`.
    fn row_pick(&self, x: &Tensor<Self>, arg: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// The adjoint of `row_pick`: rows of `k` zeros with `g[r]` at column
    /// `arg[r]` (`g`, `arg` `[M, R, 1]` -> `[M, R, k]`).
    fn row_place(&self, g: &Tensor<Self>, arg: &Tensor<Self>, k: usize) -> Result<Tensor<Self>>;

    /// Each `[r, c]` matrix of `x` (`[N, r, c]`) transposed: `[N, c, r]`.
    fn transpose(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// Elementwise `a * b`, where `b` has `a`'s shape or is one row per
    /// member (`[M or 1, C]`) broadcast over the rows of `a` (`[M, R, C]`).
    fn mul(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// Each row of `x` (`[M, R, C]`) normalized: with `center` (LayerNorm)
    /// `y = (x - mean) s`, `s = 1 / sqrt(var + eps)` (biased variance);
    /// without (RMSNorm) `y = x s`, `s = 1 / sqrt(mean(x^2) + eps)`.
    /// Returns `(y, s)` with `s` `[M, R]`.
    fn norm_rows(
        &self,
        x: &Tensor<Self>,
        center: bool,
        eps: f64,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// The normalization's Jacobian at `(y, s)` (it is symmetric) applied to
    /// `t` row by row: `s (P t - y (y . t) / C)`, with P the centering
    /// projection when `center` and the identity otherwise.
    fn norm_rows_j(
        &self,
        y: &Tensor<Self>,
        s: &Tensor<Self>,
        t: &Tensor<Self>,
        center: bool,
    ) -> Result<Tensor<Self>>;

    /// The derivative of `J g` along an input tangent `x_dot` with `g`
    /// fixed, the second-order term of the normalization's vjp tangent:
    /// `-(s / C) [(y . x_dot) J g + (y . g) J x_dot + (J x_dot . g) y]`.
    fn norm_rows_second(
        &self,
        y: &Tensor<Self>,
        s: &Tensor<Self>,
        g: &Tensor<Self>,
        x_dot: &Tensor<Self>,
        center: bool,
    ) -> Result<Tensor<Self>>;

    /// The softmax of each row of `x` (`[M, R, C]`). With `causal` the rows
    /// are stacked C x C score matrices and row r keeps columns
    /// 0..=(r mod C); the others are 0.
    fn softmax_rows(&self, x: &Tensor<Self>, causal: bool) -> Result<Tensor<Self>>;

    /// The softmax's Jacobian at `y` (symmetric) applied to `t` row by row:
    /// `y * (t - y . t)`.
    fn softmax_rows_j(&self, y: &Tensor<Self>, t: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// The derivative of `J g` along an input tangent `x_dot` with `g`
    /// fixed, the softmax's curvature term: with `y_dot = J x_dot`,
    /// `y_dot * (g - y . g) - y (y_dot . g)`.
    fn softmax_rows_second(
        &self,
        y: &Tensor<Self>,
        g: &Tensor<Self>,
        x_dot: &Tensor<Self>,
    ) -> Result<Tensor<Self>>;

    /// In-place SGD update of `param` (`[E, ...]`) with momentum buffer `buf`
    /// (ignored when momentum is 0).
    fn sgd_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        buf: &mut Tensor<Self>,
        hp: &SgdHyper,
    ) -> Result<()>;

    /// In-place Adam/AdamW update with first and second moment buffers.
    fn adam_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        hp: &AdamHyper,
    ) -> Result<()>;
}
