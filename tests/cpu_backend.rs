//! The CPU backend's kernels against plain loops: batched matmul with every
//! transpose combination and ensemble broadcasting, the pointwise and
//! reduction kernels, and thread-count independence of whole training steps.

mod common;

use common::{max_rel_err, randn, tensor, values};
use lmech::nn::activation::{Activation, ALL_ACTIVATIONS};
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::{Backend, Cpu};

/// op(a) @ op(b) for one matrix pair, by the definition.
#[allow(clippy::too_many_arguments)]
fn naive(
    a: &[f64],
    ar: usize,
    ac: usize,
    ta: bool,
    b: &[f64],
    br: usize,
    bc: usize,
    tb: bool,
) -> Vec<f64> {
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let at = |i: usize, p: usize| if ta { a[p * ac + i] } else { a[i * ac + p] };
    let bt = |p: usize, j: usize| if tb { b[j * bc + p] } else { b[p * bc + j] };
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
        }
    }
    c
}

#[test]
fn matmul_matches_the_definition_for_all_transposes_and_broadcasts() {
    let mut rng = Rng::new(0);
    for be in [Cpu::f64(), Cpu::f32()] {
        let tol = if be.dtype() == lmech::DType::F64 {
            1e-13
        } else {
            1e-5
        };
        // Sizes chosen to cross gemm's blocking on one side and be tiny on another.
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 4), (17, 33, 9), (70, 300, 130)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for &(ea, eb) in &[(1, 1), (3, 3), (1, 3), (3, 1)] {
                        let (ar, ac) = if ta { (k, m) } else { (m, k) };
                        let (br, bc) = if tb { (n, k) } else { (k, n) };
                        let av = randn(&mut rng, ea * ar * ac, 1.0);
                        let bv = randn(&mut rng, eb * br * bc, 1.0);
                        let a = tensor(
                            &be,
                            &if ea == 1 {
                                vec![ar, ac]
                            } else {
                                vec![ea, ar, ac]
                            },
                            &av,
                        );
                        let b = tensor(
                            &be,
                            &if eb == 1 {
                                vec![br, bc]
                            } else {
                                vec![eb, br, bc]
                            },
                            &bv,
                        );
                        let c = be.matmul(&a, ta, &b, tb, 0.5).unwrap();
                        let e = ea.max(eb);
                        let got = values(&be, &c);
                        let mut want = Vec::new();
                        for i in 0..e {
                            let ai = if ea == 1 { 0 } else { i };
                            let bi = if eb == 1 { 0 } else { i };
                            let prod = naive(
                                &av[ai * ar * ac..(ai + 1) * ar * ac],
                                ar,
                                ac,
                                ta,
                                &bv[bi * br * bc..(bi + 1) * br * bc],
                                br,
                                bc,
                                tb,
                            );
                            want.extend(prod.iter().map(|v| 0.5 * v));
                        }
                        let err = max_rel_err(&got, &want);
                        assert!(
                            err < tol,
                            "{m}x{k}x{n} ta={ta} tb={tb} e=({ea},{eb}) {:?}: {err}",
                            be.dtype()
                        );
                        let expect_shape = if ea == 1 && eb == 1 {
                            vec![m, n]
                        } else {
                            vec![e, m, n]
                        };
                        assert_eq!(c.shape(), expect_shape.as_slice());
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let be = Cpu::f32();
    let a = be.zeros(&[2, 3]).unwrap();
    let b = be.zeros(&[4, 5]).unwrap();
    let err = be
        .matmul(&a, false, &b, false, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inner dimensions"), "{err}");
    let a = be.zeros(&[2, 2, 3]).unwrap();
    let b = be.zeros(&[3, 3, 5]).unwrap();
    assert!(be.matmul(&a, false, &b, false, 1.0).is_err());
}

#[test]
fn bias_act_and_backward_match_scalar_definitions() {
    let mut rng = Rng::new(1);
    let be = Cpu::f64();
    let (e, rows, n) = (2, 5, 7);
    let z = randn(&mut rng, e * rows * n, 2.0);
    let b = randn(&mut rng, e * n, 1.0);
    let g = randn(&mut rng, e * rows * n, 1.0);
    for act in ALL_ACTIVATIONS {
        let zt = tensor(&be, &[e, rows, n], &z);
        let bt = tensor(&be, &[e, n], &b);
        let (pre, post) = be.bias_act(&zt, Some(&bt), 0.3, act).unwrap();
        let gp = be
            .act_backward(&pre, &post, &tensor(&be, &[e, rows, n], &g), act)
            .unwrap();
        let (pre, post, gp) = (values(&be, &pre), values(&be, &post), values(&be, &gp));
        for i in 0..z.len() {
            let member = i / (rows * n);
            let want_pre = z[i] + 0.3 * b[member * n + i % n];
            assert!((pre[i] - want_pre).abs() < 1e-14);
            assert!((post[i] - act.apply(want_pre)).abs() < 1e-14, "{act:?}");
            assert!(
                (gp[i] - g[i] * act.deriv(want_pre)).abs() < 1e-12,
                "{act:?}"
            );
        }
    }
}

#[test]
fn f32_kernels_agree_with_f64() {
    let mut rng = Rng::new(2);
    let (e, rows, n) = (2, 64, 33);
    let z = randn(&mut rng, e * rows * n, 2.0);
    let b = randn(&mut rng, e * n, 1.0);
    for act in ALL_ACTIVATIONS {
        let outs: Vec<Vec<f64>> = [Cpu::f64(), Cpu::f32()]
            .iter()
            .map(|be| {
                let (_, post) = be
                    .bias_act(
                        &tensor(be, &[e, rows, n], &z),
                        Some(&tensor(be, &[e, n], &b)),
                        1.0,
                        act,
                    )
                    .unwrap();
                values(be, &post)
            })
            .collect();
        let err = max_rel_err(&outs[0], &outs[1]);
        assert!(err < 1e-6, "{act:?}: {err}");
    }
}

#[test]
fn reductions_match_plain_sums() {
    let mut rng = Rng::new(3);
    let be = Cpu::f64();
    let (e, rows, n) = (3, 11, 4);
    let x = randn(&mut rng, e * rows * n, 1.0);
    let t = tensor(&be, &[e, rows, n], &x);
    let s = values(&be, &be.sum_rows(&t, 2.0).unwrap());
    for m in 0..e {
        for j in 0..n {
            let want: f64 = (0..rows).map(|r| x[(m * rows + r) * n + j]).sum::<f64>() * 2.0;
            assert!((s[m * n + j] - want).abs() < 1e-12);
        }
    }
    let sq = be.sum_sq(&t).unwrap();
    for m in 0..e {
        let want: f64 = x[m * rows * n..(m + 1) * rows * n]
            .iter()
            .map(|v| v * v)
            .sum();
        assert!((sq[m] - want).abs() < 1e-12);
    }
    // Argmax accuracy: member 0 right on both rows, member 1 on one.
    let f = tensor(
        &be,
        &[2, 2, 3],
        &[0.0, 1.0, 0.5, 2.0, 0.0, 1.0, 0.0, 1.0, 0.5, 0.0, 0.0, 1.0],
    );
    let labels = tensor(&be, &[2], &[1.0, 0.0]);
    assert_eq!(be.count_correct(&f, &labels).unwrap(), vec![2.0, 1.0]);
}

#[test]
fn ensemble_members_compute_what_separate_models_compute() {
    let be = Cpu::f64();
    let spec = MlpSpec::new(6, 16, 3, 3, Activation::Gelu);
    let seeds = [11, 12, 13];
    let ens = Model::init(&be, spec.clone(), &seeds).unwrap();
    let mut rng = Rng::new(4);
    let x = tensor(&be, &[5, 6], &randn(&mut rng, 30, 1.0));
    let out = values(&be, &ens.predict(&be, &x).unwrap());
    for (i, &s) in seeds.iter().enumerate() {
        let single = Model::init(&be, spec.clone(), &[s]).unwrap();
        let o = values(&be, &single.predict(&be, &x).unwrap());
        assert_eq!(&out[i * 15..(i + 1) * 15], o.as_slice(), "member {i}");
    }
}

/// `f` on a fresh pool of `threads` threads.
fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// Ten SGD steps of an MLP big enough that gemm splits work over threads,
/// returning the final parameters.
fn train_steps(threads: usize) -> Vec<Vec<f64>> {
    on_threads(threads, || {
        let be = Cpu::f32();
        let spec = MlpSpec::new(100, 512, 3, 10, Activation::Tanh);
        let mut model = Model::init(&be, spec, &[5, 6]).unwrap();
        let mut rng = Rng::new(9);
        let x = tensor(&be, &[300, 100], &randn(&mut rng, 30_000, 1.0));
        let labels: Vec<f64> = (0..300).map(|i| (i % 10) as f64).collect();
        let labels = tensor(&be, &[300], &labels);
        let mut hyper = OptimHyper::new(OptimizerKind::Sgd);
        hyper.momentum = 0.9;
        let n = model.params().len();
        let mut opt = Optimizer::new(
            &be,
            hyper,
            Schedule::Constant,
            vec![0.05, 0.1],
            &model.params(),
            vec![1.0; n],
        )
        .unwrap();
        for _ in 0..10 {
            let pass = model
                .loss_pass(&be, &x, &labels, LossKind::CrossEntropy, true)
                .unwrap();
            opt.step(&be, model.params_mut(), &pass.grads).unwrap();
        }
        model.params().iter().map(|p| values(&be, p)).collect()
    })
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let one = train_steps(1);
    let two = train_steps(2);
    let three = train_steps(3);
    assert_eq!(one, two, "1 vs 2 threads");
    assert_eq!(one, three, "1 vs 3 threads");
}

/// A product past the size that runs on the `gemm` crate's own threads
/// (512^3, every transpose) gives the same bits on 1, 2 and 3 threads as
/// the single-threaded product, and matches an f64 reference.
#[test]
fn the_largest_products_do_not_depend_on_the_thread_count() {
    let n = 512;
    let mut rng = Rng::new(21);
    let a = randn(&mut rng, n * n, 1.0);
    let b = randn(&mut rng, n * n, 1.0);
    let product = |threads: usize, ta: bool, tb: bool| -> Vec<f64> {
        on_threads(threads, || {
            let be = Cpu::f32();
            let (x, y) = (tensor(&be, &[n, n], &a), tensor(&be, &[n, n], &b));
            values(&be, &be.matmul(&x, ta, &y, tb, 1.0).unwrap())
        })
    };
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let one = product(1, ta, tb);
        for threads in [2, 3] {
            assert_eq!(
                one,
                product(threads, ta, tb),
                "{threads} threads, ta {ta} tb {tb}"
            );
        }
        let at = |i: usize, k: usize| if ta { a[k * n + i] } else { a[i * n + k] };
        let bt = |k: usize, j: usize| if tb { b[j * n + k] } else { b[k * n + j] };
        for (i, j) in [(0, 0), (3, 500), (511, 7), (255, 256)] {
            let exact: f64 = (0..n).map(|k| at(i, k) * bt(k, j)).sum();
            let got = one[i * n + j];
            assert!(
                (got - exact).abs() < 1e-3 * (1.0 + exact.abs()),
                "{got} vs {exact}"
            );
        }
    }
}

/// A mid-sized product is timed split and serial on its first calls
/// (`split_choice`: split, then serial and split in turn): every one of
/// those calls, and the calls after the choice, give the same bits as the
/// product on one thread. k = 1100 spans several of the gemm crate's
/// k-blocks; every transpose is its own shape.
#[test]
fn a_product_gives_the_same_bits_split_or_serial() {
    let (m, n, k) = (300, 23, 1100);
    let mut rng = Rng::new(22);
    let a = randn(&mut rng, m * k, 1.0);
    let b = randn(&mut rng, k * n, 1.0);
    let product = |threads: usize, ta: bool, tb: bool, calls: usize| -> Vec<Vec<f64>> {
        on_threads(threads, || {
            let be = Cpu::f32();
            let (xs, ys) = (
                if ta { [k, m] } else { [m, k] },
                if tb { [n, k] } else { [k, n] },
            );
            let (x, y) = (tensor(&be, &xs, &a), tensor(&be, &ys, &b));
            (0..calls)
                .map(|_| values(&be, &be.matmul(&x, ta, &y, tb, 1.0).unwrap()))
                .collect()
        })
    };
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let one = product(1, ta, tb, 1).remove(0);
        for (call, got) in product(2, ta, tb, 10).iter().enumerate() {
            assert_eq!(&one, got, "call {call}, ta {ta} tb {tb}");
        }
    }
}
