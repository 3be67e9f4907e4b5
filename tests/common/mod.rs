//! Helpers shared by the integration tests: random tensors, a central
//! finite-difference check of any function recorded on the tape, temporary
//! directories and `.npy` / `.npz` writers.
#![allow(dead_code)]

pub mod model_parity;
pub mod wgpu_pair;

use lmech::nn::layer_spec::LayerSpec;
use lmech::rng::Rng;
use lmech::tape::{Tape, Var};
use lmech::{Backend, Cpu, Result, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub fn randn(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| scale * rng.normal()).collect()
}

pub fn tensor(be: &Cpu, shape: &[usize], data: &[f64]) -> Tensor<Cpu> {
    be.from_f64(shape, data).unwrap()
}

pub fn values(be: &Cpu, t: &Tensor<Cpu>) -> Vec<f64> {
    be.to_f64(t).unwrap()
}

/// max |a - b| / max(|a|, |b|); infinite when either side has a NaN or an
/// infinity (`f64::max` would skip a NaN and let it pass any tolerance).
pub fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = a
        .iter()
        .chain(b)
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

/// Check the tape's gradient of `<c, f(inputs)>` with respect to every input
/// marked differentiable against central differences, in f64. `f` records
/// the function on a tape given leaf handles. Returns the worst relative
/// error seen.
pub fn fd_check(
    inputs: &[(Vec<usize>, Vec<f64>, bool)],
    f: impl Fn(&mut Tape<Cpu>, &[Var]) -> Result<Var>,
    seed: u64,
) -> f64 {
    let be = Cpu::f64();
    let eval = |vals: &[Vec<f64>]| -> (Tape<Cpu>, Var, Vec<Var>) {
        let mut tape = Tape::new(be.clone());
        let vars: Vec<Var> = inputs
            .iter()
            .zip(vals)
            .map(|((s, _, g), v)| tape.leaf(tensor(&be, s, v), *g))
            .collect();
        let out = f(&mut tape, &vars).unwrap();
        (tape, out, vars)
    };
    let base: Vec<Vec<f64>> = inputs.iter().map(|(_, v, _)| v.clone()).collect();
    let (tape, out, vars) = eval(&base);
    let out_shape = tape.value(out).shape().to_vec();
    let mut rng = Rng::new(seed);
    let c = randn(&mut rng, out_shape.iter().product(), 1.0);
    let dot = |vals: &[Vec<f64>]| -> f64 {
        let (t, o, _) = eval(vals);
        values(&be, t.value(o))
            .iter()
            .zip(&c)
            .map(|(a, b)| a * b)
            .sum()
    };
    let grads = tape.backward(out, tensor(&be, &out_shape, &c)).unwrap();
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for (i, (_, v, g)) in inputs.iter().enumerate() {
        if !*g {
            continue;
        }
        let analytic = values(&be, grads.get(vars[i]).expect("missing gradient"));
        assert_eq!(analytic.len(), v.len());
        let mut numeric = Vec::with_capacity(v.len());
        for j in 0..v.len() {
            let mut plus = base.clone();
            plus[i][j] += h;
            let mut minus = base.clone();
            minus[i][j] -= h;
            numeric.push((dot(&plus) - dot(&minus)) / (2.0 * h));
        }
        worst = worst.max(max_rel_err(&analytic, &numeric));
    }
    worst
}

/// A fresh, empty directory per test (tests run in parallel), removed when
/// the test ends.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lmech-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// `.npy` bytes (format `version`, 1 or 2) with a header padded to 64 bytes,
/// as NumPy writes them.
pub fn npy_bytes_v(
    version: u8,
    descr: &str,
    shape: &[usize],
    fortran: bool,
    data: &[u8],
) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran_txt = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran_txt}, 'shape': {shape_txt}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    while (prefix + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    npy_bytes_v(1, descr, shape, false, data)
}

/// Little-endian bytes of `v`, the data of an `<f8` array.
pub fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of `v`, the data of an `<i8` array.
pub fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An `.npz` archive of `(member name, .npy bytes)`, as `np.savez` (stored)
/// or `np.savez_compressed` (deflated) writes it.
pub fn write_npz(path: &Path, method: zip::CompressionMethod, members: &[(&str, Vec<u8>)]) {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

/// Says that a test is skipped (its backend is absent). Written straight to
/// stderr, past the test harness's output capture, so a skipped test shows
/// up in the log instead of passing silently.
pub fn skip(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {msg}");
}

/// BatchNorm with PyTorch's defaults (gain and shift, eps 1e-5, momentum
/// 0.1), as the BatchNorm tests put it in their models.
pub fn batch_norm_layer() -> LayerSpec {
    LayerSpec::BatchNorm {
        gain: true,
        bias: true,
        eps: 1e-5,
        momentum: 0.1,
    }
}
