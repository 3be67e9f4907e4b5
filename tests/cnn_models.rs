//! Convolutional networks, ResNets and sequence models with self-attention
//! (on signals, and on token ids through an embedding, learned positions
//! and the last position) built from the layer graph, on the CPU in f64: whole-model gradients under every parametrization and HVPs
//! against finite differences, per-sample gradient norms (ghost and
//! materialized) and the NTK against per-example gradients taken one
//! example at a time, checkpoints that round-trip, and the config errors a
//! misfit layer gives.

mod common;

use common::model_parity::conv;
use common::{fd_check, max_rel_err, randn, tensor, values};
use lmech::config::Config;
use lmech::curvature::{flatten, LossOnData};
use lmech::nn::graph::ModelSpec;
use lmech::nn::layer_spec::LayerSpec;
use lmech::nn::loss::LossKind;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::shape::Shape;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::{per_sample_gradients, per_sample_norms};
use lmech::observe::sites::Method;
use lmech::rng::Rng;
use lmech::tape::{Curvature, LossHead, Tape};
use lmech::{Backend, Cpu, Tensor};

const OUT: usize = 3;

/// A CNN on 2x6x6 images with every layer kind but residuals: conv, max
/// pool, conv + LayerNorm, average pool, flatten, dense.
fn cnn_layers() -> Vec<LayerSpec> {
    vec![
        conv(3, 3, 1, 1, Some("tanh")),
        LayerSpec::MaxPool {
            kernel: 2,
            stride: None,
        },
        conv(8, 2, 1, 0, None),
        LayerSpec::LayerNorm {
            gain: true,
            bias: true,
            eps: 1e-5,
        },
        LayerSpec::Activation {
            activation: "gelu".into(),
        },
        LayerSpec::AvgPool {
            kernel: 2,
            stride: Some(1),
            padding: 0,
        },
        LayerSpec::Flatten,
        LayerSpec::Dense {
            width: OUT,
            bias: true,
            activation: None,
        },
    ]
}

/// A small ResNet: stem, an identity block with RMSNorm, a strided block
/// with a projection, global average pooling, readout.
fn resnet_layers() -> Vec<LayerSpec> {
    let block = |c: usize, stride: usize| LayerSpec::Residual {
        layers: vec![
            conv(c, 3, stride, 1, None),
            LayerSpec::RmsNorm {
                gain: true,
                bias: true,
                eps: 1e-5,
            },
            LayerSpec::Activation {
                activation: "relu".into(),
            },
            conv(c, 3, 1, 1, None),
        ],
        projection: false,
        activation: Some("silu".into()),
    };
    vec![
        conv(3, 3, 1, 1, Some("tanh")),
        block(3, 1),
        block(4, 2),
        LayerSpec::GlobalAvgPool,
        LayerSpec::Dense {
            width: OUT,
            bias: true,
            activation: None,
        },
    ]
}

/// A 1-D CNN on 2x9 signals.
fn conv1d_layers() -> Vec<LayerSpec> {
    vec![
        LayerSpec::Conv1d {
            channels: 4,
            kernel: 3,
            stride: 2,
            padding: 1,
            bias: true,
            activation: Some("elu".into()),
        },
        LayerSpec::AvgPool {
            kernel: 2,
            stride: None,
            padding: 0,
        },
        LayerSpec::Flatten,
        LayerSpec::Dense {
            width: OUT,
            bias: false,
            activation: None,
        },
    ]
}

fn attention(heads: usize, head_dim: Option<usize>, causal: bool, bias: bool) -> LayerSpec {
    LayerSpec::Attention {
        heads,
        head_dim,
        causal,
        bias,
    }
}

fn layer_norm() -> LayerSpec {
    LayerSpec::LayerNorm {
        gain: true,
        bias: true,
        eps: 1e-5,
    }
}

/// A pre-norm transformer block on 2x9 signals (9 positions): a conv1d
/// embedding into 4 channels, a residual causal 2-head attention, a
/// residual MLP of 1x1 convolutions, mean over positions, readout.
fn transformer_layers() -> Vec<LayerSpec> {
    let c1 = |c: usize, act: Option<&str>| LayerSpec::Conv1d {
        channels: c,
        kernel: 1,
        stride: 1,
        padding: 0,
        bias: true,
        activation: act.map(String::from),
    };
    vec![
        LayerSpec::Conv1d {
            channels: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            activation: Some("tanh".into()),
        },
        LayerSpec::Residual {
            layers: vec![layer_norm(), attention(2, None, true, false)],
            projection: false,
            activation: None,
        },
        LayerSpec::Residual {
            layers: vec![layer_norm(), c1(6, Some("gelu")), c1(4, None)],
            projection: false,
            activation: None,
        },
        LayerSpec::GlobalAvgPool,
        LayerSpec::Dense {
            width: OUT,
            bias: true,
            activation: None,
        },
    ]
}

/// Attention as the first layer, on the data itself: one non-causal head
/// of dimension 3 (wider than the 2 channels), with biases.
fn attention_first_layers() -> Vec<LayerSpec> {
    vec![
        attention(1, Some(3), false, true),
        LayerSpec::Flatten,
        LayerSpec::Dense {
            width: OUT,
            bias: true,
            activation: None,
        },
    ]
}

const VOCAB: usize = 7;

/// A token transformer on 5 ids from a vocabulary of 7: embedding into 4
/// channels, learned positions, a residual causal 2-head attention, a
/// residual MLP of 1x1 convolutions, the last position, readout.
fn token_transformer_layers() -> Vec<LayerSpec> {
    let mut layers = vec![
        LayerSpec::Embedding {
            vocab: VOCAB,
            width: 4,
        },
        LayerSpec::PositionEmbedding,
    ];
    let blocks = &transformer_layers()[1..3];
    layers.extend(blocks.iter().cloned());
    layers.push(LayerSpec::PickPosition { index: -1 });
    layers.push(LayerSpec::Dense {
        width: OUT,
        bias: true,
        activation: None,
    });
    layers
}

/// The token transformer read out through the vocabulary at the last
/// position: by the embedding's own weight (`tied`), or by a weight of its
/// own with a bias.
fn unembedding_transformer_layers(tied: bool) -> Vec<LayerSpec> {
    let mut layers = token_transformer_layers();
    layers.pop();
    layers.push(LayerSpec::Unembedding { tied, bias: !tied });
    layers
}

fn spec(layers: Vec<LayerSpec>, input: Shape, p: Parametrization) -> ModelSpec {
    ModelSpec {
        input,
        layers,
        parametrization: p,
        width: 4,
        base_width: 2,
    }
}

fn models() -> Vec<(&'static str, ModelSpec)> {
    let img = Shape::Image { c: 2, h: 6, w: 6 };
    let sig = Shape::Signal { c: 2, l: 9 };
    let mut out = Vec::new();
    for p in [
        Parametrization::Standard,
        Parametrization::Ntk,
        Parametrization::Mup,
        Parametrization::MeanField,
    ] {
        out.push(("cnn", spec(cnn_layers(), img, p)));
        out.push(("resnet", spec(resnet_layers(), img, p)));
        out.push(("conv1d", spec(conv1d_layers(), sig, p)));
        out.push(("transformer", spec(transformer_layers(), sig, p)));
        out.push(("attention first", spec(attention_first_layers(), sig, p)));
        let tokens = Shape::Flat(5);
        out.push((
            "token transformer",
            spec(token_transformer_layers(), tokens, p),
        ));
        for (name, tied) in [("tied unembedding", true), ("unembedding", false)] {
            out.push((name, spec(unembedding_transformer_layers(tied), tokens, p)));
        }
    }
    out
}

/// How many models `models` gives for each parametrization (the tests that
/// need no parametrization sweep take the first ones).
const PER_PARAMETRIZATION: usize = 8;

fn batch(s: &ModelSpec, n: usize, seed: u64) -> (Tensor<Cpu>, Tensor<Cpu>) {
    let be = Cpu::f64();
    let mut rng = Rng::new(seed);
    let d = s.input.features();
    let x = match s.layers[0] {
        // Token ids, with repeats within an example (equal tokens share
        // their embedding row: the input Gram's off-diagonal ones).
        LayerSpec::Embedding { vocab, .. } => {
            let ids: Vec<f64> = (0..n * d).map(|_| rng.below(vocab) as f64).collect();
            tensor(&be, &[n, d], &ids)
        }
        _ => tensor(&be, &[n, d], &randn(&mut rng, n * d, 1.0)),
    };
    let labels: Vec<f64> = (0..n).map(|i| (i % OUT) as f64).collect();
    (x, tensor(&be, &[n], &labels))
}

#[test]
fn gradients_match_finite_differences_for_every_model_and_parametrization() {
    let be = Cpu::f64();
    for (i, (name, s)) in models().into_iter().enumerate() {
        let m = Model::init(&be, s.clone(), &[i as u64]).unwrap();
        let (x, y) = batch(&s, 4, 100 + i as u64);
        let mut inputs = vec![(x.shape().to_vec(), values(&be, &x), false)];
        // A key bias adds a constant to each query's scores, which the
        // softmax removes: its gradient is exactly zero, so a relative
        // comparison with finite differences compares rounding noise. It is
        // checked to be zero below instead.
        let key_bias = |i: usize| m.param_info()[i].name.ends_with(".k.bias");
        for (j, p) in m.params().into_iter().enumerate() {
            inputs.push((p.shape().to_vec(), values(&be, p), !key_bias(j)));
        }
        let pass = m
            .loss_pass(&be, &x, &y, LossKind::CrossEntropy, true)
            .unwrap();
        let largest = flatten(&be, &pass.grads)
            .unwrap()
            .iter()
            .fold(0.0f64, |a, g| a.max(g.abs()));
        for (j, g) in pass.grads.iter().enumerate().filter(|(j, _)| key_bias(*j)) {
            let worst = values(&be, g).iter().fold(0.0f64, |a, v| a.max(v.abs()));
            assert!(
                worst <= 1e-12 * largest,
                "{name}: key bias {j} gradient {worst}"
            );
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
            7,
        );
        assert!(
            err < 1e-6,
            "{name} {:?}: gradient error {err}",
            s.parametrization
        );
    }
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
    let pass = m2
        .loss_pass(&be, x, y, LossKind::CrossEntropy, true)
        .unwrap();
    flatten(&be, &pass.grads).unwrap()
}

#[test]
fn hessian_vector_products_match_finite_differences_of_gradients() {
    let be = Cpu::f64();
    for (i, (name, s)) in models().into_iter().enumerate().filter(|(i, (name, _))| {
        i % 4 == 0 || *i == 3 || name.contains("token") || name.contains("unembedding")
    }) {
        let m = Model::init(&be, s.clone(), &[40 + i as u64]).unwrap();
        let (x, y) = batch(&s, 5, 50 + i as u64);
        let lod = LossOnData::new(
            &be,
            &m,
            LossKind::CrossEntropy,
            vec![(x.clone(), y.clone())],
        )
        .unwrap();
        let theta = flatten(&be, &m.params().into_iter().cloned().collect::<Vec<_>>()).unwrap();
        let mut rng = Rng::new(60 + i as u64);
        let v = randn(&mut rng, theta.len(), 1.0);
        let hv = lod.product(&v, Curvature::Hessian).unwrap();
        let h = 1e-5;
        let shifted =
            |s: f64| -> Vec<f64> { theta.iter().zip(&v).map(|(a, b)| a + s * b).collect() };
        let gp = grad_at(&m, &x, &y, &shifted(h));
        let gm = grad_at(&m, &x, &y, &shifted(-h));
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let err = max_rel_err(&hv, &fd);
        assert!(err < 1e-6, "{name}: HVP error {err}");
        // Gauss-Newton: symmetric and positive semidefinite.
        let u = randn(&mut rng, theta.len(), 1.0);
        let gu = lod.product(&u, Curvature::GaussNewton).unwrap();
        let gv = lod.product(&v, Curvature::GaussNewton).unwrap();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        assert!(
            (dot(&u, &gv) - dot(&v, &gu)).abs() < 1e-9 * dot(&u, &gu).abs().max(1.0),
            "{name}: GN asymmetric"
        );
        assert!(dot(&u, &gu) >= -1e-12, "{name}: GN not PSD");
    }
}

/// Each example's own loss gradient, from a pass over that example alone.
fn one_at_a_time(m: &Model<Cpu>, x: &Tensor<Cpu>, y: &Tensor<Cpu>, n: usize) -> Vec<Vec<f64>> {
    let be = Cpu::f64();
    let (xv, yv) = (values(&be, x), values(&be, y));
    let d = xv.len() / n;
    (0..n)
        .map(|i| {
            let xi = tensor(&be, &[1, d], &xv[i * d..(i + 1) * d]);
            let yi = tensor(&be, &[1], &yv[i..i + 1]);
            flatten(
                &be,
                &m.loss_pass(&be, &xi, &yi, LossKind::CrossEntropy, true)
                    .unwrap()
                    .grads,
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn per_sample_norms_match_gradients_taken_one_example_at_a_time() {
    let be = Cpu::f64();
    let n = 6;
    let mut methods = Vec::new();
    for (i, (name, s)) in models().into_iter().enumerate().take(PER_PARAMETRIZATION) {
        let m = Model::init(&be, s.clone(), &[70 + i as u64]).unwrap();
        let (x, y) = batch(&s, n, 80 + i as u64);
        let want = one_at_a_time(&m, &x, &y, n);
        let full = per_sample_gradients(&be, &m, &x, &y, LossKind::CrossEntropy, 1 << 20).unwrap();
        for (a, b) in full.iter().zip(&want) {
            assert!(max_rel_err(a, b) < 1e-10, "{name}: per-sample gradient");
        }
        let norms = per_sample_norms(&be, &m, &x, &y, LossKind::CrossEntropy).unwrap();
        let sq: Vec<f64> = want.iter().map(|g| g.iter().map(|v| v * v).sum()).collect();
        assert!(
            max_rel_err(&norms.total, &sq) < 1e-10,
            "{name}: {:?} vs {sq:?}",
            norms.total
        );
        methods.extend(norms.methods);
    }
    assert!(
        methods.contains(&Method::Ghost) && methods.contains(&Method::Materialized),
        "{methods:?}"
    );
}

/// The NTK of `m` on `x` against Gram matrices of explicit Jacobian rows;
/// returns how each layer was computed.
fn check_ntk(m: &Model<Cpu>, x: &Tensor<Cpu>, n: usize, name: &str) -> Vec<Method> {
    let be = Cpu::f64();
    let ntk = empirical_ntk(&be, m, x).unwrap();
    let mut tape = Tape::new(be.clone());
    let xv = tape.leaf(x.clone(), false);
    let f = m.forward(&mut tape, xv, true).unwrap();
    let outs = m.outputs();
    for k in 0..outs {
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|j| {
                let mut seed = vec![0.0; n * outs];
                seed[j * outs + k] = 1.0;
                let g = tape
                    .backward(f.output, tensor(&be, &[1, n, outs], &seed))
                    .unwrap();
                let ts: Vec<Tensor<Cpu>> = f
                    .params
                    .iter()
                    .map(|v| g.get(*v).unwrap().clone())
                    .collect();
                flatten(&be, &ts).unwrap()
            })
            .collect();
        let want: Vec<f64> = (0..n * n)
            .map(|ij| {
                rows[ij / n]
                    .iter()
                    .zip(&rows[ij % n])
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect();
        assert!(
            max_rel_err(&ntk.per_output[k], &want) < 1e-10,
            "{name}: NTK output {k}"
        );
    }
    ntk.methods
}

#[test]
fn ntk_matches_explicit_jacobians() {
    let be = Cpu::f64();
    let n = 4;
    let mut methods = Vec::new();
    for (i, (name, s)) in models().into_iter().enumerate().take(PER_PARAMETRIZATION) {
        let m = Model::init(&be, s.clone(), &[90 + i as u64]).unwrap();
        let (x, _) = batch(&s, n, 95 + i as u64);
        methods.extend(check_ntk(&m, &x, n, name));
    }
    // A wide 1x1 convolution on a 2x2 grid: the ghost form is cheaper.
    let wide = spec(
        vec![
            conv(48, 1, 1, 0, Some("tanh")),
            LayerSpec::Flatten,
            LayerSpec::Dense {
                width: OUT,
                bias: true,
                activation: None,
            },
        ],
        Shape::Image { c: 40, h: 2, w: 2 },
        Parametrization::Ntk,
    );
    let m = Model::init(&be, wide.clone(), &[99]).unwrap();
    let (x, _) = batch(&wide, n, 98);
    methods.extend(check_ntk(&m, &x, n, "wide 1x1 conv"));
    for want in [
        Method::Outer,
        Method::Ghost,
        Method::Materialized,
        Method::Direct,
    ] {
        assert!(methods.contains(&want), "{want:?} not among {methods:?}");
    }
}

#[test]
fn checkpoints_round_trip_in_pytorch_layouts() {
    let be = Cpu::f64();
    let dir = common::temp_dir("cnn_checkpoint");
    for (i, (name, s)) in models().into_iter().enumerate().take(PER_PARAMETRIZATION) {
        let m = Model::init(&be, s.clone(), &[3 + i as u64]).unwrap();
        let (tensors, meta) = lmech::nn::checkpoint::checkpoint_contents(&be, &m, "").unwrap();
        let path = dir.join(format!("{name}.safetensors"));
        lmech::run::save_checkpoint(&path, &tensors, &meta).unwrap();
        let shape_of = |n: &str| tensors.iter().find(|t| t.name == n).unwrap().shape.clone();
        let (first, want) = match name {
            "conv1d" | "transformer" => ("layers.0.weight", vec![4, 2, 3]),
            "attention first" => ("layers.0.q.weight", vec![3, 2]),
            // nn.Embedding's [vocab, width]; positions [T, width].
            "token transformer" | "tied unembedding" | "unembedding" => {
                ("layers.0.weight", vec![VOCAB, 4])
            }
            _ => ("layers.0.weight", vec![3, 2, 3, 3]),
        };
        assert_eq!(shape_of(first), want, "{name}");
        if name == "transformer" {
            assert_eq!(shape_of("layers.1.body.1.o.weight"), vec![4, 4]);
        }
        if name == "token transformer" {
            assert_eq!(shape_of("layers.1.weight"), vec![5, 4]);
        }
        // A tied readout stores nothing of its own; an untied one is
        // nn.Linear(width, vocab).
        let readout = |n: &str| {
            tensors
                .iter()
                .find(|t| t.name == n)
                .map(|t| t.shape.clone())
        };
        if name == "tied unembedding" {
            assert_eq!(readout("layers.5.weight"), None);
            assert_eq!(tensors.len(), m.params().len());
        }
        if name == "unembedding" {
            assert_eq!(readout("layers.5.weight"), Some(vec![VOCAB, 4]));
            assert_eq!(readout("layers.5.bias"), Some(vec![VOCAB]));
        }
        let back = lmech::nn::checkpoint::load_model(&be, &path).unwrap();
        let (x, _) = batch(&s, 3, 9);
        let a = values(&be, &m.predict(&be, &x).unwrap());
        let b = values(&be, &back.predict(&be, &x).unwrap());
        assert_eq!(a, b, "{name}");
    }
}

fn config_error(model_toml: &str) -> String {
    let text = format!("[data]\nsource = \"digits\"\n\n{model_toml}");
    let cfg: Config = toml::from_str(&text).unwrap();
    let shape = cfg.data.input_shape(64).unwrap();
    match cfg
        .model
        .spec(shape, Shape::Flat(10), Parametrization::Standard)
    {
        Ok(_) => panic!("accepted: {model_toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn misfit_layers_are_config_errors_naming_the_layer_and_shapes() {
    let e = config_error("[[model.layers]]\nkind = \"conv2d\"\nchannels = 4\nkernel = 9\n");
    assert!(e.contains("model.layers[0]") && e.contains("1x8x8"), "{e}");
    let e = config_error(
        "[[model.layers]]\nkind = \"conv2d\"\nchannels = 4\nkernel = 3\n\n[[model.layers]]\nkind = \"dense\"\nwidth = 10\n",
    );
    assert!(
        e.contains("model.layers[1]") && e.contains("4x6x6") && e.contains("flatten"),
        "{e}"
    );
    let e = config_error("[[model.layers]]\nkind = \"conv3d\"\nchannels = 4\n");
    assert!(e.contains("model.layers[0]") && e.contains("conv3d"), "{e}");
    let e = config_error(
        "[[model.layers]]\nkind = \"flatten\"\n\n[[model.layers]]\nkind = \"dense\"\nwidth = 7\n",
    );
    assert!(e.contains("7") && e.contains("10 outputs"), "{e}");
    let e =
        config_error("[[model.layers]]\nkind = \"conv2d\"\nchannels = 4\nkernel = 3\nstrid = 2\n");
    assert!(e.contains("model.layers[0]") && e.contains("strid"), "{e}");
    let e = config_error("[model]\narch = \"resnet\"\ndepth = 10\n");
    assert!(e.contains("model.depth") && e.contains("6n+2"), "{e}");
    let e = config_error("[model]\narch = \"cnn\"\nnorm = \"group\"\n");
    assert!(e.contains("model.norm") && e.contains("group"), "{e}");
    // Attention wants a sequence; its heads must split the channels.
    let e = config_error("[[model.layers]]\nkind = \"attention\"\nheads = 2\n");
    assert!(
        e.contains("model.layers[0]") && e.contains("sequence") && e.contains("1x8x8"),
        "{e}"
    );
    let e = config_error(
        "[[model.layers]]\nkind = \"conv2d\"\nchannels = 3\nkernel = 8\n\n[[model.layers]]\nkind = \"flatten\"\n\n[[model.layers]]\nkind = \"attention\"\nheads = 2\n",
    );
    assert!(
        e.contains("model.layers[2]") && e.contains("sequence"),
        "{e}"
    );
}

/// Token layers name themselves and what they wanted: an embedding only
/// first and only on ids, a position the sequence has, a sequence for the
/// position embedding.
#[test]
fn token_layers_refuse_misfits() {
    let build = |input: Shape, layers: Vec<LayerSpec>| {
        let s = spec(layers, input, Parametrization::Standard);
        match lmech::nn::graph::Graph::build(&s) {
            Ok(_) => panic!("accepted: {:?}", s.layers),
            Err(e) => e.to_string(),
        }
    };
    let emb = LayerSpec::Embedding { vocab: 7, width: 4 };
    let img = Shape::Image { c: 1, h: 8, w: 8 };
    let e = build(img, vec![emb.clone()]);
    assert!(
        e.contains("model.layers[0]") && e.contains("token ids") && e.contains("1x8x8"),
        "{e}"
    );
    let e = build(Shape::Flat(5), vec![LayerSpec::PositionEmbedding]);
    assert!(
        e.contains("model.layers[0]") && e.contains("sequence"),
        "{e}"
    );
    let e = build(
        Shape::Flat(5),
        vec![emb.clone(), LayerSpec::Flatten, emb.clone()],
    );
    assert!(
        e.contains("model.layers[2]") && e.contains("first layer"),
        "{e}"
    );
    let residual = LayerSpec::Residual {
        layers: vec![emb.clone()],
        projection: false,
        activation: None,
    };
    let e = build(Shape::Flat(5), vec![residual]);
    assert!(
        e.contains("model.layers[0].layers[0]") && e.contains("first layer"),
        "{e}"
    );
    let e = build(
        Shape::Flat(5),
        vec![emb.clone(), LayerSpec::PickPosition { index: 5 }],
    );
    assert!(
        e.contains("model.layers[1].index") && e.contains("5 positions"),
        "{e}"
    );
    let e = build(
        Shape::Flat(5),
        vec![emb, LayerSpec::PickPosition { index: -6 }],
    );
    assert!(
        e.contains("model.layers[1].index") && e.contains("-6"),
        "{e}"
    );
}

/// A tied unembedding reads the embedding's weight (zeroing it zeroes the
/// logits), declares no parameter, and takes the readout's forward scale
/// relative to the embedding's init: 1 under SP (PyTorch's tied model),
/// `m_out sigma_out / sigma_embedding` otherwise (width 4, base 2).
#[test]
fn tied_unembedding_reads_the_embedding_weight_at_the_readout_scale() {
    let be = Cpu::f64();
    let tokens = Shape::Flat(5);
    let n_in = 4.0f64;
    for (p, want) in [
        (Parametrization::Standard, 1.0),
        (Parametrization::Ntk, 1.0 / n_in.sqrt()),
        (Parametrization::Mup, (1.0 / (n_in * 2.0)).sqrt()),
        (Parametrization::MeanField, 1.0 / n_in),
    ] {
        let tied = spec(unembedding_transformer_layers(true), tokens, p);
        let untied = spec(unembedding_transformer_layers(false), tokens, p);
        let mut m = Model::init(&be, tied.clone(), &[5]).unwrap();
        let u = Model::init(&be, untied, &[5]).unwrap();
        assert_eq!(
            m.param_count() + VOCAB * 4 + VOCAB,
            u.param_count(),
            "{p:?}"
        );
        let scale = m.graph.weight_scales().last().unwrap().multiplier;
        assert!((scale - want).abs() < 1e-15, "{p:?}: multiplier {scale}");
        let (x, _) = batch(&tied, 3, 6);
        let before = values(&be, &m.predict(&be, &x).unwrap());
        assert!(before.iter().any(|v| v.abs() > 1e-6), "{p:?}");
        let mut params = m.params_mut();
        let w = &mut params[0];
        **w = tensor(&be, w.shape(), &vec![0.0; w.numel()]);
        let after = values(&be, &m.predict(&be, &x).unwrap());
        assert!(after.iter().all(|&v| v == 0.0), "{p:?}: {after:?}");
    }
}

#[test]
fn unembeddings_refuse_misfits() {
    let build = |layers: Vec<LayerSpec>| {
        let s = spec(layers, Shape::Flat(5), Parametrization::Standard);
        match lmech::nn::graph::Graph::build(&s) {
            Ok(_) => panic!("accepted: {:?}", s.layers),
            Err(e) => e.to_string(),
        }
    };
    let tied = LayerSpec::Unembedding {
        tied: true,
        bias: false,
    };
    let e = build(vec![
        LayerSpec::Dense {
            width: 4,
            bias: true,
            activation: None,
        },
        tied.clone(),
    ]);
    assert!(
        e.contains("model.layers[1]") && e.contains("not an embedding"),
        "{e}"
    );
    let emb = LayerSpec::Embedding { vocab: 7, width: 4 };
    let to_three = LayerSpec::Conv1d {
        channels: 3,
        kernel: 1,
        stride: 1,
        padding: 0,
        bias: false,
        activation: None,
    };
    let e = build(vec![emb.clone(), to_three, tied.clone()]);
    assert!(
        e.contains("model.layers[2].tied") && e.contains("[7, 4]") && e.contains("3 channels"),
        "{e}"
    );
    let with_bias = LayerSpec::Unembedding {
        tied: true,
        bias: true,
    };
    let e = build(vec![emb.clone(), with_bias]);
    assert!(e.contains("model.layers[1].bias"), "{e}");
    let nested = LayerSpec::Residual {
        layers: vec![tied],
        projection: false,
        activation: None,
    };
    let e = build(vec![emb, nested]);
    assert!(
        e.contains("model.layers[1].layers[0]") && e.contains("top-level"),
        "{e}"
    );
}

/// muP's attention (Tensor Programs V): zero-initialized queries and
/// scores scaled by 1/head_dim; SP's 1/sqrt(head_dim) and random queries.
#[test]
fn attention_follows_the_parametrization() {
    let be = Cpu::f64();
    let sig = Shape::Signal { c: 2, l: 9 };
    for p in [Parametrization::Standard, Parametrization::Mup] {
        let m = Model::init(&be, spec(transformer_layers(), sig, p), &[4]).unwrap();
        let at = |n: &str| {
            let i = m.param_info().iter().position(|q| q.name == n).unwrap();
            values(&be, m.params()[i])
        };
        let q_zero = at("layers.1.body.1.q.weight").iter().all(|&v| v == 0.0);
        let k_zero = at("layers.1.body.1.k.weight").iter().all(|&v| v == 0.0);
        assert_eq!(q_zero, p == Parametrization::Mup, "{p:?}: queries");
        assert!(!k_zero, "{p:?}: keys");
        let scale = m
            .graph
            .all_nodes()
            .into_iter()
            .find_map(|n| match &n.layer {
                lmech::nn::layer::Layer::Attention(a) => Some(a.score_scale),
                _ => None,
            })
            .unwrap();
        let want = if p == Parametrization::Mup {
            0.5
        } else {
            0.5f64.sqrt()
        };
        assert!((scale - want).abs() < 1e-15, "{p:?}: score scale {scale}");
    }
}

#[test]
fn presets_build_on_the_bundled_digits() {
    let be = Cpu::f32();
    for (arch, depth, width) in [
        ("cnn", 2, 8),
        ("vgg", 1, 4),
        ("resnet", 8, 4),
        ("mlp", 3, 16),
    ] {
        for norm in ["none", "layer", "rms", "batch"] {
            let text = format!(
                "[model]\narch = \"{arch}\"\ndepth = {depth}\nwidth = {width}\nnorm = \"{norm}\"\nactivation = \"relu\"\n"
            );
            let cfg: Config = toml::from_str(&text).unwrap();
            let shape = cfg.data.input_shape(64).unwrap();
            let s = cfg
                .model
                .spec(shape, Shape::Flat(10), Parametrization::Mup)
                .unwrap();
            let m = Model::init(&be, s, &[1, 2]).unwrap();
            let x = tensor_f32(&be, &[5, 64]);
            let out = m.predict(&be, &x).unwrap();
            assert_eq!(out.shape(), &[2, 5, 10], "{arch} {norm}");
            assert!(
                values_f32(&be, &out).iter().all(|v| v.is_finite()),
                "{arch} {norm}"
            );
        }
    }
}

fn tensor_f32(be: &Cpu, shape: &[usize]) -> Tensor<Cpu> {
    let n: usize = shape.iter().product();
    be.from_f64(
        shape,
        &(0..n)
            .map(|i| ((i * 7 % 17) as f64) / 16.0)
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

fn values_f32(be: &Cpu, t: &Tensor<Cpu>) -> Vec<f64> {
    be.to_f64(t).unwrap()
}
