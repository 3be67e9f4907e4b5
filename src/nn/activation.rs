//! Pointwise activations, their derivatives, and the scalar definitions every
//! backend's kernels must agree with. Definitions follow PyTorch's defaults
//! (exact erf GELU, ELU with alpha 1, softplus with beta 1) so a checkpoint
//! rebuilt in PyTorch computes the same function.

use crate::error::{Error, Result};
use crate::scalar::Scalar;
use serde::{Deserialize, Serialize};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Identity,
    Relu,
    Tanh,
    Gelu,
    Silu,
    Elu,
    Softplus,
}

pub const ALL_ACTIVATIONS: [Activation; 7] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Tanh,
    Activation::Gelu,
    Activation::Silu,
    Activation::Elu,
    Activation::Softplus,
];

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
// 1 / sqrt(2 pi), the standard normal density's constant.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Elu => "elu",
            Activation::Softplus => "softplus",
        }
    }

    pub fn parse(key: &str, s: &str) -> Result<Self> {
        let s = if s == "swish" { "silu" } else { s };
        ALL_ACTIVATIONS
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ALL_ACTIVATIONS.iter().map(|a| a.name()).collect();
                Error::config(
                    key,
                    format!(
                        "unknown activation {s:?}; expected one of {}",
                        names.join(", ")
                    ),
                )
            })
    }

    #[inline(always)]
    pub fn apply<T: Scalar>(self, x: T) -> T {
        match self {
            Activation::Identity => x,
            Activation::Relu => {
                if x > T::ZERO {
                    x
                } else {
                    T::ZERO
                }
            }
            Activation::Tanh => x.tanh(),
            Activation::Gelu => {
                T::from_f64(0.5) * x * (T::ONE + (x * T::from_f64(FRAC_1_SQRT_2)).erf())
            }
            Activation::Silu => x * sigmoid(x),
            Activation::Elu => {
                if x > T::ZERO {
                    x
                } else {
                    x.exp() - T::ONE
                }
            }
            // max(x, 0) + log1p(exp(-|x|)) never overflows.
            Activation::Softplus => x.max(T::ZERO) + (-x.abs()).exp().ln_1p(),
        }
    }

    /// d act / dx at x. ReLU's derivative at 0 is taken as 0, as PyTorch does.
    #[inline(always)]
    pub fn deriv<T: Scalar>(self, x: T) -> T {
        match self {
            Activation::Identity => T::ONE,
            Activation::Relu => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            Activation::Tanh => {
                let t = x.tanh();
                T::ONE - t * t
            }
            Activation::Gelu => {
                let cdf = T::from_f64(0.5) * (T::ONE + (x * T::from_f64(FRAC_1_SQRT_2)).erf());
                let pdf = T::from_f64(INV_SQRT_2PI) * (T::from_f64(-0.5) * x * x).exp();
                cdf + x * pdf
            }
            Activation::Silu => {
                let s = sigmoid(x);
                s * (T::ONE + x * (T::ONE - s))
            }
            Activation::Elu => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    x.exp()
                }
            }
            Activation::Softplus => sigmoid(x),
        }
    }
}

impl Activation {
    /// d act / dx at x given also y = act(x): tanh, relu, elu and softplus
    /// read it off y, which saves recomputing a transcendental in backward.
    #[inline(always)]
    pub fn deriv_with_output<T: Scalar>(self, x: T, y: T) -> T {
        match self {
            Activation::Tanh => T::ONE - y * y,
            Activation::Elu => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    y + T::ONE
                }
            }
            // sigmoid(x) = 1 - exp(-softplus(x)).
            Activation::Softplus => T::ONE - (-y).exp(),
            _ => self.deriv(x),
        }
    }
}

impl Activation {
    /// d^2 act / dx^2 at x given also y = act(x); Hessian-vector products
    /// need it for the tangent of the backward pass.
    #[inline(always)]
    pub fn second_deriv<T: Scalar>(self, x: T, y: T) -> T {
        match self {
            Activation::Identity | Activation::Relu => T::ZERO,
            Activation::Tanh => T::from_f64(-2.0) * y * (T::ONE - y * y),
            Activation::Gelu => {
                let pdf = T::from_f64(INV_SQRT_2PI) * (T::from_f64(-0.5) * x * x).exp();
                pdf * (T::from_f64(2.0) - x * x)
            }
            Activation::Silu => {
                let s = sigmoid(x);
                s * (T::ONE - s) * (T::from_f64(2.0) + x * (T::ONE - T::from_f64(2.0) * s))
            }
            Activation::Elu => {
                if x > T::ZERO {
                    T::ZERO
                } else {
                    y + T::ONE
                }
            }
            Activation::Softplus => {
                let s = sigmoid(x);
                s * (T::ONE - s)
            }
        }
    }
}

#[inline(always)]
pub fn sigmoid<T: Scalar>(x: T) -> T {
    // Written to avoid exp overflow for large |x|.
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_central_differences() {
        let h = 1e-6;
        for act in ALL_ACTIVATIONS {
            for &x in &[-3.1, -1.0, -0.3, 0.2, 0.7, 2.5, 25.0, -25.0] {
                let fd = (act.apply(x + h) - act.apply(x - h)) / (2.0 * h);
                let d: f64 = act.deriv(x);
                assert!(
                    (fd - d).abs() < 1e-7 * (1.0 + d.abs()),
                    "{act:?} at {x}: fd {fd} vs {d}"
                );
            }
        }
    }

    #[test]
    fn second_derivatives_match_central_differences() {
        let h = 1e-5;
        for act in ALL_ACTIVATIONS {
            for &x in &[-3.1, -1.0, -0.3, 0.2, 0.7, 2.5] {
                let fd = (act.deriv(x + h) - act.deriv(x - h)) / (2.0 * h);
                let d: f64 = act.second_deriv(x, act.apply(x));
                assert!(
                    (fd - d).abs() < 1e-8 * (1.0 + d.abs()),
                    "{act:?} at {x}: fd {fd} vs {d}"
                );
            }
        }
    }

    #[test]
    fn derivative_from_output_agrees() {
        for act in ALL_ACTIVATIONS {
            for &x in &[-3.1f64, -0.3, 0.2, 2.5] {
                let (a, b) = (act.deriv(x), act.deriv_with_output(x, act.apply(x)));
                assert!((a - b).abs() < 1e-14, "{act:?} at {x}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn known_values() {
        assert!((Activation::Gelu.apply(1.0f64) - 0.841_344_746_068_542_9).abs() < 1e-15);
        assert!((Activation::Softplus.apply(0.0f64) - std::f64::consts::LN_2).abs() < 1e-15);
        assert!((Activation::Silu.apply(1.0f64) - 0.731_058_578_630_004_9).abs() < 1e-15);
        assert_eq!(Activation::Softplus.apply(1000.0f64), 1000.0);
    }
}
