//! Third-derivative products `T[u, v, .]` (central differences of HVPs) in
//! f64 against second differences of gradients, which share no code with
//! the Hessian-vector product, on an MLP, a CNN and a transformer block;
//! their symmetry in all three slots; and zero on a quadratic loss.

mod common;

use common::model_parity::conv;
use common::{max_rel_err, randn, tensor};
use lmech::curvature::{flatten, unflatten, LossOnData, ThirdOnData};
use lmech::nn::activation::Activation;
use lmech::nn::graph::ModelSpec;
use lmech::nn::layer_spec::LayerSpec;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::shape::Shape;
use lmech::rng::Rng;
use lmech::{Cpu, Tensor};

type Chunks = Vec<(Tensor<Cpu>, Tensor<Cpu>)>;

fn mlp(depth: usize) -> ModelSpec {
    MlpSpec::new(4, 5, depth, 3, Activation::Tanh).into()
}

fn cnn() -> ModelSpec {
    ModelSpec {
        input: Shape::Image { c: 1, h: 5, w: 5 },
        layers: vec![
            conv(3, 3, 1, 1, Some("tanh")),
            LayerSpec::AvgPool {
                kernel: 2,
                stride: None,
                padding: 0,
            },
            LayerSpec::Flatten,
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

fn transformer() -> ModelSpec {
    ModelSpec {
        input: Shape::Signal { c: 2, l: 4 },
        layers: vec![
            LayerSpec::Conv1d {
                channels: 4,
                kernel: 1,
                stride: 1,
                padding: 0,
                bias: true,
                activation: None,
            },
            LayerSpec::Residual {
                layers: vec![
                    LayerSpec::LayerNorm {
                        gain: true,
                        bias: true,
                        eps: 1e-5,
                    },
                    LayerSpec::Attention {
                        heads: 2,
                        head_dim: None,
                        causal: true,
                        bias: true,
                    },
                ],
                projection: false,
                activation: None,
            },
            LayerSpec::GlobalAvgPool,
            LayerSpec::Dense {
                width: 3,
                bias: true,
                activation: None,
            },
        ],
        parametrization: Parametrization::Standard,
        width: 4,
        base_width: 4,
    }
}

/// A model and 6 examples with regression targets, in two chunks.
fn problem(spec: ModelSpec, seed: u64) -> (Model<Cpu>, Chunks) {
    let be = Cpu::f64();
    let model = Model::init(&be, spec.clone(), &[seed]).unwrap();
    let mut rng = Rng::new(seed + 10);
    let d = spec.input.features();
    let chunks = [(0, 4), (4, 6)]
        .iter()
        .map(|(a, b)| {
            let n = b - a;
            (
                tensor(&be, &[n, d], &randn(&mut rng, n * d, 1.0)),
                tensor(&be, &[n, 3], &randn(&mut rng, n * 3, 1.0)),
            )
        })
        .collect();
    (model, chunks)
}

fn theta(model: &Model<Cpu>) -> Vec<f64> {
    let be = Cpu::f64();
    flatten(
        &be,
        &model.params().into_iter().cloned().collect::<Vec<_>>(),
    )
    .unwrap()
}

fn gradient_at(model: &Model<Cpu>, chunks: &Chunks, at: &[f64]) -> Vec<f64> {
    let be = Cpu::f64();
    let mut moved = model.member(&be, 0).unwrap();
    let like: Vec<Tensor<Cpu>> = model.params().into_iter().cloned().collect();
    let refs: Vec<&Tensor<Cpu>> = like.iter().collect();
    for (dst, t) in moved
        .params_mut()
        .into_iter()
        .zip(unflatten(&be, at, &refs).unwrap())
    {
        *dst = t;
    }
    let lod = LossOnData::new(&be, &moved, LossKind::Mse, chunks.clone()).unwrap();
    flatten(&be, &lod.gradient().unwrap().1).unwrap()
}

/// `(g(w+hu+hv) - g(w+hu-hv) - g(w-hu+hv) + g(w-hu-hv)) / 4h^2`: error
/// O(h^2) from truncation and O(eps / h^2) from rounding, both about 1e-8
/// at h = 2e-4 for unit directions.
fn second_difference(model: &Model<Cpu>, chunks: &Chunks, u: &[f64], v: &[f64]) -> Vec<f64> {
    let w = theta(model);
    let h = 2e-4;
    let at = |a: f64, b: f64| -> Vec<f64> {
        let p: Vec<f64> = (0..w.len())
            .map(|i| w[i] + a * h * u[i] + b * h * v[i])
            .collect();
        gradient_at(model, chunks, &p)
    };
    let (pp, pm, mp, mm) = (at(1.0, 1.0), at(1.0, -1.0), at(-1.0, 1.0), at(-1.0, -1.0));
    (0..w.len())
        .map(|i| (pp[i] - pm[i] - mp[i] + mm[i]) / (4.0 * h * h))
        .collect()
}

fn unit(rng: &mut Rng, n: usize) -> Vec<f64> {
    let v = randn(rng, n, 1.0);
    let len = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / len).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The models both checks run on: an MLP, a CNN and a transformer block.
fn models() -> [(&'static str, ModelSpec); 3] {
    [
        ("mlp", mlp(3)),
        ("cnn", cnn()),
        ("transformer", transformer()),
    ]
}

#[test]
fn third_derivative_products_match_second_differences_of_gradients() {
    let be = Cpu::f64();
    for (i, (name, spec)) in models().into_iter().enumerate() {
        let (model, chunks) = problem(spec, 1 + i as u64);
        let third = ThirdOnData::new(&be, &model, LossKind::Mse, chunks.clone()).unwrap();
        let n = theta(&model).len();
        let mut rng = Rng::new(20 + i as u64);
        let (u, v) = (unit(&mut rng, n), unit(&mut rng, n));
        let t = third.along(&u, &[v.clone(), u.clone()]).unwrap();
        let fd_uv = second_difference(&model, &chunks, &u, &v);
        let fd_uu = second_difference(&model, &chunks, &u, &u);
        let (e_uv, e_uu) = (max_rel_err(&t[0], &fd_uv), max_rel_err(&t[1], &fd_uu));
        assert!(e_uv < 1e-6, "{name}: T[u, v, .] relative error {e_uv}");
        assert!(e_uu < 1e-6, "{name}: T[u, u, .] relative error {e_uu}");
        // Two chunks: each displaced point runs 2 products (one per v).
        assert_eq!(third.hvps(), 4, "{name}");
    }
}

#[test]
fn third_derivative_products_are_symmetric_in_all_three_slots() {
    let be = Cpu::f64();
    for (i, (name, spec)) in models().into_iter().enumerate() {
        let (model, chunks) = problem(spec, 30 + i as u64);
        let third = ThirdOnData::new(&be, &model, LossKind::Mse, chunks).unwrap();
        let n = theta(&model).len();
        let mut rng = Rng::new(40 + i as u64);
        let (a, b, c) = (unit(&mut rng, n), unit(&mut rng, n), unit(&mut rng, n));
        let abc = dot(&third.along(&a, &[b.clone()]).unwrap()[0], &c);
        let bca = dot(&third.along(&b, &[c.clone()]).unwrap()[0], &a);
        let cab = dot(&third.along(&c, &[a.clone()]).unwrap()[0], &b);
        let scale = abc.abs().max(bca.abs()).max(cab.abs());
        assert!(
            scale > 1e-6,
            "{name}: T[a, b, c] = {abc} is too small to compare"
        );
        for (what, x) in [("T[b, c, a]", bca), ("T[c, a, b]", cab)] {
            let err = (x - abc).abs() / scale;
            assert!(
                err < 1e-7,
                "{name}: {what} = {x} vs T[a, b, c] = {abc} ({err})"
            );
        }
    }
}

#[test]
fn a_quadratic_loss_has_no_third_derivative() {
    let be = Cpu::f64();
    // One dense layer under the squared loss: the loss is quadratic in the
    // weights and biases, so H is constant and T = 0.
    let (model, chunks) = problem(mlp(1), 5);
    let third = ThirdOnData::new(&be, &model, LossKind::Mse, chunks.clone()).unwrap();
    let lod = LossOnData::new(&be, &model, LossKind::Mse, chunks).unwrap();
    let n = theta(&model).len();
    let mut rng = Rng::new(6);
    let (u, v) = (unit(&mut rng, n), unit(&mut rng, n));
    let t = third.along(&u, &[v.clone()]).unwrap();
    let hv = lod.product(&v, lmech::tape::Curvature::Hessian).unwrap();
    let (tn, hn) = (dot(&t[0], &t[0]).sqrt(), dot(&hv, &hv).sqrt());
    assert!(hn > 1e-3, "H v = {hn} should not vanish");
    assert!(tn < 1e-8 * hn, "|T[u, v, .]| = {tn} for |H v| = {hn}");
}

#[test]
fn third_derivative_directions_are_checked() {
    let be = Cpu::f64();
    let (model, chunks) = problem(mlp(2), 7);
    let third = ThirdOnData::new(&be, &model, LossKind::Mse, chunks).unwrap();
    let n = theta(&model).len();
    let zero = vec![0.0; n];
    let err = third.along(&zero, &[vec![1.0; n]]).unwrap_err().to_string();
    assert!(err.contains("norm 0"), "{err}");
    let err = third.along(&vec![1.0; n + 1], &[]).unwrap_err().to_string();
    assert!(err.contains(&format!("{n} entries")), "{err}");
}
