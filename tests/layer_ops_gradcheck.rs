//! The layer-graph ops (im2col, row max and mean, reshape, transpose, row
//! normalization, gain, residual add) checked in f64 on the CPU: each vjp
//! and jvp against central finite differences, and the vjp's tangent (the
//! R-op the Hessian-vector product is built from) against finite
//! differences of vjps, with random cotangents and cotangent tangents.
//! Also im2col and max pooling against their definitions.

mod common;

use common::{fd_check, max_rel_err, randn, tensor, values};
use lmech::backend::Window;
use lmech::rng::Rng;
use lmech::tape::{
    Add, Curvature, Im2col, Mul, NormRows, Op, Reshape, RowMax, RowMean, Softmax, Tape, Transpose,
};
use lmech::{Backend, Cpu};

const TOL: f64 = 1e-7;

type Make = dyn Fn() -> Box<dyn Op<Cpu>>;

/// Runs `make`'s op once on the tape at `vals` with tangents `dots` on the
/// inputs, and a reverse-with-tangents pass seeded with `(c, c_dot)`.
/// Returns the output, its tangent, each input's cotangent and the
/// cotangent's tangent.
#[allow(clippy::type_complexity)]
fn run(
    make: &Make,
    shapes: &[Vec<usize>],
    vals: &[Vec<f64>],
    dots: &[Vec<f64>],
    seed: Option<(&[f64], &[f64])>,
) -> (Vec<f64>, Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let be = Cpu::f64();
    let mut tape = Tape::new(be.clone());
    let vars: Vec<_> = shapes
        .iter()
        .zip(vals.iter().zip(dots))
        .map(|(s, (v, d))| {
            tape.leaf_with_tangent(tensor(&be, s, v), tensor(&be, s, d), true)
                .unwrap()
        })
        .collect();
    let out = tape.apply(make(), &vars).unwrap();
    let y = values(&be, tape.value(out));
    let ydot = tape
        .tangent(out)
        .map(|t| values(&be, t))
        .unwrap_or_else(|| vec![0.0; y.len()]);
    let (mut cots, mut cdots) = (Vec::new(), Vec::new());
    if let Some((c, cd)) = seed {
        let shape = tape.value(out).shape().to_vec();
        let (g, gd) = tape
            .backward_with_tangents(
                out,
                tensor(&be, &shape, c),
                Some(tensor(&be, &shape, cd)),
                Curvature::Hessian,
                true,
            )
            .unwrap();
        for (v, s) in vars.iter().zip(shapes) {
            let n: usize = s.iter().product();
            cots.push(g.get(*v).map(|t| values(&be, t)).unwrap_or(vec![0.0; n]));
            cdots.push(gd.get(*v).map(|t| values(&be, t)).unwrap_or(vec![0.0; n]));
        }
    }
    (y, ydot, cots, cdots)
}

fn shifted(vals: &[Vec<f64>], dots: &[Vec<f64>], h: f64) -> Vec<Vec<f64>> {
    vals.iter()
        .zip(dots)
        .map(|(v, d)| v.iter().zip(d).map(|(a, b)| a + h * b).collect())
        .collect()
}

/// The worst of the jvp and the vjp tangent errors against central
/// differences along random input tangents.
fn tangent_errors(make: &Make, inputs: &[(Vec<usize>, Vec<f64>)], seed: u64) -> (f64, f64) {
    let mut rng = Rng::new(seed);
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|i| i.0.clone()).collect();
    let vals: Vec<Vec<f64>> = inputs.iter().map(|i| i.1.clone()).collect();
    let dots: Vec<Vec<f64>> = vals.iter().map(|v| randn(&mut rng, v.len(), 1.0)).collect();
    let zero: Vec<Vec<f64>> = vals.iter().map(|v| vec![0.0; v.len()]).collect();
    let (y, ydot, _, _) = run(make, &shapes, &vals, &dots, None);
    let c = randn(&mut rng, y.len(), 1.0);
    let cd = randn(&mut rng, y.len(), 1.0);
    let h = 1e-6;
    let c_at = |h: f64| shifted(&[c.clone()], &[cd.clone()], h).remove(0);
    let (plus, _, cp, _) = run(
        make,
        &shapes,
        &shifted(&vals, &dots, h),
        &zero,
        Some((&c_at(h), &cd)),
    );
    let (minus, _, cm, _) = run(
        make,
        &shapes,
        &shifted(&vals, &dots, -h),
        &zero,
        Some((&c_at(-h), &cd)),
    );
    let fd: Vec<f64> = plus
        .iter()
        .zip(&minus)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    let jvp = max_rel_err(&ydot, &fd);
    let (_, _, _, cdots) = run(make, &shapes, &vals, &dots, Some((&c, &cd)));
    let mut worst: f64 = 0.0;
    for (i, want) in cdots.iter().enumerate() {
        let fd: Vec<f64> = cp[i]
            .iter()
            .zip(&cm[i])
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        worst = worst.max(max_rel_err(want, &fd));
    }
    (jvp, worst)
}

/// vjp, jvp and vjp tangent of one op, all against finite differences.
fn check(what: &str, make: &Make, inputs: &[(Vec<usize>, Vec<f64>)], seed: u64) {
    let fd_inputs: Vec<_> = inputs
        .iter()
        .map(|(s, v)| (s.clone(), v.clone(), true))
        .collect();
    let vjp = fd_check(&fd_inputs, |t, v| t.apply(make(), v), seed);
    let (jvp, tangent) = tangent_errors(make, inputs, seed + 1);
    assert!(vjp < TOL, "{what}: vjp error {vjp}");
    assert!(jvp < TOL, "{what}: jvp error {jvp}");
    assert!(tangent < TOL, "{what}: vjp tangent error {tangent}");
}

fn windows() -> Vec<Window> {
    let w = |n, c, h, w, kh, kw, sh, sw, ph, pw| Window {
        n,
        c,
        h,
        w,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
    };
    vec![
        w(2, 3, 5, 4, 3, 3, 1, 1, 1, 1),
        w(1, 2, 6, 6, 2, 2, 2, 2, 0, 0),
        w(2, 1, 5, 5, 3, 2, 2, 1, 0, 1),
        w(3, 2, 1, 7, 1, 3, 1, 2, 0, 1),
    ]
}

#[test]
fn im2col_derivatives_match_finite_differences() {
    let mut rng = Rng::new(1);
    for (i, win) in windows().into_iter().enumerate() {
        // Two groups (ensemble members) of images.
        let x = randn(&mut rng, 2 * win.image_len(), 1.0);
        let shape = vec![2, win.n, win.h * win.w * win.c];
        check(
            &format!("im2col {win:?}"),
            &move || Box::new(Im2col { window: win }),
            &[(shape, x)],
            10 + i as u64,
        );
    }
}

#[test]
fn im2col_then_gemm_is_the_convolution() {
    let be = Cpu::f64();
    let mut rng = Rng::new(2);
    for win in windows() {
        let co = 4;
        let x = randn(&mut rng, win.image_len(), 1.0);
        let w = randn(&mut rng, co * win.patch(), 1.0);
        let cols = be
            .im2col(&tensor(&be, &[win.n, win.h * win.w * win.c], &x), &win)
            .unwrap();
        let got = values(
            &be,
            &be.matmul(
                &cols,
                false,
                &tensor(&be, &[co, win.patch()], &w),
                true,
                1.0,
            )
            .unwrap(),
        );
        let (oh, ow) = (win.out_h(), win.out_w());
        let mut want = Vec::new();
        for b in 0..win.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..co {
                        let mut acc = 0.0;
                        for ci in 0..win.c {
                            for i in 0..win.kh {
                                for j in 0..win.kw {
                                    let iy = (oy * win.sh + i) as isize - win.ph as isize;
                                    let ix = (ox * win.sw + j) as isize - win.pw as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy as usize >= win.h
                                        || ix as usize >= win.w
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * win.h + iy as usize) * win.w + ix as usize)
                                        * win.c
                                        + ci];
                                    acc += xv * w[((o * win.c + ci) * win.kh + i) * win.kw + j];
                                }
                            }
                        }
                        want.push(acc);
                    }
                }
            }
        }
        assert!(max_rel_err(&got, &want) < 1e-12, "{win:?}");
    }
}

#[test]
fn row_max_picks_the_first_maximum_and_its_derivatives_match() {
    let be = Cpu::f64();
    let x = tensor(&be, &[2, 3], &[1.0, 3.0, 3.0, -1.0, -2.0, -0.5]);
    let (m, arg) = be.row_max(&x).unwrap();
    assert_eq!(values(&be, &m), vec![3.0, -0.5]);
    assert_eq!(values(&be, &arg), vec![1.0, 2.0]);
    let placed = be.row_place(&m, &arg, 3).unwrap();
    assert_eq!(values(&be, &placed), vec![0.0, 3.0, 0.0, 0.0, 0.0, -0.5]);
    assert!(be.row_pick(&x, &tensor(&be, &[2, 1], &[0.0, 3.0])).is_err());
    let mut rng = Rng::new(3);
    // Distinct values, so the maximum does not move under a small step.
    let x = randn(&mut rng, 2 * 6 * 4, 1.0);
    check(
        "row_max",
        &|| Box::new(RowMax::new()),
        &[(vec![2, 6, 4], x.clone())],
        30,
    );
    check("row_mean", &|| Box::new(RowMean), &[(vec![2, 6, 4], x)], 31);
}

#[test]
fn layout_ops_derivatives_match_finite_differences() {
    let mut rng = Rng::new(4);
    let x = randn(&mut rng, 2 * 3 * 4, 1.0);
    check(
        "reshape",
        &|| Box::new(Reshape { shape: vec![6, 4] }),
        &[(vec![2, 3, 4], x.clone())],
        40,
    );
    check(
        "transpose",
        &|| {
            Box::new(Transpose {
                n: 2,
                r: 3,
                c: 4,
                shape: vec![2, 12],
            })
        },
        &[(vec![2, 3, 4], x.clone())],
        41,
    );
    let y = randn(&mut rng, 2 * 3 * 4, 1.0);
    check(
        "add",
        &|| Box::new(Add),
        &[(vec![2, 3, 4], x), (vec![2, 3, 4], y)],
        42,
    );
}

#[test]
fn transpose_moves_values() {
    let be = Cpu::f64();
    let x = tensor(&be, &[2, 2, 3], &(0..12).map(f64::from).collect::<Vec<_>>());
    let t = be.transpose(&x).unwrap();
    assert_eq!(t.shape(), &[2, 3, 2]);
    assert_eq!(
        values(&be, &t),
        vec![0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]
    );
}

#[test]
fn row_normalizations_derivatives_match_finite_differences() {
    let mut rng = Rng::new(5);
    for (center, eps) in [(true, 1e-5), (false, 1e-5), (true, 0.3), (false, 0.3)] {
        let x: Vec<f64> = randn(&mut rng, 2 * 3 * 5, 1.0)
            .iter()
            .map(|v| v + 0.5)
            .collect();
        check(
            &format!("norm_rows center={center} eps={eps}"),
            &move || Box::new(NormRows::new(center, eps)),
            &[(vec![2, 3, 5], x)],
            50,
        );
    }
}

#[test]
fn row_normalizations_match_their_definitions() {
    let be = Cpu::f64();
    let x = [1.0, 2.0, 4.0, -1.0, 0.0, 1.0];
    let (y, s) = be.norm_rows(&tensor(&be, &[2, 3], &x), true, 0.0).unwrap();
    let var0: f64 = [1.0f64, 2.0, 4.0]
        .iter()
        .map(|v| (v - 7.0 / 3.0).powi(2))
        .sum::<f64>()
        / 3.0;
    assert!((values(&be, &s)[0] - 1.0 / var0.sqrt()).abs() < 1e-12);
    let yv = values(&be, &y);
    assert!((yv[3] + (1.5f64).sqrt()).abs() < 1e-12 && yv[4].abs() < 1e-12);
    let (y, _) = be
        .norm_rows(&tensor(&be, &[1, 2], &[3.0, 4.0]), false, 0.0)
        .unwrap();
    let r = (12.5f64).sqrt();
    assert!(max_rel_err(&values(&be, &y), &[3.0 / r, 4.0 / r]) < 1e-12);
}

#[test]
fn softmax_derivatives_match_finite_differences_with_and_without_mask() {
    let mut rng = Rng::new(8);
    for causal in [false, true] {
        // Two members of two stacked 4 x 4 score matrices.
        let x = randn(&mut rng, 2 * 8 * 4, 1.5);
        check(
            &format!("softmax_rows causal={causal}"),
            &move || Box::new(Softmax { causal }),
            &[(vec![2, 8, 4], x)],
            51,
        );
    }
}

#[test]
fn softmax_matches_its_definition_and_masks_later_keys() {
    let be = Cpu::f64();
    let x = [1.0, 2.0, 3.0, 0.5, -1.0, 0.0];
    let y = values(
        &be,
        &be.softmax_rows(&tensor(&be, &[2, 3], &x), false).unwrap(),
    );
    let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).sum();
    assert!(max_rel_err(&y[..3], &[1f64.exp() / z, 2f64.exp() / z, 3f64.exp() / z]) < 1e-14);
    // Causal over 3 x 3 blocks: row r keeps columns 0..=r mod 3.
    let x = [5.0, 9.0, 9.0, 1.0, 3.0, 9.0, 0.0, 0.0, 0.0];
    let y = values(
        &be,
        &be.softmax_rows(&tensor(&be, &[3, 3], &x), true).unwrap(),
    );
    let e2 = 2f64.exp();
    let want = [
        1.0,
        0.0,
        0.0,
        1.0 / (1.0 + e2),
        e2 / (1.0 + e2),
        0.0,
        1.0 / 3.0,
        1.0 / 3.0,
        1.0 / 3.0,
    ];
    assert!(max_rel_err(&y, &want) < 1e-14, "{y:?}");
    // A causal softmax needs whole C x C matrices.
    let e = be
        .softmax_rows(&tensor(&be, &[4, 3], &[0.0; 12]), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("whole 3 x 3") && e.contains("4 rows"), "{e}");
    // Large scores do not overflow.
    let y = values(
        &be,
        &be.softmax_rows(&tensor(&be, &[1, 2], &[1000.0, 1000.0]), false)
            .unwrap(),
    );
    assert_eq!(y, vec![0.5, 0.5]);
}

#[test]
fn gain_derivatives_match_finite_differences_shared_and_per_member() {
    let mut rng = Rng::new(6);
    let x = randn(&mut rng, 2 * 3 * 4, 1.0);
    let g = randn(&mut rng, 2 * 4, 1.0);
    check(
        "mul per member",
        &|| Box::new(Mul),
        &[(vec![2, 3, 4], x.clone()), (vec![2, 4], g)],
        60,
    );
    let g1 = randn(&mut rng, 4, 1.0);
    check(
        "mul same shape",
        &|| Box::new(Mul),
        &[
            (vec![2, 3, 4], x.clone()),
            (vec![2, 3, 4], x.iter().map(|v| v * 0.3 + 1.0).collect()),
        ],
        61,
    );
    let be = Cpu::f64();
    let y = be
        .mul(&tensor(&be, &[2, 3, 4], &x), &tensor(&be, &[1, 4], &g1))
        .unwrap();
    let want: Vec<f64> = x.iter().enumerate().map(|(i, v)| v * g1[i % 4]).collect();
    assert!(max_rel_err(&values(&be, &y), &want) < 1e-15);
    assert!(be
        .mul(&tensor(&be, &[2, 3, 4], &x), &tensor(&be, &[3], &[1.0; 3]))
        .is_err());
}

#[test]
fn row_place_and_norm_rows_shapes_are_consistent() {
    let be = Cpu::f64();
    // One value per entry of a rank-1 g: rows of k each.
    let g = tensor(&be, &[3], &[1.0, 2.0, 3.0]);
    let arg = tensor(&be, &[3], &[0.0, 2.0, 1.0]);
    let placed = be.row_place(&g, &arg, 4).unwrap();
    assert_eq!(placed.shape(), &[3, 4]);
    assert_eq!(
        values(&be, &placed),
        vec![1., 0., 0., 0., 0., 0., 2., 0., 0., 3., 0., 0.]
    );
    assert!(be
        .norm_rows(&tensor(&be, &[2, 0], &[]), true, 1e-5)
        .is_err());
}
