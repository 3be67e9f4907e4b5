//! Ignored positions of sequence labels (PyTorch's `ignore_index`) and the
//! `copy` task. The masked cross-entropy against a hand computation, the
//! kernels' loss on the kept rows alone and the unmasked loss when nothing
//! is ignored; an all-ignored batch (0, not NaN); its gradient and HVP
//! against finite differences, on raw outputs and through a small causal
//! transformer (f64); accuracy over kept positions only; per-sample
//! gradients against gradients taken one example at a time; curvature
//! chunks weighed by their kept positions; the two accuracy paths of the
//! trainer agreeing; and a tiny causal transformer that learns to copy,
//! far above chance.

mod common;

use common::{fd_check, i64_bytes, max_rel_err, npy_bytes, randn, temp_dir, tensor, values};
use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::curvature::{flatten, LossOnData};
use lmech::data::{load, Targets};
use lmech::nn::loss::{labels_correct, LossKind};
use lmech::nn::model::Model;
use lmech::observe::per_sample::{per_sample_gradients, per_sample_norms};
use lmech::rng::Rng;
use lmech::tape::{Curvature, LossHead, Tape};
use lmech::train::{train, RunOptions};
use lmech::{Cpu, Tensor};

const XENT: LossKind = LossKind::CrossEntropy;
const E: usize = 2;
const B: usize = 3;
const T: usize = 4;
const V: usize = 5;

// ------------------------------------------------------- the loss itself

/// Whether position k of the `[B, T]` labels below is ignored.
fn ignored(k: usize) -> bool {
    k % 3 == 1
}

/// Random outputs `[E, B, T*V]` and labels `[B, T]` with every third
/// position ignored, as -1 or PyTorch's -100.
fn masked_batch(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let f = randn(&mut rng, E * B * T * V, 1.5);
    let labels = (0..B * T)
        .map(|k| match (ignored(k), k % 2) {
            (true, 0) => -1.0,
            (true, _) => -100.0,
            _ => rng.below(V) as f64,
        })
        .collect();
    (f, labels)
}

/// Each member's loss and its gradient with respect to `f` (`[E, rows,
/// width]`) against `target`.
fn loss_and_grad(be: &Cpu, f: &[f64], rows: usize, target: &Tensor<Cpu>) -> (Vec<f64>, Vec<f64>) {
    let mut tape = Tape::new(be.clone());
    let fv = tape.leaf(tensor(be, &[E, rows, f.len() / (E * rows)], f), true);
    let l = tape
        .apply(Box::new(LossHead::new(XENT, target.clone())), &[fv])
        .unwrap();
    let g = tape.backward(l, tensor(be, &[E], &[1.0; E])).unwrap();
    (values(be, tape.value(l)), values(be, g.get(fv).unwrap()))
}

#[test]
fn masked_xent_is_the_mean_over_the_kept_positions() {
    let be = Cpu::f64();
    let (f, labels) = masked_batch(1);
    let (got, grad) = loss_and_grad(&be, &f, B, &tensor(&be, &[B, T], &labels));
    let kept = (0..B * T).filter(|&k| !ignored(k)).count();
    for (e, got) in got.iter().enumerate() {
        let mut sum = 0.0;
        for k in (0..B * T).filter(|&k| !ignored(k)) {
            let row = &f[(e * B * T + k) * V..][..V];
            let top = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = top + row.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
            sum += lse - row[labels[k] as usize];
        }
        let want = sum / kept as f64;
        assert!((got - want).abs() < 1e-12, "member {e}: {got} vs {want}");
    }
    for k in (0..E * B * T).filter(|k| ignored(k % (B * T))) {
        assert!(
            grad[k * V..(k + 1) * V].iter().all(|&g| g == 0.0),
            "row {k} is ignored"
        );
    }
}

/// PyTorch's definition: the loss of the kept rows alone, as plain labels.
#[test]
fn masked_xent_is_the_xent_of_the_kept_rows_alone() {
    let be = Cpu::f64();
    let (f, labels) = masked_batch(2);
    let (got, grad) = loss_and_grad(&be, &f, B, &tensor(&be, &[B, T], &labels));
    let keep: Vec<usize> = (0..B * T).filter(|&k| !ignored(k)).collect();
    let rows = |e: usize| {
        keep.iter()
            .flat_map(move |&k| (0..V).map(move |j| (e * B * T + k) * V + j))
    };
    let kept_f: Vec<f64> = (0..E).flat_map(rows).map(|i| f[i]).collect();
    let kept_y: Vec<f64> = keep.iter().map(|&k| labels[k]).collect();
    let (want, want_grad) = loss_and_grad(
        &be,
        &kept_f,
        keep.len(),
        &tensor(&be, &[keep.len()], &kept_y),
    );
    assert!(max_rel_err(&got, &want) < 1e-14, "{got:?} vs {want:?}");
    let got_kept: Vec<f64> = (0..E).flat_map(rows).map(|i| grad[i]).collect();
    assert!(max_rel_err(&got_kept, &want_grad) < 1e-14);
}

#[test]
fn with_nothing_ignored_the_loss_is_the_unmasked_one() {
    let be = Cpu::f64();
    let mut rng = Rng::new(3);
    let f = randn(&mut rng, E * B * T * V, 1.5);
    let labels: Vec<f64> = (0..B * T).map(|_| rng.below(V) as f64).collect();
    let sequence = loss_and_grad(&be, &f, B, &tensor(&be, &[B, T], &labels));
    // The same positions as B*T rows of plain labels: bit for bit.
    let rows = loss_and_grad(&be, &f, B * T, &tensor(&be, &[B * T], &labels));
    assert_eq!(sequence, rows);
    // An example whose every position is ignored changes nothing.
    let mut f_more = Vec::new();
    for e in 0..E {
        f_more.extend(&f[e * B * T * V..(e + 1) * B * T * V]);
        f_more.extend(randn(&mut rng, T * V, 3.0));
    }
    let mut labels_more = labels.clone();
    labels_more.extend([-1.0; T]);
    let (loss, grad) = loss_and_grad(&be, &f_more, B + 1, &tensor(&be, &[B + 1, T], &labels_more));
    assert!(max_rel_err(&loss, &sequence.0) < 1e-14, "{loss:?}");
    for e in 0..E {
        let member = &grad[e * (B + 1) * T * V..(e + 1) * (B + 1) * T * V];
        let want = &sequence.1[e * B * T * V..(e + 1) * B * T * V];
        assert!(max_rel_err(&member[..B * T * V], want) < 1e-14);
        assert!(member[B * T * V..].iter().all(|&g| g == 0.0));
    }
}

#[test]
fn an_all_ignored_batch_has_zero_loss_gradient_and_curvature() {
    let be = Cpu::f64();
    let f = randn(&mut Rng::new(4), E * B * T * V, 1.5);
    let labels = tensor(&be, &[B, T], &[-1.0; B * T]);
    let (loss, grad) = loss_and_grad(&be, &f, B, &labels);
    assert_eq!(loss, vec![0.0; E]);
    assert!(grad.iter().all(|&g| g == 0.0));
    let shape = [E, B, T * V];
    let mut tape = Tape::new(be.clone());
    let fv = tape
        .leaf_with_tangent(tensor(&be, &shape, &f), tensor(&be, &shape, &f), true)
        .unwrap();
    let l = tape
        .apply(Box::new(LossHead::new(XENT, labels)), &[fv])
        .unwrap();
    let (_, dots) = tape
        .backward_with_tangents(
            l,
            tensor(&be, &[E], &[1.0; E]),
            None,
            Curvature::Hessian,
            false,
        )
        .unwrap();
    assert!(values(&be, dots.get(fv).unwrap()).iter().all(|&h| h == 0.0));
}

#[test]
fn masked_xent_gradient_and_hvp_match_finite_differences() {
    let be = Cpu::f64();
    let (f, labels) = masked_batch(5);
    let head = || Box::new(LossHead::new(XENT, tensor(&be, &[B, T], &labels)));
    let err = fd_check(
        &[(vec![E, B, T * V], f.clone(), true)],
        |t, v| t.apply(head(), &[v[0]]),
        6,
    );
    assert!(err < 1e-7, "gradient: {err}");
    let v = randn(&mut Rng::new(7), f.len(), 1.0);
    let shape = [E, B, T * V];
    let mut tape = Tape::new(be.clone());
    let fv = tape
        .leaf_with_tangent(tensor(&be, &shape, &f), tensor(&be, &shape, &v), true)
        .unwrap();
    let l = tape.apply(head(), &[fv]).unwrap();
    let (_, dots) = tape
        .backward_with_tangents(
            l,
            tensor(&be, &[E], &[1.0; E]),
            None,
            Curvature::Hessian,
            false,
        )
        .unwrap();
    let hv = values(&be, dots.get(fv).unwrap());
    let h = 1e-5;
    let at = |s: f64| -> Vec<f64> {
        let shifted: Vec<f64> = f.iter().zip(&v).map(|(a, b)| a + s * b).collect();
        loss_and_grad(&be, &shifted, B, &tensor(&be, &[B, T], &labels)).1
    };
    let fd: Vec<f64> = at(h)
        .iter()
        .zip(at(-h))
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    let err = max_rel_err(&hv, &fd);
    assert!(err < 1e-7, "HVP: {err}");
}

#[test]
fn accuracy_counts_only_the_kept_positions() {
    let be = Cpu::f64();
    // Every position's argmax is class 0.
    let f: Vec<f64> = (0..E * B * T * V)
        .map(|i| if i % V == 0 { 1.0 } else { 0.0 })
        .collect();
    // Kept positions: label 0 (right) at even k, 2 (wrong) at odd k.
    let labels: Vec<f64> = (0..B * T)
        .map(|k| match (ignored(k), k % 2) {
            (true, _) => -1.0,
            (false, 0) => 0.0,
            _ => 2.0,
        })
        .collect();
    let right = (0..B * T).filter(|&k| !ignored(k) && k % 2 == 0).count();
    let got = labels_correct(
        &be,
        &tensor(&be, &[E, B, T * V], &f),
        &tensor(&be, &[B, T], &labels),
    )
    .unwrap();
    assert_eq!(got, vec![right as f64; E]);
}

// ------------------------------------- a causal transformer on the copy task

/// A one-block causal transformer of width 8 on `n` `copy` strings of 3
/// symbols from 4 (inputs of 5 ids: the separator is 4), in f64; `extra`
/// follows the `[data]` table.
fn copy_config(n: usize, extra: &str) -> Config {
    let text = format!(
        "seed = 1\ndtype = \"f64\"\n[model]\narch = \"transformer\"\nvocab = 5\nwidth = 8\n\
         depth = 1\nheads = 2\nmlp_width = 12\nnorm = \"layer\"\nactivation = \"gelu\"\n\
         bias = false\n[data]\nsource = \"copy\"\nlength = 3\nvocab = 4\nn = {n}\n{extra}"
    );
    Config::from_toml_str(&text, &[]).unwrap()
}

/// The model of `copy_config` and its training set as tensors: inputs
/// `[n, 6]` and labels `[n, 6]` (ignored as -1), with example 1 scoring one
/// position fewer and example 2 none, so the examples' kept counts differ.
fn copy_model() -> (Model<Cpu>, Tensor<Cpu>, Tensor<Cpu>, Vec<f64>) {
    let be = Cpu::f64();
    let cfg = copy_config(6, "");
    let split = load(&cfg.data, cfg.data_seed()).unwrap();
    let ds = split.train;
    let Targets::Sequence { y, t, .. } = &ds.y else {
        panic!("copy gives sequence targets");
    };
    let mut labels: Vec<f64> = y.iter().map(|l| l.map_or(-1.0, |c| c as f64)).collect();
    labels[t + 4] = -1.0;
    labels[2 * t..3 * t].fill(-1.0);
    let spec = cfg
        .model
        .spec(
            cfg.data.input_shape(ds.d).unwrap(),
            ds.out_shape(),
            cfg.resolve().unwrap().parametrization,
        )
        .unwrap();
    let m = Model::init(&be, spec, &[9]).unwrap();
    let x = tensor(&be, &[ds.n, ds.d], &ds.x);
    let y = tensor(&be, &[ds.n, *t], &labels);
    (m, x, y, labels)
}

fn params_of(m: &Model<Cpu>) -> Vec<f64> {
    flatten(
        &Cpu::f64(),
        &m.params().into_iter().cloned().collect::<Vec<_>>(),
    )
    .unwrap()
}

fn grad_at(m: &Model<Cpu>, x: &Tensor<Cpu>, y: &Tensor<Cpu>, theta: &[f64]) -> Vec<f64> {
    let be = Cpu::f64();
    let mut m2 = Model::init(&be, m.spec.clone(), &[0]).unwrap();
    let mut at = 0;
    for p in m2.params_mut() {
        let n = p.numel();
        *p = tensor(&be, p.shape(), &theta[at..at + n]);
        at += n;
    }
    flatten(&be, &m2.loss_pass(&be, x, y, XENT, true).unwrap().grads).unwrap()
}

#[test]
fn a_transformers_masked_gradient_and_hvp_match_finite_differences() {
    let be = Cpu::f64();
    let (m, x, y, _) = copy_model();
    let mut inputs = vec![(x.shape().to_vec(), values(&be, &x), false)];
    for p in m.params() {
        inputs.push((p.shape().to_vec(), values(&be, p), true));
    }
    let err = fd_check(
        &inputs,
        |t, v| {
            let f = m.forward_with(t, v[0], &v[1..])?;
            t.apply(Box::new(LossHead::new(XENT, y.clone())), &[f.output])
        },
        10,
    );
    assert!(err < 1e-6, "gradient: {err}");
    let lod = LossOnData::new(&be, &m, XENT, vec![(x.clone(), y.clone())]).unwrap();
    let theta = params_of(&m);
    let v = randn(&mut Rng::new(11), theta.len(), 1.0);
    let hv = lod.product(&v, Curvature::Hessian).unwrap();
    let h = 1e-5;
    let shifted = |s: f64| -> Vec<f64> { theta.iter().zip(&v).map(|(a, b)| a + s * b).collect() };
    let (gp, gm) = (
        grad_at(&m, &x, &y, &shifted(h)),
        grad_at(&m, &x, &y, &shifted(-h)),
    );
    let fd: Vec<f64> = gp
        .iter()
        .zip(&gm)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    let err = max_rel_err(&hv, &fd);
    assert!(err < 1e-6, "HVP: {err}");
}

/// Rows `lo..hi` of a row-major matrix of rows of `width`.
fn row_range(be: &Cpu, v: &[f64], width: usize, lo: usize, hi: usize) -> Tensor<Cpu> {
    tensor(be, &[hi - lo, width], &v[lo * width..hi * width])
}

/// Example i's loss is the sum of its kept positions' losses over the
/// batch's mean kept count K / B, so that the batch loss is the mean of the
/// examples' losses as without ignored positions: its gradient is then
/// B K_i / K times the gradient of the loss on example i alone (the mean
/// over its own K_i kept positions).
#[test]
fn per_sample_gradients_weigh_each_examples_kept_positions() {
    let be = Cpu::f64();
    let (m, x, y, labels) = copy_model();
    let (n, t) = (y.shape()[0], y.shape()[1]);
    let xv = values(&be, &x);
    let kept = |lo: usize, hi: usize| labels[lo * t..hi * t].iter().filter(|&&l| l >= 0.0).count();
    let want: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let pass = m
                .loss_pass(
                    &be,
                    &row_range(&be, &xv, x.shape()[1], i, i + 1),
                    &row_range(&be, &labels, t, i, i + 1),
                    XENT,
                    true,
                )
                .unwrap();
            let factor = (n * kept(i, i + 1)) as f64 / kept(0, n) as f64;
            flatten(&be, &pass.grads)
                .unwrap()
                .iter()
                .map(|g| g * factor)
                .collect()
        })
        .collect();
    assert!(want[1].iter().any(|&g| g != 0.0) && want[2].iter().all(|&g| g == 0.0));
    let full = per_sample_gradients(&be, &m, &x, &y, XENT, 1 << 20).unwrap();
    for (i, (a, b)) in full.iter().zip(&want).enumerate() {
        assert!(max_rel_err(a, b) < 1e-10, "example {i}");
    }
    let norms = per_sample_norms(&be, &m, &x, &y, XENT).unwrap();
    let sq: Vec<f64> = want.iter().map(|g| g.iter().map(|v| v * v).sum()).collect();
    assert!(
        max_rel_err(&norms.total, &sq) < 1e-10,
        "{:?} vs {sq:?}",
        norms.total
    );
    // The batch gradient is the mean of the per-example ones.
    let mean: Vec<f64> = (0..want[0].len())
        .map(|j| want.iter().map(|g| g[j]).sum::<f64>() / n as f64)
        .collect();
    let batch = flatten(&be, &m.loss_pass(&be, &x, &y, XENT, true).unwrap().grads).unwrap();
    assert!(max_rel_err(&batch, &mean) < 1e-10);
}

/// Chunks with different numbers of kept positions add up to the loss of
/// the whole batch: each weighs by its share of the kept positions.
#[test]
fn curvature_chunks_weigh_by_their_kept_positions() {
    let be = Cpu::f64();
    let (m, x, y, labels) = copy_model();
    let (n, d, t) = (x.shape()[0], x.shape()[1], y.shape()[1]);
    let xv = values(&be, &x);
    let whole = LossOnData::new(&be, &m, XENT, vec![(x.clone(), y.clone())]).unwrap();
    let chunks = [(0, 2), (2, 3), (3, n)]
        .iter()
        .map(|&(lo, hi)| {
            (
                row_range(&be, &xv, d, lo, hi),
                row_range(&be, &labels, t, lo, hi),
            )
        })
        .collect();
    let split = LossOnData::new(&be, &m, XENT, chunks).unwrap();
    let (lw, gw) = whole.gradient().unwrap();
    let (ls, gs) = split.gradient().unwrap();
    assert!((lw - ls).abs() < 1e-12 * lw.abs(), "{lw} vs {ls}");
    assert!(max_rel_err(&flatten(&be, &gs).unwrap(), &flatten(&be, &gw).unwrap()) < 1e-12);
    let v = randn(&mut Rng::new(12), whole.dim(), 1.0);
    for mode in [Curvature::Hessian, Curvature::GaussNewton] {
        let err = max_rel_err(
            &split.product(&v, mode).unwrap(),
            &whole.product(&v, mode).unwrap(),
        );
        assert!(err < 1e-12, "{mode:?}: {err}");
    }
}

// --------------------------------------------------------------- training

fn run(cfg: &Config, name: &str) -> lmech::train::RunReport {
    let dir = temp_dir(name);
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Cpu,
        progress: false,
    };
    train(cfg, &opts).unwrap()
}

/// At the initial weights the full-batch step's loss and accuracy (taken
/// from the training pass) are the evaluation's over mini-batch chunks.
#[test]
fn full_batch_and_evaluated_metrics_agree_with_ignored_positions() {
    let extra = "[train]\nsteps = 0\nloss = \"xent\"\n";
    let full = run(&copy_config(40, extra), "copy-full");
    let minis = run(
        &copy_config(40, &format!("{extra}batch_size = 8\n")),
        "copy-minis",
    );
    let (a, b) = (&full.final_metrics, &minis.final_metrics);
    assert!(
        (a["loss"] - b["train_loss"]).abs() < 1e-12,
        "{a:?} vs {b:?}"
    );
    assert!(
        (a["train_acc"] - b["train_acc"]).abs() < 1e-12,
        "{a:?} vs {b:?}"
    );
    assert!(a["loss"].is_finite() && a["loss"] > 0.0);
}

/// The evaluation goes over a data set in chunks of 4096 examples, each
/// chunk's loss a mean over its own kept positions: they must weigh by
/// their kept positions to give the loss over the whole set, which is the
/// one loss of the full-batch training pass on the same set.
#[test]
fn evaluation_chunks_weigh_by_their_kept_positions() {
    let dir = temp_dir("tokens-chunks");
    let (n, t) = (4100, 3);
    let x: Vec<i64> = (0..n * t).map(|k| (k * 7 % 3) as i64).collect();
    // The first 4096 examples keep one position in three, the last four
    // keep them all.
    let y: Vec<i64> = (0..n * t)
        .map(|k| {
            if k >= 4096 * t || k % 3 == 0 {
                (k % 3) as i64
            } else {
                -1
            }
        })
        .collect();
    for (name, v) in [("x.npy", &x), ("y.npy", &y)] {
        std::fs::write(dir.join(name), npy_bytes("<i8", &[n, t], &i64_bytes(v))).unwrap();
    }
    let text = format!(
        "seed = 2\ndtype = \"f64\"\n[[model.layers]]\nkind = \"embedding\"\nvocab = 3\nwidth = 2\n\
         [[model.layers]]\nkind = \"conv1d\"\nchannels = 3\nkernel = 1\n\
         [data]\nsource = \"tokens\"\nvocab = 3\nx_path = {x:?}\ny_path = {y:?}\n\
         test_x_path = {x:?}\ntest_y_path = {y:?}\n[train]\nsteps = 0\nloss = \"xent\"\n",
        x = dir.join("x.npy"),
        y = dir.join("y.npy"),
    );
    let report = run(
        &Config::from_toml_str(&text, &[]).unwrap(),
        "tokens-chunks-run",
    );
    let m = &report.final_metrics;
    assert!(
        (m["loss"] - m["test_loss"]).abs() < 1e-12 * m["loss"],
        "{m:?}"
    );
    assert!((m["train_acc"] - m["test_acc"]).abs() < 1e-12, "{m:?}");
}

#[test]
fn an_embedding_without_the_separator_is_refused_naming_the_vocab() {
    let mut cfg = copy_config(6, "");
    cfg.model.vocab = Some(4);
    let dir = temp_dir("copy-vocab");
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Cpu,
        progress: false,
    };
    let e = train(&cfg, &opts).unwrap_err().to_string();
    for part in ["model.vocab", "token id 4", "separator", "a vocab of 5"] {
        assert!(e.contains(part), "{part:?} missing: {e}");
    }
    assert!(!dir.join("run").exists(), "a run directory was made: {e}");
}

/// A two-block causal transformer learns to copy strings of 6 symbols
/// from 8 in a few hundred Adam steps: chance is 1/8 on the scored
/// positions, and it ends far above it on fresh test strings.
#[test]
fn a_tiny_causal_transformer_learns_to_copy() {
    let text = include_str!("../examples/copy.toml");
    let cfg = Config::from_toml_str(text, &[]).unwrap();
    let report = run(&cfg, "copy-train");
    let acc: Vec<f64> = report
        .records
        .iter()
        .filter_map(|r| r.get("test_acc")?.as_f64())
        .collect();
    let (first, last) = (acc[0], *acc.last().unwrap());
    assert!(
        first < 0.3,
        "at init the test accuracy is near chance: {acc:?}"
    );
    assert!(last > 0.9, "the copy is learned: {acc:?}");
    let m = &report.final_metrics;
    assert!(m["test_loss"] < 0.5, "{m:?}");
    // Accuracies are fractions of the kept positions, never above 1.
    assert!(m["train_acc"] > 0.9 && m["train_acc"] <= 1.0, "{m:?}");
    assert!(acc.iter().all(|a| (0.0..=1.0).contains(a)), "{acc:?}");
}
