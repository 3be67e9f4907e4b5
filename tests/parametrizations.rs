//! Parametrizations: initial weight statistics, forward multipliers and
//! learning-rate scales as the table in src/nn/parametrization.rs states
//! them, and the width scaling each is built to produce at initialization.

mod common;

use common::{randn, tensor, values};
use lmech::nn::activation::Activation;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::{OptimFamily, Parametrization};
use lmech::rng::Rng;
use lmech::Cpu;

fn model(p: Parametrization, width: usize, base: usize) -> Model<Cpu> {
    let mut spec = MlpSpec::new(50, width, 3, 10, Activation::Tanh);
    spec.parametrization = p;
    spec.base_width = base;
    Model::init(&Cpu::f64(), spec, &[3]).unwrap()
}

fn moments(v: &[f64]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    (mean, var, max)
}

#[test]
fn standard_matches_pytorch_linear_init() {
    let be = Cpu::f64();
    let m = model(Parametrization::Standard, 400, 64);
    for (l, fan_in) in [(0, 50.0f64), (1, 400.0), (2, 400.0)] {
        let (mean, var, max) = moments(&values(&be, m.weights()[l]));
        let bound = 1.0 / fan_in.sqrt();
        // U(-b, b) has variance b^2 / 3.
        assert!(mean.abs() < 0.05 * bound, "layer {l} mean {mean}");
        assert!(
            (var / (bound * bound / 3.0) - 1.0).abs() < 0.05,
            "layer {l} var {var}"
        );
        assert!(max <= bound, "layer {l} max {max} > {bound}");
        let (_, _, bmax) = moments(&values(&be, m.params()[2 * l + 1]));
        assert!(bmax <= bound);
        assert_eq!(m.layer_scales()[l].multiplier, 1.0);
    }
}

#[test]
fn ntk_and_mean_field_use_unit_gaussians_with_multipliers() {
    let be = Cpu::f64();
    for p in [Parametrization::Ntk, Parametrization::MeanField] {
        let m = model(p, 400, 100);
        for l in 0..3 {
            let (_, var, _) = moments(&values(&be, m.weights()[l]));
            assert!((var - 1.0).abs() < 0.05, "{p:?} layer {l} var {var}");
        }
        let mults: Vec<f64> = m.layer_scales().iter().map(|s| s.multiplier).collect();
        let want = match p {
            Parametrization::Ntk => vec![1.0 / 50f64.sqrt(), 1.0 / 20.0, 1.0 / 20.0],
            _ => vec![1.0 / 50f64.sqrt(), 1.0 / 20.0, 1.0 / 400.0],
        };
        for (a, b) in mults.iter().zip(&want) {
            assert!((a - b).abs() < 1e-15, "{p:?}: {mults:?}");
        }
    }
}

#[test]
fn mup_init_and_learning_rates_follow_tensor_programs_v() {
    let be = Cpu::f64();
    let (width, base) = (512, 128);
    let m = model(Parametrization::Mup, width, base);
    let ratio = (width / base) as f64;
    let vars: Vec<f64> = (0..3)
        .map(|l| moments(&values(&be, m.weights()[l])).1)
        .collect();
    let want = [1.0 / 50.0, 1.0 / 512.0, 1.0 / (512.0 * ratio)];
    for l in 0..3 {
        assert!(
            (vars[l] / want[l] - 1.0).abs() < 0.1,
            "layer {l}: {} vs {}",
            vars[l],
            want[l]
        );
    }
    let sgd = m.lr_scales(OptimFamily::Sgd);
    let adam = m.lr_scales(OptimFamily::Adam);
    // [W0, b0, W1, b1, W2, b2]
    assert_eq!(sgd, vec![ratio, ratio, 1.0, ratio, 1.0 / ratio, ratio]);
    assert_eq!(adam, vec![1.0, 1.0, 1.0 / ratio, 1.0, 1.0 / ratio, 1.0]);
    // At the base width muP's learning rates are unscaled.
    let m0 = model(Parametrization::Mup, base, base);
    assert!(m0.lr_scales(OptimFamily::Adam).iter().all(|&s| s == 1.0));
}

/// Mean |output| at initialization over a batch of unit-scale inputs.
fn output_scale(p: Parametrization, width: usize) -> f64 {
    let be = Cpu::f64();
    let mut spec = MlpSpec::new(20, width, 3, 1, Activation::Tanh);
    spec.parametrization = p;
    spec.base_width = 64;
    spec.bias = false;
    let seeds: Vec<u64> = (0..4).collect();
    let m = Model::init(&be, spec, &seeds).unwrap();
    let mut rng = Rng::new(7);
    let x = tensor(&be, &[200, 20], &randn(&mut rng, 4000, 1.0));
    let out = values(&be, &m.predict(&be, &x).unwrap());
    out.iter().map(|v| v.abs()).sum::<f64>() / out.len() as f64
}

#[test]
fn output_scale_with_width_is_what_each_parametrization_predicts() {
    // Width x16: SP and NTK outputs stay O(1); muP's shrink like
    // 1/sqrt(width) and mean-field's like 1/sqrt(width) too (its output
    // multiplier is 1/n on a sum of n O(1) terms with random signs).
    let (small, large) = (128, 2048);
    for p in [Parametrization::Standard, Parametrization::Ntk] {
        let r = output_scale(p, large) / output_scale(p, small);
        assert!(r > 0.6 && r < 1.6, "{p:?}: ratio {r}");
    }
    for p in [Parametrization::Mup, Parametrization::MeanField] {
        let r = output_scale(p, large) / output_scale(p, small);
        assert!(
            r > 0.25 * 0.6 && r < 0.25 * 1.6,
            "{p:?}: ratio {r} (1/4 expected)"
        );
    }
}

/// Convolutions take their role's row of the tables with fan-in
/// `c_in * k * k`, and normalization gains and shifts the vector-like
/// learning rates, so muP applies to CNNs with width = channels.
#[test]
fn conv_and_norm_roles_follow_the_tables_with_fan_in_c_in_k_k() {
    use lmech::nn::graph::ModelSpec;
    use lmech::nn::layer_spec::LayerSpec;
    use lmech::nn::shape::Shape;
    let be = Cpu::f64();
    let (width, base) = (64, 16);
    let ratio = (width / base) as f64;
    let conv = |c| LayerSpec::Conv2d {
        channels: c,
        kernel: 3,
        stride: 1,
        padding: 1,
        bias: true,
        activation: None,
    };
    let spec = ModelSpec {
        input: Shape::Image { c: 3, h: 6, w: 6 },
        layers: vec![
            conv(width),
            LayerSpec::LayerNorm {
                gain: true,
                bias: true,
                eps: 1e-5,
            },
            conv(width),
            LayerSpec::GlobalAvgPool,
            LayerSpec::Dense {
                width: 10,
                bias: true,
                activation: None,
            },
        ],
        parametrization: Parametrization::Mup,
        width,
        base_width: base,
    };
    let m = Model::init(&be, spec, &[5]).unwrap();
    let vars: Vec<f64> = m
        .weights()
        .iter()
        .map(|w| moments(&values(&be, w)).1)
        .collect();
    let want = [1.0 / 27.0, 1.0 / (64.0 * 9.0), 1.0 / (64.0 * ratio)];
    for (l, (v, w)) in vars.iter().zip(&want).enumerate() {
        assert!((v / w - 1.0).abs() < 0.1, "weight layer {l}: {v} vs {w}");
    }
    // [conv W, conv b, gain, shift, conv W, conv b, dense W, dense b]
    let sgd = m.lr_scales(OptimFamily::Sgd);
    let adam = m.lr_scales(OptimFamily::Adam);
    assert_eq!(
        sgd,
        vec![ratio, ratio, ratio, ratio, 1.0, ratio, 1.0 / ratio, ratio]
    );
    assert_eq!(
        adam,
        vec![1.0, 1.0, 1.0, 1.0, 1.0 / ratio, 1.0, 1.0 / ratio, 1.0]
    );
    let gain = values(&be, m.params()[2]);
    assert!(gain.iter().all(|&g| g == 1.0) && values(&be, m.params()[3]).iter().all(|&b| b == 0.0));
}
