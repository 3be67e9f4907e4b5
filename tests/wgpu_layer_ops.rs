//! The layer ops of the wgpu backend (im2col / col2im, row max / pick /
//! place, transpose, mul, row normalization and row softmax, plain and
//! causal, with their two Jacobian products each) against the CPU f32 reference, in f32 and in f16 storage, including
//! launches past 65535 workgroups and the refusal of bad shapes (the same
//! shapes, with the same messages, as the CPU).
//!
//! Same skip rules as `wgpu_parity.rs` (f32) and `wgpu_f16.rs` (f16).
//! Inputs are rounded to the stored dtype before they go to either backend.
//! Tolerances, relative to the largest magnitude compared (`max_rel_err`):
//! - copies and selections (im2col, transpose, row_max and its column,
//!   row_pick, row_place): exact, in both dtypes (an f16 value survives
//!   f32 arithmetic and storing as f16 unchanged);
//! - col2im, a sum of at most kh * kw terms in the CPU's order, and mul:
//!   f32's 1e-6 * sqrt(K) + 1e-6;
//! - row normalization and its products over rows of C: 4 (1e-6 sqrt(C) +
//!   1e-6) (a tree sum, against the CPU's sequential one, then a square
//!   root and products of those sums);
//! - softmax and its products over rows of C: the same 4 (1e-6 sqrt(C) +
//!   1e-6) (exp, whose WGSL accuracy is a few ulp, and tree sums); softmax
//!   against each row's largest probability (`close_rows`), the products
//!   against the whole tensor's largest entry like every other op (their
//!   rows can cancel to nearly 0); a causal softmax's masked entries must
//!   be exactly 0;
//! - in f16 storage: 1e-3 for everything not exact (one rounding of an f32
//!   result is at most 4.9e-4).
//!
//! Seen on lavapipe: col2im and mul 0 in f32 (same order, same roundings),
//! row normalization at most 1.6e-6, softmax at most 2.1e-6 (rows of 1000,
//! tolerance 1.3e-4) and its products at most 2.3e-6 (rows of 300,
//! tolerance 7.3e-5); in f16 at most 4.7e-4, softmax and its products
//! 4.8e-4.

mod common;

use common::randn;
use common::wgpu_pair::*;
use lmech::backend::Window;
use lmech::rng::Rng;
use lmech::{Backend, Cpu, DType, Tensor, Wgpu};

macro_rules! gpu_or_skip {
    ($dtype:expr) => {
        match gpu($dtype) {
            Some(be) => be,
            None => return,
        }
    };
}

/// A dtype's input rounding and its tolerance for a result that sums `k`
/// terms in f32 (ops that only copy values are compared exactly).
#[derive(Clone, Copy)]
struct Prec {
    round: fn(&[f64]) -> Vec<f64>,
    tol: fn(usize) -> f64,
}

const F32: Prec = Prec {
    round: <[f64]>::to_vec,
    tol: sum_tol,
};

fn r16(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| half::f16::from_f64(v).to_f64()).collect()
}

const F16: Prec = Prec {
    round: r16,
    tol: |_| 1e-3,
};

/// Row normalization's and softmax's tolerance over rows of `c`: a few f32
/// sums' worth.
fn norm_tol(p: Prec, c: usize) -> f64 {
    (p.tol)(c).max(4.0 * sum_tol(c))
}

fn exact(what: &str, g: &Wgpu, got: &Tensor<Wgpu>, want: &Tensor<Cpu>) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    assert_eq!(down(g, got), down(&Cpu::f32(), want), "{what}");
}

fn window(
    n: usize,
    (c, h, w): (usize, usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (ph, pw): (usize, usize),
) -> Window {
    Window {
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
    }
}

/// Strides 1 and 2, padding 0 and 1, square and non-square kernels, one and
/// three channels, 1-D signals, rank-2 (one group) and rank-3 (three
/// groups) inputs.
fn conv_cases(g: &Wgpu, p: Prec) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(11);
    let cases = [
        window(2, (1, 5, 5), (3, 3), (1, 1), (0, 0)),
        window(2, (3, 5, 6), (3, 3), (1, 1), (1, 1)),
        window(3, (3, 7, 6), (2, 3), (2, 2), (0, 1)),
        window(1, (1, 8, 9), (3, 2), (2, 1), (1, 0)),
        window(4, (3, 6, 6), (3, 3), (2, 2), (1, 1)),
        window(2, (3, 1, 17), (1, 5), (1, 2), (0, 2)),
        window(3, (1, 1, 10), (1, 3), (1, 1), (0, 0)),
        window(2, (3, 4, 4), (4, 4), (1, 1), (0, 0)),
    ];
    for win in cases {
        for groups in [1, 3] {
            let per = win.h * win.w * win.c;
            let shape: Vec<usize> = if groups == 1 {
                vec![win.n, per]
            } else {
                vec![groups, win.n, per]
            };
            let x = pair_rounded(
                g,
                &shape,
                &randn(&mut rng, groups * win.image_len(), 1.0),
                p.round,
            );
            let what = format!("{win:?} groups {groups}");
            let want = cpu.im2col(&x.cpu, &win).unwrap();
            let cols = g.im2col(&x.gpu, &win).unwrap();
            exact(&format!("im2col {what}"), g, &cols, &want);
            let c = pair_rounded(
                g,
                want.shape(),
                &randn(&mut rng, want.numel(), 1.0),
                p.round,
            );
            let want = cpu.col2im(&c.cpu, &win).unwrap();
            let got = g.col2im(&c.gpu, &win).unwrap();
            close(
                &format!("col2im {what}"),
                g,
                &got,
                &want,
                (p.tol)(win.kh * win.kw),
            );
        }
    }
}

/// Rows with ties (small integers), a constant row, rank 1 to 3.
fn pool_cases(g: &Wgpu, p: Prec) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(12);
    for shape in [
        vec![7],
        vec![5, 9],
        vec![3, 40, 6],
        vec![2, 3, 1],
        vec![1, 300],
    ] {
        let len: usize = shape.iter().product();
        let k = *shape.last().unwrap();
        let mut data: Vec<f64> = randn(&mut rng, len, 2.0)
            .iter()
            .map(|v| v.round())
            .collect();
        data[..k].fill(-1.5);
        let x = pair_rounded(g, &shape, &data, p.round);
        let what = format!("{shape:?}");
        let (cm, ca) = cpu.row_max(&x.cpu).unwrap();
        let (gm, ga) = g.row_max(&x.gpu).unwrap();
        exact(&format!("row_max {what}"), g, &gm, &cm);
        exact(&format!("row_max arg {what}"), g, &ga, &ca);
        let rows = len / k;
        let cols: Vec<f64> = (0..rows).map(|r| ((r * 7 + 3) % k) as f64).collect();
        let arg = pair_rounded(g, ca.shape(), &cols, p.round);
        for (name, ac, ag) in [("its max", &ca, &ga), ("other", &arg.cpu, &arg.gpu)] {
            let want = cpu.row_pick(&x.cpu, ac).unwrap();
            exact(
                &format!("row_pick {name} {what}"),
                g,
                &g.row_pick(&x.gpu, ag).unwrap(),
                &want,
            );
            let v = pair_rounded(g, ac.shape(), &randn(&mut rng, rows, 1.0), p.round);
            let want = cpu.row_place(&v.cpu, ac, k).unwrap();
            exact(
                &format!("row_place {name} {what}"),
                g,
                &g.row_place(&v.gpu, ag, k).unwrap(),
                &want,
            );
        }
    }
}

fn transpose_cases(g: &Wgpu, p: Prec) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(13);
    for shape in [
        vec![6],
        vec![1, 1],
        vec![7, 13],
        vec![300, 2],
        vec![3, 17, 5],
        vec![4, 1, 9],
    ] {
        let x = pair_rounded(
            g,
            &shape,
            &randn(&mut rng, shape.iter().product(), 1.0),
            p.round,
        );
        let want = cpu.transpose(&x.cpu).unwrap();
        exact(
            &format!("transpose {shape:?}"),
            g,
            &g.transpose(&x.gpu).unwrap(),
            &want,
        );
    }
}

/// Same shapes, and a row per member or one row for all broadcast over
/// the rows.
fn mul_cases(g: &Wgpu, p: Prec) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(14);
    let cases: [(&[usize], &[usize]); 8] = [
        (&[9], &[9]),
        (&[5, 7], &[5, 7]),
        (&[3, 11, 6], &[3, 11, 6]),
        (&[5, 7], &[7]),
        (&[5, 7], &[1, 7]),
        (&[3, 11, 6], &[3, 6]),
        (&[3, 11, 6], &[6]),
        (&[3, 11, 6], &[1, 6]),
    ];
    for (sa, sb) in cases {
        let a = pair_rounded(g, sa, &randn(&mut rng, sa.iter().product(), 2.0), p.round);
        let b = pair_rounded(g, sb, &randn(&mut rng, sb.iter().product(), 2.0), p.round);
        let want = cpu.mul(&a.cpu, &b.cpu).unwrap();
        close(
            &format!("mul {sa:?} by {sb:?}"),
            g,
            &g.mul(&a.gpu, &b.gpu).unwrap(),
            &want,
            (p.tol)(1),
        );
    }
}

/// norm_rows on inputs with an offset (so centering matters), and its two
/// products on random rows, scales and tangents; rows shorter and longer
/// than a workgroup.
fn norm_cases(g: &Wgpu, p: Prec) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(15);
    for shape in [
        vec![300],
        vec![40, 7],
        vec![3, 17, 50],
        vec![2, 5, 1000],
        vec![4, 3, 1],
    ] {
        let len: usize = shape.iter().product();
        let c = *shape.last().unwrap();
        let rows = len / c;
        let tol = norm_tol(p, c);
        let data: Vec<f64> = randn(&mut rng, len, 2.0).iter().map(|v| v + 1.5).collect();
        let x = pair_rounded(g, &shape, &data, p.round);
        let y = pair_rounded(g, &shape, &randn(&mut rng, len, 1.0), p.round);
        let scales: Vec<f64> = (0..rows).map(|_| 0.5 + rng.normal().abs()).collect();
        let s_shape = if shape.len() == 3 {
            vec![shape[0], shape[1]]
        } else {
            vec![rows]
        };
        let s = pair_rounded(g, &s_shape, &scales, p.round);
        let t = pair_rounded(g, &shape, &randn(&mut rng, len, 1.0), p.round);
        let xd = pair_rounded(g, &shape, &randn(&mut rng, len, 1.0), p.round);
        for center in [true, false] {
            let what = format!("{shape:?} center {center}");
            let (cy, cs) = cpu.norm_rows(&x.cpu, center, 1e-5).unwrap();
            let (gy, gs) = g.norm_rows(&x.gpu, center, 1e-5).unwrap();
            close(&format!("norm_rows y {what}"), g, &gy, &cy, tol);
            close(&format!("norm_rows s {what}"), g, &gs, &cs, tol);
            let want = cpu.norm_rows_j(&y.cpu, &s.cpu, &t.cpu, center).unwrap();
            let got = g.norm_rows_j(&y.gpu, &s.gpu, &t.gpu, center).unwrap();
            close(&format!("norm_rows_j {what}"), g, &got, &want, tol);
            let want = cpu
                .norm_rows_second(&y.cpu, &s.cpu, &t.cpu, &xd.cpu, center)
                .unwrap();
            let got = g
                .norm_rows_second(&y.gpu, &s.gpu, &t.gpu, &xd.gpu, center)
                .unwrap();
            close(&format!("norm_rows_second {what}"), g, &got, &want, tol);
        }
    }
}

/// `close` row by row (rows of `c`), each row against its own largest
/// magnitude: a long row's probabilities (about 1 / C) are not judged
/// against another row's 1 (a causal block's first row). Every entry must
/// be finite: `max_rel_err` skips NaN, and an overflowed exp gives NaN.
fn close_rows(what: &str, g: &Wgpu, got: &Tensor<Wgpu>, want: &Tensor<Cpu>, c: usize, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    let (got, want) = (down(g, got), down(&Cpu::f32(), want));
    for (r, (a, b)) in got.chunks(c).zip(want.chunks(c)).enumerate() {
        assert!(
            a.iter().all(|v| v.is_finite()),
            "{what}: row {r} is not finite: {a:?}"
        );
        close_vec(&format!("{what} row {r}"), a, b, tol);
    }
}

/// A causal softmax's masked entries (columns past r mod C in row r) are
/// exactly 0, not merely small.
fn masked_are_zero(what: &str, g: &Wgpu, got: &Tensor<Wgpu>, c: usize) {
    for (r, row) in down(g, got).chunks(c).enumerate() {
        assert!(
            row[r % c + 1..].iter().all(|&v| v == 0.0),
            "{what}: row {r} has a masked entry that is not 0: {row:?}"
        );
    }
}

/// softmax_rows, plain and causal, and its two products at its outputs
/// (rows summing to 1, masked entries 0) on random tangents, in ranks 1 to
/// 3 and rows shorter and longer than a workgroup. Every other shape adds
/// 100 to the scores, where exp overflows f32 unless the row max is
/// subtracted first.
fn softmax_cases(g: &Wgpu, p: Prec) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(17);
    let shapes = [
        vec![7],
        vec![40, 7],
        vec![3, 16, 16],
        vec![2, 300, 300],
        vec![1000, 1000],
        vec![4, 3, 1],
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let len: usize = shape.iter().product();
        let c = *shape.last().unwrap();
        let tol = norm_tol(p, c);
        let offset = if i % 2 == 1 { 100.0 } else { 0.0 };
        let scores: Vec<f64> = randn(&mut rng, len, 3.0)
            .iter()
            .map(|v| v + offset)
            .collect();
        let x = pair_rounded(g, &shape, &scores, p.round);
        let t = pair_rounded(g, &shape, &randn(&mut rng, len, 1.0), p.round);
        let xd = pair_rounded(g, &shape, &randn(&mut rng, len, 1.0), p.round);
        // A causal softmax takes whole C x C matrices ([7] and [40, 7] are
        // refused, below).
        let whole = (len / c) % c == 0 && shape.len() > 1;
        for causal in [false, true].into_iter().filter(|&k| !k || whole) {
            let what = format!("{shape:?} causal {causal}");
            let want = cpu.softmax_rows(&x.cpu, causal).unwrap();
            let got = g.softmax_rows(&x.gpu, causal).unwrap();
            close_rows(&format!("softmax_rows {what}"), g, &got, &want, c, tol);
            if causal {
                masked_are_zero(&format!("softmax_rows {what}"), g, &got, c);
            }
            // The products at the CPU's probabilities, stored in the dtype.
            let y = pair_rounded(g, &shape, &down(&cpu, &want), p.round);
            let want = cpu.softmax_rows_j(&y.cpu, &t.cpu).unwrap();
            let got = g.softmax_rows_j(&y.gpu, &t.gpu).unwrap();
            close(&format!("softmax_rows_j {what}"), g, &got, &want, tol);
            let want = cpu.softmax_rows_second(&y.cpu, &t.cpu, &xd.cpu).unwrap();
            let got = g.softmax_rows_second(&y.gpu, &t.gpu, &xd.gpu).unwrap();
            close(&format!("softmax_rows_second {what}"), g, &got, &want, tol);
        }
    }
}

#[test]
fn im2col_and_col2im_match_cpu() {
    conv_cases(&gpu_or_skip!(DType::F32), F32);
}

#[test]
fn row_max_pick_and_place_match_cpu_with_ties() {
    pool_cases(&gpu_or_skip!(DType::F32), F32);
}

#[test]
fn transpose_matches_cpu() {
    transpose_cases(&gpu_or_skip!(DType::F32), F32);
}

#[test]
fn mul_matches_cpu_with_row_broadcast() {
    mul_cases(&gpu_or_skip!(DType::F32), F32);
}

#[test]
fn norm_rows_and_jacobian_products_match_cpu() {
    norm_cases(&gpu_or_skip!(DType::F32), F32);
}

#[test]
fn softmax_rows_and_jacobian_products_match_cpu() {
    softmax_cases(&gpu_or_skip!(DType::F32), F32);
}

#[test]
fn layer_ops_match_cpu_in_f16() {
    let g = gpu_or_skip!(DType::F16);
    conv_cases(&g, F16);
    pool_cases(&g, F16);
    transpose_cases(&g, F16);
    mul_cases(&g, F16);
    norm_cases(&g, F16);
    softmax_cases(&g, F16);
}

/// 2^24 + 6 outputs need more than 65535 workgroups of 256 threads (the
/// grid folds into two dimensions) for every one-thread-per-element or
/// per-row kernel, and 70000 rows more than 65535 one-row workgroups.
#[test]
fn launches_past_65535_workgroups_match_cpu() {
    let g = gpu_or_skip!(DType::F32);
    let cpu = Cpu::f32();
    let n = (1 << 24) + 6;
    let vals: Vec<f64> = (0..n).map(|i| (i % 1000) as f64).collect();
    let x = pair_rounded(&g, &[1, n], &vals, <[f64]>::to_vec);
    let win = window(1, (1, 1, n), (1, 2), (1, 2), (0, 0));
    let cols = g.im2col(&x.gpu, &win).unwrap();
    exact("im2col", &g, &cols, &cpu.im2col(&x.cpu, &win).unwrap());
    let back = g.col2im(&cols, &win).unwrap();
    exact("col2im", &g, &back, &x.cpu);
    let tall = pair_rounded(&g, &[n, 1], &vals, <[f64]>::to_vec);
    let (m, arg) = g.row_max(&tall.gpu).unwrap();
    exact("row_max", &g, &m, &tall.cpu);
    assert!(down(&g, &arg).iter().all(|&a| a == 0.0), "row_max arg");
    exact(
        "row_pick",
        &g,
        &g.row_pick(&tall.gpu, &arg).unwrap(),
        &tall.cpu,
    );
    let half = pair_rounded(&g, &[n / 2, 1], &vals[..n / 2], <[f64]>::to_vec);
    let ones = pair_rounded(&g, &[n / 2, 1], &vec![1.0; n / 2], <[f64]>::to_vec);
    let want = cpu.row_place(&half.cpu, &ones.cpu, 2).unwrap();
    exact(
        "row_place",
        &g,
        &g.row_place(&half.gpu, &ones.gpu, 2).unwrap(),
        &want,
    );
    let wide = pair_rounded(&g, &[2, n / 2], &vals, <[f64]>::to_vec);
    exact(
        "transpose",
        &g,
        &g.transpose(&wide.gpu).unwrap(),
        &cpu.transpose(&wide.cpu).unwrap(),
    );
    exact(
        "mul",
        &g,
        &g.mul(&x.gpu, &x.gpu).unwrap(),
        &cpu.mul(&x.cpu, &x.cpu).unwrap(),
    );
    let mut rng = Rng::new(16);
    let (rows, c) = (70_000, 8);
    let r = pair_rounded(
        &g,
        &[rows, c],
        &randn(&mut rng, rows * c, 1.0),
        <[f64]>::to_vec,
    );
    let (cy, cs) = cpu.norm_rows(&r.cpu, true, 1e-5).unwrap();
    let (gy, gs) = g.norm_rows(&r.gpu, true, 1e-5).unwrap();
    close("norm_rows y", &g, &gy, &cy, norm_tol(F32, c));
    close("norm_rows s", &g, &gs, &cs, norm_tol(F32, c));
    let t = pair_rounded(
        &g,
        &[rows, c],
        &randn(&mut rng, rows * c, 1.0),
        <[f64]>::to_vec,
    );
    let want = cpu.norm_rows_j(&cy, &cs, &t.cpu, true).unwrap();
    let got = g.norm_rows_j(&gy, &gs, &t.gpu, true).unwrap();
    close("norm_rows_j", &g, &got, &want, norm_tol(F32, c));
    // 70000 rows of 8 are 8750 causal 8 x 8 blocks; 65535 is not a multiple
    // of 8, so a row number unfolded wrongly from the 2-D grid shifts the
    // mask.
    for causal in [false, true] {
        let what = format!("causal {causal}");
        let want = cpu.softmax_rows(&r.cpu, causal).unwrap();
        let got = g.softmax_rows(&r.gpu, causal).unwrap();
        close_rows(
            &format!("softmax_rows {what}"),
            &g,
            &got,
            &want,
            c,
            norm_tol(F32, c),
        );
        if causal {
            masked_are_zero(&format!("softmax_rows {what}"), &g, &got, c);
        }
        let y = pair_rounded(&g, &[rows, c], &down(&cpu, &want), <[f64]>::to_vec);
        let want_j = cpu.softmax_rows_j(&y.cpu, &t.cpu).unwrap();
        let got_j = g.softmax_rows_j(&y.gpu, &t.gpu).unwrap();
        close(
            &format!("softmax_rows_j {what}"),
            &g,
            &got_j,
            &want_j,
            norm_tol(F32, c),
        );
        let want_s = cpu.softmax_rows_second(&y.cpu, &t.cpu, &r.cpu).unwrap();
        let got_s = g.softmax_rows_second(&y.gpu, &t.gpu, &r.gpu).unwrap();
        close(
            &format!("softmax_rows_second {what}"),
            &g,
            &got_s,
            &want_s,
            norm_tol(F32, c),
        );
    }
}

fn on_cpu(p: &Pair) -> &Tensor<Cpu> {
    &p.cpu
}

fn on_gpu(p: &Pair) -> &Tensor<Wgpu> {
    &p.gpu
}

/// Bad operands are refused with an error (not a panic), on the same
/// shapes as the CPU and with the same message.
#[test]
fn bad_shapes_are_refused_like_the_cpu() {
    let g = gpu_or_skip!(DType::F32);
    let cpu = Cpu::f32();
    let t = |shape: &[usize]| {
        pair_rounded(
            &g,
            shape,
            &vec![0.5; shape.iter().product()],
            <[f64]>::to_vec,
        )
    };
    let (x4, x3, x2) = (t(&[2, 2, 2, 2]), t(&[2, 3, 4]), t(&[3, 4]));
    let (empty, idx5, idx6, s5) = (t(&[3, 0]), t(&[5, 1]), t(&[6, 1]), t(&[5]));
    let img = t(&[2, 5 * 5 * 3]);
    let fits = window(2, (3, 5, 5), (3, 3), (1, 1), (0, 0));
    let too_big = window(2, (3, 5, 5), (6, 3), (1, 1), (0, 0));
    let zero_stride = window(2, (3, 5, 5), (3, 3), (0, 1), (0, 0));
    let other_n = window(3, (3, 5, 5), (3, 3), (1, 1), (0, 0));
    // Each case runs one op on both backends, `v` picking that backend's
    // side of each operand pair.
    macro_rules! refused {
        ($name:expr, |$be:ident, $v:ident| $call:expr) => {{
            let on_cpu = {
                let $be = &cpu;
                let $v = on_cpu;
                $call.map(|_| ())
            };
            let on_gpu = {
                let $be = &g;
                let $v = on_gpu;
                $call.map(|_| ())
            };
            let (Err(ce), Err(ge)) = (on_cpu, on_gpu) else {
                panic!("{}: accepted", $name);
            };
            assert_eq!(ge.to_string(), ce.to_string(), "{}", $name);
        }};
    }
    refused!("im2col of a partial group", |b, v| b.im2col(v(&x3), &fits));
    refused!("im2col with a kernel past the image", |b, v| b
        .im2col(v(&img), &too_big));
    refused!("im2col with a zero stride", |b, v| b
        .im2col(v(&img), &zero_stride));
    refused!("im2col with another batch size", |b, v| b
        .im2col(v(&img), &other_n));
    refused!("col2im of a partial patch matrix", |b, v| b
        .col2im(v(&x2), &fits));
    refused!("row_max of rank 4", |b, v| b.row_max(v(&x4)));
    refused!("row_max of empty rows", |b, v| b.row_max(v(&empty)));
    refused!("row_pick with too many indices", |b, v| b
        .row_pick(v(&x2), v(&idx5)));
    refused!("row_place with mismatched index", |b, v| b.row_place(
        v(&idx5),
        v(&idx6),
        4
    ));
    refused!("row_place into empty rows", |b, v| b.row_place(
        v(&idx5),
        v(&idx5),
        0
    ));
    refused!("transpose of rank 4", |b, v| b.transpose(v(&x4)));
    refused!("mul of rank 4", |b, v| b.mul(v(&x4), v(&x4)));
    refused!("mul by a wrong row", |b, v| b.mul(v(&x3), v(&x2)));
    refused!("mul by a rank-3 row", |b, v| b
        .mul(v(&x3), v(&t(&[1, 1, 4]))));
    refused!("norm_rows of rank 4", |b, v| b.norm_rows(
        v(&x4),
        true,
        1e-5
    ));
    refused!("norm_rows_j with wrong scales", |b, v| b.norm_rows_j(
        v(&x2),
        v(&s5),
        v(&x2),
        true
    ));
    refused!("norm_rows_j with a wrong tangent", |b, v| b.norm_rows_j(
        v(&x2),
        v(&t(&[3])),
        v(&x3),
        false
    ));
    refused!("norm_rows_second with a wrong tangent", |b, v| {
        b.norm_rows_second(v(&x2), v(&t(&[3])), v(&x2), v(&idx5), true)
    });
    refused!("softmax_rows of rank 4", |b, v| b
        .softmax_rows(v(&x4), false));
    refused!("softmax_rows of empty rows", |b, v| b
        .softmax_rows(v(&empty), true));
    refused!("a causal softmax_rows of partial matrices", |b, v| b
        .softmax_rows(v(&s5), true));
    refused!("softmax_rows_j with a wrong tangent", |b, v| b
        .softmax_rows_j(v(&x2), v(&x3)));
    refused!("softmax_rows_j of rank 4", |b, v| b
        .softmax_rows_j(v(&x4), v(&x4)));
    refused!("softmax_rows_second with a wrong g", |b, v| b
        .softmax_rows_second(v(&x2), v(&idx5), v(&x2)));
    refused!("softmax_rows_second with a wrong tangent", |b, v| b
        .softmax_rows_second(v(&x3), v(&x3), v(&x2)));
    // The products accept empty rows, as the CPU does, and give empty rows.
    let on_cpu = cpu.softmax_rows_j(&empty.cpu, &empty.cpu).unwrap();
    let on_gpu = g.softmax_rows_j(&empty.gpu, &empty.gpu).unwrap();
    assert_eq!(
        on_gpu.shape(),
        on_cpu.shape(),
        "softmax_rows_j of empty rows"
    );
    let on_gpu = g
        .softmax_rows_second(&empty.gpu, &empty.gpu, &empty.gpu)
        .unwrap();
    assert_eq!(on_gpu.shape(), &[3, 0], "softmax_rows_second of empty rows");
    // No column to pick in empty rows: refused on both, by value on the CPU.
    assert!(cpu.row_pick(&empty.cpu, &t(&[3, 1]).cpu).is_err());
    assert!(g.row_pick(&empty.gpu, &t(&[3, 1]).gpu).is_err());
}
