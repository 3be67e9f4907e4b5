//! Per-sample gradient norms, full per-sample gradients, noise statistics
//! and the empirical NTK against their definitions, computed the slow way:
//! one backward pass per example (and per output) with explicit Jacobians.

mod common;

use common::{max_rel_err, randn, tensor, values};
use lmech::curvature::flatten;
use lmech::nn::activation::Activation;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::{per_sample_gradients, per_sample_norms};
use lmech::rng::Rng;
use lmech::tape::Tape;
use lmech::{Cpu, Tensor};

fn model(p: Parametrization, bias: bool, seed: u64) -> Model<Cpu> {
    let mut spec = MlpSpec::new(4, 7, 3, 3, Activation::Tanh);
    spec.parametrization = p;
    spec.bias = bias;
    spec.base_width = 5;
    let be = Cpu::f64();
    let mut m = Model::init(&be, spec, &[seed]).unwrap();
    let mut rng = Rng::new(seed);
    for t in m.params_mut() {
        let v: Vec<f64> = values(&be, t)
            .iter()
            .map(|x| x + 0.2 * rng.normal())
            .collect();
        *t = tensor(&be, t.shape(), &v);
    }
    m
}

/// Example i's own loss gradient, by a batch of one.
fn example_gradient(m: &Model<Cpu>, x: &[f64], y: &[f64], i: usize, kind: LossKind) -> Vec<f64> {
    let be = Cpu::f64();
    let xi = tensor(&be, &[1, 4], &x[i * 4..(i + 1) * 4]);
    let yi = match kind {
        LossKind::CrossEntropy => tensor(&be, &[1], &y[i..i + 1]),
        _ => tensor(&be, &[1, 3], &y[i * 3..(i + 1) * 3]),
    };
    flatten(&be, &m.loss_pass(&be, &xi, &yi, kind, true).unwrap().grads).unwrap()
}

#[test]
fn per_sample_norms_and_gradients_match_one_example_at_a_time() {
    let be = Cpu::f64();
    let n = 6;
    for (i, (p, bias, kind)) in [
        (Parametrization::Standard, true, LossKind::CrossEntropy),
        (Parametrization::Ntk, true, LossKind::Mse),
        (Parametrization::MeanField, false, LossKind::MseMean),
    ]
    .into_iter()
    .enumerate()
    {
        let m = model(p, bias, 10 + i as u64);
        let mut rng = Rng::new(i as u64);
        let x = randn(&mut rng, n * 4, 1.0);
        let (y, tshape) = match kind {
            LossKind::CrossEntropy => ((0..n).map(|j| (j % 3) as f64).collect::<Vec<_>>(), vec![n]),
            _ => (randn(&mut rng, n * 3, 1.0), vec![n, 3]),
        };
        let (xt, yt) = (tensor(&be, &[n, 4], &x), tensor(&be, &tshape, &y));
        let norms = per_sample_norms(&be, &m, &xt, &yt, kind).unwrap();
        let full = per_sample_gradients(&be, &m, &xt, &yt, kind, 1 << 20).unwrap();
        let slow: Vec<Vec<f64>> = (0..n)
            .map(|j| example_gradient(&m, &x, &y, j, kind))
            .collect();
        let slow_norms: Vec<f64> = slow.iter().map(|g| g.iter().map(|v| v * v).sum()).collect();
        assert!(
            max_rel_err(&norms.total, &slow_norms) < 1e-12,
            "{p:?} norms"
        );
        for (a, b) in full.iter().zip(&slow) {
            assert!(max_rel_err(a, b) < 1e-12, "{p:?} gradients");
        }
        // Layer norms add up to the total.
        let sum: Vec<f64> = (0..n)
            .map(|j| norms.per_layer.iter().map(|l| l[j]).sum())
            .collect();
        assert!(max_rel_err(&sum, &norms.total) < 1e-14);
        // Noise statistics from the definitions.
        let mean: Vec<f64> = (0..slow[0].len())
            .map(|q| slow.iter().map(|g| g[q]).sum::<f64>() / n as f64)
            .collect();
        let mean_sq: f64 = mean.iter().map(|v| v * v).sum();
        let var: f64 = slow
            .iter()
            .map(|g| {
                g.iter()
                    .zip(&mean)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / (n - 1) as f64;
        assert!((norms.mean_grad_sq - mean_sq).abs() < 1e-12 * mean_sq);
        assert!(
            (norms.variance() - var).abs() < 1e-10 * var,
            "{} vs {var}",
            norms.variance()
        );
        assert!((norms.noise_scale() - var / mean_sq).abs() < 1e-9 * var / mean_sq);
    }
}

#[test]
fn full_per_sample_gradients_are_refused_past_the_limit() {
    let be = Cpu::f64();
    let m = model(Parametrization::Standard, true, 1);
    let x = tensor(&be, &[5, 4], &[0.1; 20]);
    let y = tensor(&be, &[5], &[0.0, 1.0, 2.0, 0.0, 1.0]);
    let err = per_sample_gradients(&be, &m, &x, &y, LossKind::CrossEntropy, 100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("per-sample norms"), "{err}");
}

/// d f_k(x_i) / d theta for every (i, k), by one backward pass each.
fn jacobian(m: &Model<Cpu>, x: &Tensor<Cpu>, n: usize) -> Vec<Vec<Vec<f64>>> {
    let be = Cpu::f64();
    let mut tape = Tape::new(be.clone());
    let xv = tape.leaf(x.clone(), false);
    let vars = m.forward(&mut tape, xv, true).unwrap();
    (0..3)
        .map(|k| {
            (0..n)
                .map(|i| {
                    let mut seed = vec![0.0; n * 3];
                    seed[i * 3 + k] = 1.0;
                    let g = tape
                        .backward(vars.output, tensor(&be, &[1, n, 3], &seed))
                        .unwrap();
                    let ts: Vec<Tensor<Cpu>> = vars
                        .params
                        .iter()
                        .map(|v| g.get(*v).unwrap().clone())
                        .collect();
                    flatten(&be, &ts).unwrap()
                })
                .collect()
        })
        .collect()
}

#[test]
fn empirical_ntk_matches_explicit_jacobians() {
    let be = Cpu::f64();
    let n = 5;
    for (i, (p, bias)) in [
        (Parametrization::Standard, true),
        (Parametrization::Ntk, false),
        (Parametrization::Mup, true),
    ]
    .into_iter()
    .enumerate()
    {
        let m = model(p, bias, 20 + i as u64);
        let mut rng = Rng::new(30 + i as u64);
        let x = tensor(&be, &[n, 4], &randn(&mut rng, n * 4, 1.0));
        let ntk = empirical_ntk(&be, &m, &x).unwrap();
        let j = jacobian(&m, &x, n);
        let mut trace = vec![0.0; n * n];
        for (k, jk) in j.iter().enumerate() {
            let mut want = vec![0.0; n * n];
            for a in 0..n {
                for b in 0..n {
                    want[a * n + b] = jk[a].iter().zip(&jk[b]).map(|(u, v)| u * v).sum();
                }
            }
            assert!(
                max_rel_err(&ntk.per_output[k], &want) < 1e-12,
                "{p:?} output {k}"
            );
            for (t, w) in trace.iter_mut().zip(&want) {
                *t += w;
            }
        }
        assert!(max_rel_err(&ntk.trace, &trace) < 1e-12);
        assert_eq!(ntk.relative_change(&ntk).unwrap(), 0.0);
    }
}
