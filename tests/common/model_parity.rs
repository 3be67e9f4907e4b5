//! Whole layer-graph models on a GPU backend against the CPU f32 reference:
//! a CNN with pooling and LayerNorm, a ResNet with RMSNorm and a projected
//! skip, a BatchNorm CNN, a 1-D CNN, a pre-norm transformer block with
//! causal attention and a token transformer (embedding, learned positions,
//! the last position read out), each with the same weights on both.
//! Compared: a training step's loss and gradients, five GD steps (running
//! statistics included), evaluation, a Hessian-vector product, the top
//! Hessian eigenvalues by Lanczos, per-sample gradient norms and the NTK
//! (not for BatchNorm, which refuses them); and a token transformer read
//! out at every position under a loss with ignored positions. Shared by
//! the wgpu and CUDA parity tests. Tolerances are f32 rounding over different summation
//! orders: 1e-4 relative for gradients, HVPs, norms and NTKs, 1e-3 for
//! eigenvalues.

use super::{max_rel_err, randn};
use lmech::curvature::{flatten, LossOnData};
use lmech::linalg::{lanczos, LanczosOptions};
use lmech::nn::graph::ModelSpec;
use lmech::nn::layer_spec::LayerSpec;
use lmech::nn::loss::{labels_correct, LossKind};
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::shape::Shape;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::per_sample_norms;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::tape::Curvature;
use lmech::{Backend, Cpu, Tensor};

/// A biased square 2-D convolution layer spec.
pub fn conv(
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    act: Option<&str>,
) -> LayerSpec {
    LayerSpec::Conv2d {
        channels,
        kernel,
        stride,
        padding,
        bias: true,
        activation: act.map(String::from),
    }
}

fn act(a: &str) -> LayerSpec {
    LayerSpec::Activation {
        activation: a.into(),
    }
}

/// (name, spec, whether the model has BatchNorm).
pub fn specs() -> Vec<(&'static str, ModelSpec, bool)> {
    let img = Shape::Image { c: 3, h: 8, w: 8 };
    let spec = |input, layers| ModelSpec {
        input,
        layers,
        parametrization: Parametrization::Mup,
        width: 6,
        base_width: 3,
    };
    let cnn = vec![
        conv(6, 3, 1, 1, Some("relu")),
        LayerSpec::MaxPool {
            kernel: 2,
            stride: None,
        },
        conv(8, 3, 1, 1, None),
        LayerSpec::LayerNorm {
            gain: true,
            bias: true,
            eps: 1e-5,
        },
        act("tanh"),
        LayerSpec::AvgPool {
            kernel: 2,
            stride: None,
            padding: 0,
        },
        LayerSpec::Flatten,
        LayerSpec::Dense {
            width: 4,
            bias: true,
            activation: None,
        },
    ];
    let block = |c: usize, stride: usize| LayerSpec::Residual {
        layers: vec![
            conv(c, 3, stride, 1, None),
            LayerSpec::RmsNorm {
                gain: true,
                bias: false,
                eps: 1e-5,
            },
            act("gelu"),
            conv(c, 3, 1, 1, None),
        ],
        projection: false,
        activation: Some("relu".into()),
    };
    let resnet = vec![
        conv(4, 3, 1, 1, Some("relu")),
        block(4, 1),
        block(6, 2),
        LayerSpec::GlobalAvgPool,
        LayerSpec::Dense {
            width: 4,
            bias: true,
            activation: None,
        },
    ];
    let bn = LayerSpec::BatchNorm {
        gain: true,
        bias: true,
        eps: 1e-5,
        momentum: 0.1,
    };
    let bn_cnn = vec![
        LayerSpec::Conv2d {
            channels: 6,
            kernel: 3,
            stride: 2,
            padding: 1,
            bias: false,
            activation: None,
        },
        bn,
        act("silu"),
        LayerSpec::Flatten,
        LayerSpec::Dense {
            width: 4,
            bias: true,
            activation: None,
        },
    ];
    let conv1d = vec![
        LayerSpec::Conv1d {
            channels: 5,
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            activation: Some("elu".into()),
        },
        LayerSpec::MaxPool {
            kernel: 2,
            stride: None,
        },
        LayerSpec::Flatten,
        LayerSpec::Dense {
            width: 4,
            bias: true,
            activation: None,
        },
    ];
    let transformer = vec![
        LayerSpec::Conv1d {
            channels: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            activation: Some("tanh".into()),
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
            width: 4,
            bias: true,
            activation: None,
        },
    ];
    // Tokens: embedding, learned positions, the attention block, the last
    // position, readout.
    let mut tokens = vec![
        LayerSpec::Embedding {
            vocab: 11,
            width: 4,
        },
        LayerSpec::PositionEmbedding,
    ];
    tokens.push(transformer[1].clone());
    tokens.push(LayerSpec::PickPosition { index: -1 });
    tokens.push(transformer[3].clone());
    // The same, read out through the embedding's weight (logits over the
    // 11 tokens; the labels are 0..4).
    let mut tied = tokens.clone();
    tied.pop();
    tied.push(LayerSpec::Unembedding {
        tied: true,
        bias: false,
    });
    vec![
        ("cnn", spec(img, cnn), false),
        ("resnet", spec(img, resnet), false),
        ("batchnorm cnn", spec(img, bn_cnn), true),
        ("conv1d", spec(Shape::Signal { c: 3, l: 12 }, conv1d), false),
        (
            "transformer",
            spec(Shape::Signal { c: 3, l: 12 }, transformer),
            false,
        ),
        ("token transformer", spec(Shape::Flat(6), tokens), false),
        ("tied unembedding", spec(Shape::Flat(6), tied), false),
    ]
}

fn up<B: Backend>(be: &B, shape: &[usize], v: &[f64]) -> Tensor<B> {
    be.from_f64(shape, v).unwrap()
}

fn params<B: Backend>(be: &B, m: &Model<B>) -> Vec<f64> {
    flatten(be, &m.params().into_iter().cloned().collect::<Vec<_>>()).unwrap()
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let err = max_rel_err(got, want);
    assert!(err < tol, "{what}: relative error {err} over {tol}");
}

/// Everything above for every model of `specs`, on `g` against the CPU.
pub fn models_track_cpu<B: Backend>(g: &B) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(5);
    for (name, spec, batch_norm) in specs() {
        let n = 16;
        let d = spec.input.features();
        let x = match spec.layers[0] {
            LayerSpec::Embedding { vocab, .. } => {
                (0..n * d).map(|_| rng.below(vocab) as f64).collect()
            }
            _ => randn(&mut rng, n * d, 1.0),
        };
        let y: Vec<f64> = (0..n).map(|i| (i % 4) as f64).collect();
        let (xc, xg) = (up(&cpu, &[n, d], &x), up(g, &[n, d], &x));
        let (yc, yg) = (up(&cpu, &[n], &y), up(g, &[n], &y));
        let mut mc = Model::init(&cpu, spec.clone(), &[3]).unwrap();
        let mut mg = Model::init(g, spec.clone(), &[3]).unwrap();
        let kind = LossKind::CrossEntropy;
        let (pc, pg) = (
            mc.loss_pass(&cpu, &xc, &yc, kind, true).unwrap(),
            mg.loss_pass(g, &xg, &yg, kind, true).unwrap(),
        );
        close(
            &format!("{name} loss"),
            &g.to_f64(&pg.loss).unwrap(),
            &cpu.to_f64(&pc.loss).unwrap(),
            1e-5,
        );
        close(
            &format!("{name} gradient"),
            &flatten(g, &pg.grads).unwrap(),
            &flatten(&cpu, &pc.grads).unwrap(),
            1e-4,
        );
        train_five_steps(g, (&mut mc, &mut mg), (&xc, &xg), (&yc, &yg), name);
        let (ec, eg) = (mc.predict(&cpu, &xc).unwrap(), mg.predict(g, &xg).unwrap());
        close(
            &format!("{name} evaluation"),
            &g.to_f64(&eg).unwrap(),
            &cpu.to_f64(&ec).unwrap(),
            1e-4,
        );
        curvature_tracks_cpu(g, (&mc, &mg), (&xc, &xg), (&yc, &yg), name);
        if batch_norm {
            assert!(per_sample_norms(g, &mg, &xg, &yg, kind).is_err());
            continue;
        }
        let (nc, ng) = (
            per_sample_norms(&cpu, &mc, &xc, &yc, kind).unwrap(),
            per_sample_norms(g, &mg, &xg, &yg, kind).unwrap(),
        );
        close(
            &format!("{name} per-sample norms"),
            &ng.total,
            &nc.total,
            1e-4,
        );
        let (kc, kg) = (
            empirical_ntk(&cpu, &mc, &xc).unwrap(),
            empirical_ntk(g, &mg, &xg).unwrap(),
        );
        close(&format!("{name} NTK"), &kg.trace, &kc.trace, 1e-4);
    }
}

fn train_five_steps<B: Backend>(
    g: &B,
    (mc, mg): (&mut Model<Cpu>, &mut Model<B>),
    (xc, xg): (&Tensor<Cpu>, &Tensor<B>),
    (yc, yg): (&Tensor<Cpu>, &Tensor<B>),
    name: &str,
) {
    let cpu = Cpu::f32();
    let hyper = OptimHyper::new(OptimizerKind::Gd);
    let scales = vec![1.0; mc.params().len()];
    let mut oc = Optimizer::new(
        &cpu,
        hyper.clone(),
        Schedule::Constant,
        vec![0.1],
        &mc.params(),
        scales.clone(),
    )
    .unwrap();
    let mut og = Optimizer::new(
        g,
        hyper,
        Schedule::Constant,
        vec![0.1],
        &mg.params(),
        scales,
    )
    .unwrap();
    let start = params(&cpu, mc);
    for _ in 0..5 {
        let pc = mc
            .loss_pass(&cpu, xc, yc, LossKind::CrossEntropy, true)
            .unwrap();
        let pg = mg
            .loss_pass(g, xg, yg, LossKind::CrossEntropy, true)
            .unwrap();
        mc.track_batch_stats(&cpu, &pc.batch_stats).unwrap();
        mg.track_batch_stats(g, &pg.batch_stats).unwrap();
        oc.step(&cpu, mc.params_mut(), &pc.grads).unwrap();
        og.step(g, mg.params_mut(), &pg.grads).unwrap();
    }
    close(
        &format!("{name} parameters after 5 steps"),
        &params(g, mg),
        &params(&cpu, mc),
        1e-4,
    );
    assert!(
        max_rel_err(&params(&cpu, mc), &start) > 1e-4,
        "{name}: the model did not move"
    );
}

fn curvature_tracks_cpu<B: Backend>(
    g: &B,
    (mc, mg): (&Model<Cpu>, &Model<B>),
    (xc, xg): (&Tensor<Cpu>, &Tensor<B>),
    (yc, yg): (&Tensor<Cpu>, &Tensor<B>),
    name: &str,
) {
    let cpu = Cpu::f32();
    let kind = LossKind::CrossEntropy;
    let lc = LossOnData::new(&cpu, mc, kind, vec![(xc.clone(), yc.clone())]).unwrap();
    let lg = LossOnData::new(g, mg, kind, vec![(xg.clone(), yg.clone())]).unwrap();
    let mut rng = Rng::new(11);
    let v = randn(&mut rng, lc.dim(), 1.0);
    for mode in [Curvature::Hessian, Curvature::GaussNewton] {
        close(
            &format!("{name} {mode:?} product"),
            &lg.product(&v, mode).unwrap(),
            &lc.product(&v, mode).unwrap(),
            1e-4,
        );
    }
    let opts = LanczosOptions {
        k: 2,
        max_iter: 80,
        tol: 1e-4,
        seed: 1,
        start: None,
    };
    let mut op = |v: &[f64]| lc.product(v, Curvature::Hessian);
    let want = lanczos(lc.dim(), &mut op, &opts).unwrap();
    let mut op = |v: &[f64]| lg.product(v, Curvature::Hessian);
    let got = lanczos(lg.dim(), &mut op, &opts).unwrap();
    close(
        &format!("{name} top Hessian eigenvalues"),
        &got.values,
        &want.values,
        1e-3,
    );
}

/// A causal token transformer with a readout at every position, trained
/// on labels `[n, T]` with ignored positions (one example with none kept):
/// on `g` against the CPU, the masked loss and its gradient, a Hessian
/// product, per-sample gradient norms and the kept positions counted right.
/// The mask is built above the kernels, so this checks that the kernels
/// give the replaced rows exactly nothing.
pub fn masked_sequences_track_cpu<B: Backend>(g: &B) {
    let cpu = Cpu::f32();
    let (n, t, vocab, classes) = (8, 6, 11, 5);
    let token = specs()
        .into_iter()
        .find(|(name, ..)| *name == "token transformer")
        .expect("the token transformer spec")
        .1;
    let mut layers = token.layers[..3].to_vec();
    layers.push(LayerSpec::Conv1d {
        channels: classes,
        kernel: 1,
        stride: 1,
        padding: 0,
        bias: true,
        activation: None,
    });
    let spec = ModelSpec {
        input: Shape::Flat(t),
        layers,
        ..token
    };
    let mut rng = Rng::new(21);
    let x: Vec<f64> = (0..n * t).map(|_| rng.below(vocab) as f64).collect();
    let y: Vec<f64> = (0..n * t)
        .map(|k| {
            if k % t < 2 || k / t == 3 || k % 5 == 0 {
                -1.0
            } else {
                rng.below(classes) as f64
            }
        })
        .collect();
    let (xc, xg) = (up(&cpu, &[n, t], &x), up(g, &[n, t], &x));
    let (yc, yg) = (up(&cpu, &[n, t], &y), up(g, &[n, t], &y));
    let mc = Model::init(&cpu, spec.clone(), &[4]).unwrap();
    let mg = Model::init(g, spec, &[4]).unwrap();
    let kind = LossKind::CrossEntropy;
    let (pc, pg) = (
        mc.loss_pass(&cpu, &xc, &yc, kind, true).unwrap(),
        mg.loss_pass(g, &xg, &yg, kind, true).unwrap(),
    );
    let name = "masked token transformer";
    close(
        &format!("{name} loss"),
        &g.to_f64(&pg.loss).unwrap(),
        &cpu.to_f64(&pc.loss).unwrap(),
        1e-5,
    );
    close(
        &format!("{name} gradient"),
        &flatten(g, &pg.grads).unwrap(),
        &flatten(&cpu, &pc.grads).unwrap(),
        1e-4,
    );
    assert_eq!(
        labels_correct(g, &pg.output, &yg).unwrap(),
        labels_correct(&cpu, &pc.output, &yc).unwrap(),
        "{name}: kept positions right"
    );
    let lc = LossOnData::new(&cpu, &mc, kind, vec![(xc.clone(), yc.clone())]).unwrap();
    let lg = LossOnData::new(g, &mg, kind, vec![(xg.clone(), yg.clone())]).unwrap();
    let v = randn(&mut rng, lc.dim(), 1.0);
    close(
        &format!("{name} Hessian product"),
        &lg.product(&v, Curvature::Hessian).unwrap(),
        &lc.product(&v, Curvature::Hessian).unwrap(),
        1e-4,
    );
    let (nc, ng) = (
        per_sample_norms(&cpu, &mc, &xc, &yc, kind).unwrap(),
        per_sample_norms(g, &mg, &xg, &yg, kind).unwrap(),
    );
    close(
        &format!("{name} per-sample norms"),
        &ng.total,
        &nc.total,
        1e-4,
    );
    assert_eq!(nc.total[3], 0.0, "{name}: an example with nothing kept");
}
