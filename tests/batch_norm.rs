//! BatchNorm on the CPU in f64: the training-mode function against its
//! definition, gradients and HVPs against finite differences (the full-batch
//! loss with batch statistics is a function of the weights), the running
//! statistics against PyTorch's update rule and their use in evaluation,
//! checkpoints that keep them, and the refusal of per-example observers.

mod common;

use common::{batch_norm_layer, fd_check, max_rel_err, randn, tensor, values};
use lmech::curvature::{flatten, LossOnData};
use lmech::nn::graph::ModelSpec;
use lmech::nn::layer_spec::LayerSpec;
use lmech::nn::loss::LossKind;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::shape::Shape;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::per_sample_norms;
use lmech::rng::Rng;
use lmech::tape::{Curvature, LossHead};
use lmech::{Cpu, Tensor};

/// conv -> BatchNorm -> softplus -> max pool -> flatten -> dense ->
/// BatchNorm1d -> tanh -> dense, on 2x4x4 images. The layers before a
/// BatchNorm have no bias: BatchNorm removes it, so its gradient is zero.
fn cnn() -> ModelSpec {
    ModelSpec {
        input: Shape::Image { c: 2, h: 4, w: 4 },
        layers: vec![
            LayerSpec::Conv2d {
                channels: 3,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: false,
                activation: None,
            },
            batch_norm_layer(),
            LayerSpec::Activation {
                activation: "softplus".into(),
            },
            LayerSpec::MaxPool {
                kernel: 2,
                stride: None,
            },
            LayerSpec::Flatten,
            LayerSpec::Dense {
                width: 5,
                bias: false,
                activation: None,
            },
            batch_norm_layer(),
            LayerSpec::Activation {
                activation: "tanh".into(),
            },
            LayerSpec::Dense {
                width: 3,
                bias: true,
                activation: None,
            },
        ],
        parametrization: Parametrization::Standard,
        width: 3,
        base_width: 3,
    }
}

fn batch(n: usize, d: usize, seed: u64) -> (Tensor<Cpu>, Tensor<Cpu>) {
    let be = Cpu::f64();
    let mut rng = Rng::new(seed);
    let x = tensor(&be, &[n, d], &randn(&mut rng, n * d, 1.0));
    let y: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
    (x, tensor(&be, &[n], &y))
}

#[test]
fn training_mode_gradients_and_hvps_match_finite_differences() {
    let be = Cpu::f64();
    let m = Model::init(&be, cnn(), &[1]).unwrap();
    let (x, y) = batch(6, 32, 2);
    let mut inputs = vec![(x.shape().to_vec(), values(&be, &x), false)];
    for p in m.params() {
        inputs.push((p.shape().to_vec(), values(&be, p), true));
    }
    let err = fd_check(
        &inputs,
        |t, v| {
            let f = m.forward_with(t, v[0], &v[1..])?;
            t.apply(
                Box::new(LossHead::new(LossKind::CrossEntropy, y.clone())),
                &[f.output],
            )
        },
        3,
    );
    assert!(err < 1e-6, "gradient error {err}");
    let lod = LossOnData::new(
        &be,
        &m,
        LossKind::CrossEntropy,
        vec![(x.clone(), y.clone())],
    )
    .unwrap();
    let theta = flatten(&be, &m.params().into_iter().cloned().collect::<Vec<_>>()).unwrap();
    let mut rng = Rng::new(4);
    let v = randn(&mut rng, theta.len(), 1.0);
    let hv = lod.product(&v, Curvature::Hessian).unwrap();
    let grad = |s: f64| {
        let mut m2 = Model::init(&be, cnn(), &[0]).unwrap();
        let mut at = 0;
        for p in m2.params_mut() {
            let n = p.numel();
            let vals: Vec<f64> = (0..n).map(|i| theta[at + i] + s * v[at + i]).collect();
            *p = tensor(&be, p.shape(), &vals);
            at += n;
        }
        flatten(
            &be,
            &m2.loss_pass(&be, &x, &y, LossKind::CrossEntropy, true)
                .unwrap()
                .grads,
        )
        .unwrap()
    };
    let h = 1e-5;
    let fd: Vec<f64> = grad(h)
        .iter()
        .zip(&grad(-h))
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    assert!(
        max_rel_err(&hv, &fd) < 1e-6,
        "HVP error {}",
        max_rel_err(&hv, &fd)
    );
}

/// A vector model whose output is BatchNorm1d of its input: BatchNorm then a
/// bias-free dense layer set to the identity.
fn bn_only(be: &Cpu, d: usize) -> Model<Cpu> {
    let spec = ModelSpec {
        input: Shape::Flat(d),
        layers: vec![
            batch_norm_layer(),
            LayerSpec::Dense {
                width: d,
                bias: false,
                activation: None,
            },
        ],
        parametrization: Parametrization::Standard,
        width: d,
        base_width: d,
    };
    let mut m = Model::init(be, spec, &[0]).unwrap();
    let mut rng = Rng::new(5);
    let eye: Vec<f64> = (0..d * d)
        .map(|i| if i / d == i % d { 1.0 } else { 0.0 })
        .collect();
    let gain = randn(&mut rng, d, 1.0);
    let shift = randn(&mut rng, d, 1.0);
    let mut ps = m.params_mut();
    *ps[0] = tensor(be, &[1, d], &gain);
    *ps[1] = tensor(be, &[1, d], &shift);
    *ps[2] = tensor(be, &[1, d, d], &eye);
    m
}

#[test]
fn batch_and_running_statistics_follow_pytorch() {
    let be = Cpu::f64();
    let (n, d) = (7, 3);
    let mut m = bn_only(&be, d);
    let (x, _) = batch(n, d, 6);
    let xv = values(&be, &x);
    let (gain, shift) = (values(&be, m.params()[0]), values(&be, m.params()[1]));
    let col = |j: usize| -> Vec<f64> { (0..n).map(|i| xv[i * d + j]).collect() };
    let mean: Vec<f64> = (0..d)
        .map(|j| col(j).iter().sum::<f64>() / n as f64)
        .collect();
    let var_b: Vec<f64> = (0..d)
        .map(|j| col(j).iter().map(|v| (v - mean[j]).powi(2)).sum::<f64>() / n as f64)
        .collect();
    let target = tensor(&be, &[n, d], &vec![0.0; n * d]);
    let pass = m.loss_pass(&be, &x, &target, LossKind::Mse, true).unwrap();
    let want: Vec<f64> = (0..n * d)
        .map(|k| {
            let j = k % d;
            (xv[k] - mean[j]) / (var_b[j] + 1e-5).sqrt() * gain[j] + shift[j]
        })
        .collect();
    assert!(max_rel_err(&values(&be, &pass.output), &want) < 1e-12);
    m.track_batch_stats(&be, &pass.batch_stats).unwrap();
    let rm: Vec<f64> = mean.iter().map(|v| 0.1 * v).collect();
    let rv: Vec<f64> = var_b
        .iter()
        .map(|v| 0.9 + 0.1 * v * n as f64 / (n - 1) as f64)
        .collect();
    assert!(max_rel_err(&values(&be, m.buffers()[0]), &rm) < 1e-12);
    assert!(max_rel_err(&values(&be, m.buffers()[1]), &rv) < 1e-12);
    // Evaluation uses the running statistics.
    let eval = values(&be, &m.predict(&be, &x).unwrap());
    let want: Vec<f64> = (0..n * d)
        .map(|k| {
            let j = k % d;
            (xv[k] - rm[j]) / (rv[j] + 1e-5).sqrt() * gain[j] + shift[j]
        })
        .collect();
    assert!(max_rel_err(&eval, &want) < 1e-12);
}

#[test]
fn checkpoints_keep_the_running_statistics() {
    let be = Cpu::f64();
    let mut m = Model::init(&be, cnn(), &[7]).unwrap();
    let (x, y) = batch(5, 32, 8);
    let pass = m
        .loss_pass(&be, &x, &y, LossKind::CrossEntropy, true)
        .unwrap();
    m.track_batch_stats(&be, &pass.batch_stats).unwrap();
    let (tensors, meta) = lmech::nn::checkpoint::checkpoint_contents(&be, &m, "").unwrap();
    assert!(tensors
        .iter()
        .any(|t| t.name == "layers.1.running_mean" && t.shape == vec![3]));
    assert!(tensors
        .iter()
        .any(|t| t.name == "layers.6.running_var" && t.shape == vec![5]));
    let dir = common::temp_dir("bn_checkpoint");
    let path = dir.join("m.safetensors");
    lmech::run::save_checkpoint(&path, &tensors, &meta).unwrap();
    let back = lmech::nn::checkpoint::load_model(&be, &path).unwrap();
    assert_eq!(
        values(&be, &m.predict(&be, &x).unwrap()),
        values(&be, &back.predict(&be, &x).unwrap())
    );
}

#[test]
fn per_example_observers_refuse_batch_norm() {
    let be = Cpu::f64();
    let m = Model::init(&be, cnn(), &[9]).unwrap();
    let (x, y) = batch(4, 32, 10);
    let err = per_sample_norms(&be, &m, &x, &y, LossKind::CrossEntropy)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.layers[1]") && err.contains("BatchNorm"),
        "{err}"
    );
    let err = empirical_ntk(&be, &m, &x).err().unwrap().to_string();
    assert!(err.contains("BatchNorm"), "{err}");
    let cfg: lmech::config::Config = toml::from_str("[observe.per_sample]\nevery = 1\n").unwrap();
    let err = lmech::observe::check_examples_separate(&cfg.observe, &m, 32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("observe.per_sample") && err.contains("model.layers[1]"),
        "{err}"
    );
}

/// Curvature over chunks would measure each chunk with its own batch
/// statistics: refused unless one chunk holds the examples measured.
#[test]
fn curvature_observers_on_batch_norm_measure_one_chunk() {
    let be = Cpu::f64();
    let m = Model::init(&be, cnn(), &[9]).unwrap();
    let check = |observe: &str, train_n: usize| {
        let cfg: lmech::config::Config = toml::from_str(observe).unwrap();
        lmech::observe::check_examples_separate(&cfg.observe, &m, train_n)
    };
    let err = check("[observe.sharpness]\nevery = 1\nchunk = 16\n", 32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("observe.sharpness.chunk")
            && err.contains("all 32")
            && err.contains("model.layers[1]"),
        "{err}"
    );
    let err = check(
        "[observe.hessian_trace]\nevery = 1\nchunk = 16\nn = 20\n",
        32,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("observe.hessian_trace.chunk") && err.contains("all 20"),
        "{err}"
    );
    check("[observe.sharpness]\nevery = 1\nchunk = 16\nn = 16\n", 32).unwrap();
    check("[observe.spectrum]\nevery = 1\nchunk = 64\n", 32).unwrap();
    check("[observe.spectrum]\nevery = 1\n", 2048).unwrap();
}
