//! Integration tests of `lmech::data`: the bundled digits, every file format
//! (written here by tiny in-test writers), the preprocessing order, the
//! synthetic tasks' ground truth, and config validation.

mod common;

use common::{f64_bytes, i64_bytes, npy_bytes, npy_bytes_v, temp_dir, write_npz, TempDir};
use lmech::data::npy::{self, NpyData};
use lmech::data::{load, DataConfig, Dataset, Split, Targets};
use lmech::error::Error;
use std::io::Write;
use std::path::Path;

// ---------- helpers ----------

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn npy_cfg(x: &Path, y: &Path) -> DataConfig {
    DataConfig {
        source: "npy".into(),
        x_path: Some(x.to_path_buf()),
        y_path: Some(y.to_path_buf()),
        ..DataConfig::default()
    }
}

fn labels(ds: &Dataset) -> (&[usize], usize) {
    match &ds.y {
        Targets::Labels { y, classes } => (y, *classes),
        other => panic!("expected labels, got {other:?}"),
    }
}

fn values(ds: &Dataset) -> (&[f64], usize) {
    match &ds.y {
        Targets::Values { y, k } => (y, *k),
        other => panic!("expected values, got {other:?}"),
    }
}

/// The error message of `r`, which must be an error.
fn err_msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

/// Indexed data set: x_i = i (d = 1), labels i % 3, n examples.
fn indexed_npy(name: &str, n: usize) -> (TempDir, DataConfig) {
    let dir = temp_dir(name);
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let y: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    write(&dir.join("x.npy"), &npy_bytes("<f8", &[n], &f64_bytes(&x)));
    write(&dir.join("y.npy"), &npy_bytes("<i8", &[n], &i64_bytes(&y)));
    let cfg = npy_cfg(&dir.join("x.npy"), &dir.join("y.npy"));
    (dir, cfg)
}

fn col_stats(ds: &Dataset, j: usize) -> (f64, f64) {
    let col: Vec<f64> = (0..ds.n).map(|i| ds.x[i * ds.d + j]).collect();
    let mean = col.iter().sum::<f64>() / ds.n as f64;
    let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / ds.n as f64;
    (mean, var.sqrt())
}

// ---------- bundled digits ----------

#[test]
fn digits_bundled_loads() {
    let split = load(&DataConfig::default(), 0).unwrap();
    assert!(split.test.is_none());
    let ds = split.train;
    assert_eq!((ds.n, ds.d, ds.x.len()), (1797, 64, 1797 * 64));
    assert_eq!(ds.out_dim(), 10);
    let (y, classes) = labels(&ds);
    assert_eq!(classes, 10);
    let mut hist = [0usize; 10];
    y.iter().for_each(|&l| hist[l] += 1);
    assert_eq!(hist.iter().sum::<usize>(), 1797);
    assert!(hist.iter().all(|&h| (170..=190).contains(&h)), "{hist:?}");
    assert!(ds
        .x
        .iter()
        .all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
    assert_eq!(ds.x.iter().cloned().fold(0.0, f64::max), 16.0);
}

// ---------- .npy ----------

#[test]
fn npy_dtypes_round_trip() {
    let dir = temp_dir("npy-dtypes");
    let ints: [i64; 6] = [0, 1, 2, 3, 100, 127];
    let signed: [i64; 6] = [-128, -1, 0, 1, 2, 127];
    type Case = (&'static str, Vec<u8>, NpyData);
    let cases: Vec<Case> = vec![
        (
            "|u1",
            ints.iter().map(|&v| v as u8).collect(),
            NpyData::Int(ints.to_vec()),
        ),
        (
            "|i1",
            signed.iter().map(|&v| v as i8 as u8).collect(),
            NpyData::Int(signed.to_vec()),
        ),
        (
            "<i2",
            signed
                .iter()
                .flat_map(|&v| (v as i16 * 200).to_le_bytes())
                .collect(),
            NpyData::Int(signed.iter().map(|v| v * 200).collect()),
        ),
        (
            "<u2",
            ints.iter()
                .flat_map(|&v| (v as u16 * 500).to_le_bytes())
                .collect(),
            NpyData::Int(ints.iter().map(|v| v * 500).collect()),
        ),
        (
            "<i4",
            signed
                .iter()
                .flat_map(|&v| (v as i32 * 100_000).to_le_bytes())
                .collect(),
            NpyData::Int(signed.iter().map(|v| v * 100_000).collect()),
        ),
        (
            "=u4",
            ints.iter()
                .flat_map(|&v| (v as u32 * 30_000_000).to_le_bytes())
                .collect(),
            NpyData::Int(ints.iter().map(|v| v * 30_000_000).collect()),
        ),
        (
            "<i8",
            signed
                .iter()
                .flat_map(|&v| (v << 40).to_le_bytes())
                .collect(),
            NpyData::Int(signed.iter().map(|v| v << 40).collect()),
        ),
        (
            "<u8",
            ints.iter()
                .flat_map(|&v| ((v as u64) << 50).to_le_bytes())
                .collect(),
            NpyData::Int(ints.iter().map(|v| v << 50).collect()),
        ),
        (
            "<f4",
            [0.5f32, -1.25, 3.0, 1e-3, -7.5, 2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            NpyData::Float(
                [0.5f32, -1.25, 3.0, 1e-3, -7.5, 2.0]
                    .iter()
                    .map(|&v| v as f64)
                    .collect(),
            ),
        ),
        (
            "<f8",
            f64_bytes(&[0.1, -2.5, 1e300, -0.0, 3.75, 1.0 / 3.0]),
            NpyData::Float(vec![0.1, -2.5, 1e300, -0.0, 3.75, 1.0 / 3.0]),
        ),
        (
            "|b1",
            vec![1, 0, 0, 1, 1, 0],
            NpyData::Int(vec![1, 0, 0, 1, 1, 0]),
        ),
    ];
    for (i, (descr, bytes, want)) in cases.into_iter().enumerate() {
        // Alternate header versions 1 and 2.
        let version = 1 + (i % 2) as u8;
        let path = dir.join(format!("a{i}.npy"));
        write(&path, &npy_bytes_v(version, descr, &[2, 3], false, &bytes));
        let arr = npy::read(&path).unwrap_or_else(|e| panic!("{descr}: {e}"));
        assert_eq!(arr.shape, vec![2, 3], "{descr}");
        assert_eq!(arr.data, want, "{descr}");
    }
}

#[test]
fn npy_fortran_order_becomes_c_order() {
    // The 2x3 matrix [[1, 2, 3], [4, 5, 6]] stored column by column.
    let bytes = npy_bytes_v(
        1,
        "<f8",
        &[2, 3],
        true,
        &f64_bytes(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
    );
    let arr = npy::parse(&bytes, "f.npy").unwrap();
    assert_eq!(arr.shape, vec![2, 3]);
    assert_eq!(arr.data, NpyData::Float(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
}

#[test]
fn npy_pair_loads_labels_and_values() {
    let dir = temp_dir("npy-pair");
    // x of shape [4, 2, 2] is flattened to d = 4.
    let x: Vec<f64> = (0..16).map(|v| v as f64).collect();
    write(
        &dir.join("x.npy"),
        &npy_bytes("<f8", &[4, 2, 2], &f64_bytes(&x)),
    );
    write(
        &dir.join("labels.npy"),
        &npy_bytes("<i8", &[4], &i64_bytes(&[2, 0, 4, 2])),
    );
    write(
        &dir.join("scalar.npy"),
        &npy_bytes("<f8", &[4], &f64_bytes(&[0.5, 1.5, 2.5, 3.5])),
    );
    let v3: Vec<f32> = (0..12).map(|v| v as f32 / 4.0).collect();
    let v3_bytes: Vec<u8> = v3.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(&dir.join("vec.npy"), &npy_bytes("<f4", &[4, 3], &v3_bytes));

    let ds = load(&npy_cfg(&dir.join("x.npy"), &dir.join("labels.npy")), 0)
        .unwrap()
        .train;
    assert_eq!((ds.n, ds.d), (4, 4));
    assert_eq!(ds.x, x);
    assert_eq!(labels(&ds), (&[2, 0, 4, 2][..], 5));

    let ds = load(&npy_cfg(&dir.join("x.npy"), &dir.join("scalar.npy")), 0)
        .unwrap()
        .train;
    assert_eq!(values(&ds), (&[0.5, 1.5, 2.5, 3.5][..], 1));

    let ds = load(&npy_cfg(&dir.join("x.npy"), &dir.join("vec.npy")), 0)
        .unwrap()
        .train;
    let want: Vec<f64> = v3.iter().map(|&v| v as f64).collect();
    assert_eq!(values(&ds), (&want[..], 3));
    assert_eq!(ds.out_dim(), 3);
}

#[test]
fn npy_test_files_are_held_to_the_train_class_count() {
    let dir = temp_dir("npy-test-files");
    write(
        &dir.join("x.npy"),
        &npy_bytes("<f8", &[3, 2], &f64_bytes(&[0.0; 6])),
    );
    write(&dir.join("y.npy"), &npy_bytes("|u1", &[3], &[0, 1, 1]));
    write(
        &dir.join("tx.npy"),
        &npy_bytes("<f8", &[2, 2], &f64_bytes(&[1.0; 4])),
    );
    write(&dir.join("ty.npy"), &npy_bytes("|u1", &[2], &[4, 0]));
    write(
        &dir.join("tx3.npy"),
        &npy_bytes("<f8", &[2, 3], &f64_bytes(&[1.0; 6])),
    );
    let mut cfg = npy_cfg(&dir.join("x.npy"), &dir.join("y.npy"));
    cfg.test_x_path = Some(dir.join("tx.npy"));
    cfg.test_y_path = Some(dir.join("ty.npy"));
    // Train labels 0..1 build 2 outputs; test label 4 would index past them.
    let msg = err_msg(load(&cfg, 0));
    assert!(
        msg.contains("ty.npy") && msg.contains("label 4 at row 0") && msg.contains("0..2"),
        "{msg}"
    );
    assert!(msg.contains("data.num_classes"), "{msg}");

    cfg.num_classes = Some(5);
    let split = load(&cfg, 0).unwrap();
    let test = split.test.unwrap();
    assert_eq!(labels(&split.train).1, 5);
    assert_eq!(labels(&test), (&[4, 0][..], 5));

    cfg.test_x_path = Some(dir.join("tx3.npy"));
    let msg = err_msg(load(&cfg, 0));
    assert!(msg.contains("tx3.npy") && msg.contains("features"), "{msg}");
}

#[test]
fn npy_errors_name_the_file() {
    let dir = temp_dir("npy-errors");
    let good_x = dir.join("x.npy");
    write(&good_x, &npy_bytes("<f8", &[3, 2], &f64_bytes(&[0.0; 6])));

    // Truncated data: 3x2 f8 needs 48 bytes.
    let trunc = dir.join("trunc.npy");
    write(
        &trunc,
        &npy_bytes("<f8", &[3], &f64_bytes(&[1.0, 2.0])[..12]),
    );
    let msg = err_msg(npy::read(&trunc));
    assert!(
        msg.contains("trunc.npy") && msg.contains("24") && msg.contains("12"),
        "{msg}"
    );

    // Truncated header.
    let bytes = npy_bytes("<f8", &[3], &f64_bytes(&[1.0, 2.0, 3.0]));
    let short = dir.join("short.npy");
    write(&short, &bytes[..40]);
    let msg = err_msg(npy::read(&short));
    assert!(
        msg.contains("short.npy") && msg.contains("truncated header"),
        "{msg}"
    );

    let magic = dir.join("magic.npy");
    write(&magic, b"PK\x03\x04 this is a zip, not an npy file");
    let msg = err_msg(npy::read(&magic));
    assert!(msg.contains("magic.npy") && msg.contains("magic"), "{msg}");

    let big = dir.join("big.npy");
    write(&big, &npy_bytes(">f8", &[1], &[0; 8]));
    let msg = err_msg(npy::read(&big));
    assert!(
        msg.contains("big.npy") && msg.contains("big-endian"),
        "{msg}"
    );

    let complex = dir.join("complex.npy");
    write(&complex, &npy_bytes("<c16", &[1], &[0; 16]));
    let msg = err_msg(npy::read(&complex));
    assert!(msg.contains("complex.npy") && msg.contains("<c16"), "{msg}");

    // Mismatched number of examples names both files and shapes.
    let y4 = dir.join("y4.npy");
    write(&y4, &npy_bytes("|u1", &[4], &[0, 1, 0, 1]));
    let msg = err_msg(load(&npy_cfg(&good_x, &y4), 0));
    assert!(msg.contains("x.npy") && msg.contains("y4.npy"), "{msg}");
    assert!(msg.contains("[3, 2]") && msg.contains("[4]"), "{msg}");

    let neg = dir.join("neg.npy");
    write(&neg, &npy_bytes("<i8", &[3], &i64_bytes(&[0, -1, 2])));
    let msg = err_msg(load(&npy_cfg(&good_x, &neg), 0));
    assert!(msg.contains("neg.npy") && msg.contains("negative"), "{msg}");

    let missing = dir.join("missing.npy");
    let err = load(&npy_cfg(&good_x, &missing), 0).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("missing.npy"), "{err}");
}

// ---------- .npz ----------

#[test]
fn npz_stored_and_deflated() {
    let dir = temp_dir("npz");
    let x: Vec<f64> = (0..300).map(|v| (v % 7) as f64).collect();
    let members = [
        ("inputs.npy", npy_bytes("<f8", &[100, 3], &f64_bytes(&x))),
        ("targets.npy", npy_bytes("|u1", &[100], &[3u8; 100])),
    ];
    for (name, method) in [
        ("stored.npz", zip::CompressionMethod::Stored),
        ("deflated.npz", zip::CompressionMethod::Deflated),
    ] {
        let path = dir.join(name);
        write_npz(&path, method, &members);
        let cfg = DataConfig {
            source: "npz".into(),
            path: Some(path.clone()),
            x_key: "inputs".into(),
            y_key: "targets".into(),
            ..DataConfig::default()
        };
        let ds = load(&cfg, 0).unwrap().train;
        assert_eq!((ds.n, ds.d), (100, 3), "{name}");
        assert_eq!(ds.x, x, "{name}");
        assert_eq!(labels(&ds), (&[3usize; 100][..], 4), "{name}");

        let cfg = DataConfig {
            y_key: "labels".into(),
            ..cfg
        };
        let msg = err_msg(load(&cfg, 0));
        assert!(msg.contains(name) && msg.contains("'labels'"), "{msg}");
        assert!(msg.contains("inputs") && msg.contains("targets"), "{msg}");
    }

    let not_zip = dir.join("notzip.npz");
    write(&not_zip, b"definitely not a zip archive");
    let cfg = DataConfig {
        source: "npz".into(),
        path: Some(not_zip),
        ..DataConfig::default()
    };
    let msg = err_msg(load(&cfg, 0));
    assert!(msg.contains("notzip.npz"), "{msg}");
}

// ---------- MNIST ----------

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
    out.extend(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A tiny MNIST directory: `n` 2x3 images with pixel (i, p) = 10 i + p and
/// label i % 10; train files plain, test files gzipped when `gz`.
fn write_mnist(dir: &Path, gz: bool) {
    for (prefix, n) in [("train", 12u32), ("t10k", 5)] {
        let pixels: Vec<u8> = (0..n)
            .flat_map(|i| (0..6).map(move |p| (10 * i + p) as u8))
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let images = idx_bytes(0x803, &[n, 2, 3], &pixels);
        let labels = idx_bytes(0x801, &[n], &labels);
        let (img_name, lab_name) = (
            format!("{prefix}-images-idx3-ubyte"),
            format!("{prefix}-labels-idx1-ubyte"),
        );
        if gz && prefix == "t10k" {
            write(&dir.join(format!("{img_name}.gz")), &gzip(&images));
            write(&dir.join(format!("{lab_name}.gz")), &gzip(&labels));
        } else {
            write(&dir.join(img_name), &images);
            write(&dir.join(lab_name), &labels);
        }
    }
}

fn mnist_cfg(dir: &Path) -> DataConfig {
    DataConfig {
        source: "mnist".into(),
        path: Some(dir.to_path_buf()),
        ..DataConfig::default()
    }
}

#[test]
fn mnist_plain_and_gz() {
    for gz in [false, true] {
        let dir = temp_dir(&format!("mnist-{gz}"));
        write_mnist(&dir, gz);
        let Split { train, test } = load(&mnist_cfg(&dir), 0).unwrap();
        let test = test.expect("MNIST has a test split");
        assert_eq!((train.n, train.d, test.n, test.d), (12, 6, 5, 6));
        assert_eq!(train.x[7 * 6 + 4], 74.0);
        assert_eq!(test.x[3 * 6 + 5], 35.0);
        assert_eq!(labels(&train).0[11], 1);
        assert_eq!(labels(&test), (&[0, 1, 2, 3, 4][..], 10));
    }
}

#[test]
fn mnist_errors_name_the_file() {
    let dir = temp_dir("mnist-errors");
    write_mnist(&dir, false);

    let labels_path = dir.join("train-labels-idx1-ubyte");
    let mut labels: Vec<u8> = (0..12).map(|i| i % 10).collect();
    labels[5] = 12;
    write(&labels_path, &idx_bytes(0x801, &[12], &labels));
    let msg = err_msg(load(&mnist_cfg(&dir), 0));
    assert!(
        msg.contains("train-labels-idx1-ubyte")
            && msg.contains("label 12 at row 5")
            && msg.contains("MNIST"),
        "{msg}"
    );
    // IDX files with more classes (EMNIST) load once the count is declared.
    let emnist = DataConfig {
        num_classes: Some(13),
        ..mnist_cfg(&dir)
    };
    assert_eq!(load(&emnist, 0).unwrap().train.out_dim(), 13);

    write(&labels_path, &idx_bytes(0x803, &[12], &[0; 12]));
    let msg = err_msg(load(&mnist_cfg(&dir), 0));
    assert!(
        msg.contains("train-labels-idx1-ubyte") && msg.contains("0x00000801"),
        "{msg}"
    );

    write(&labels_path, &idx_bytes(0x801, &[11], &[0; 11]));
    let msg = err_msg(load(&mnist_cfg(&dir), 0));
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("11 labels"),
        "{msg}"
    );

    let images_path = dir.join("train-images-idx3-ubyte");
    write(&labels_path, &idx_bytes(0x801, &[12], &[0; 12]));
    write(&images_path, &idx_bytes(0x803, &[12, 2, 3], &[0; 70]));
    let msg = err_msg(load(&mnist_cfg(&dir), 0));
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("72") && msg.contains("70"),
        "{msg}"
    );

    std::fs::remove_file(&images_path).unwrap();
    let msg = err_msg(load(&mnist_cfg(&dir), 0));
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("not found"),
        "{msg}"
    );
}

// ---------- CIFAR-10 ----------

fn cifar_records(labels: &[u8], first_pixel: u8) -> Vec<u8> {
    labels
        .iter()
        .enumerate()
        .flat_map(|(i, &l)| {
            std::iter::once(l)
                .chain((0..3072).map(move |p| (p as u8).wrapping_add(first_pixel + i as u8)))
        })
        .collect()
}

#[test]
fn cifar_batches() {
    let dir = temp_dir("cifar");
    write(&dir.join("data_batch_1.bin"), &cifar_records(&[3, 9], 0));
    write(
        &dir.join("data_batch_3.bin"),
        &cifar_records(&[0, 1, 2], 100),
    );
    write(&dir.join("test_batch.bin"), &cifar_records(&[7], 50));
    let cfg = DataConfig {
        source: "cifar10".into(),
        path: Some(dir.to_path_buf()),
        ..DataConfig::default()
    };
    let Split { train, test } = load(&cfg, 0).unwrap();
    let test = test.unwrap();
    assert_eq!((train.n, train.d, test.n), (5, 3072, 1));
    assert_eq!(labels(&train), (&[3, 9, 0, 1, 2][..], 10));
    assert_eq!(labels(&test).0, &[7]);
    // Record 3 (second of batch 3) starts at pixel value 100 + 1.
    assert_eq!(train.x[3 * 3072], 101.0);
    assert_eq!(train.x[3 * 3072 + 1024], ((1024 + 101) % 256) as f64);
    let five = DataConfig {
        num_classes: Some(5),
        ..cfg.clone()
    };
    let msg = err_msg(load(&five, 0));
    assert!(
        msg.contains("data_batch_1.bin")
            && msg.contains("label 9 at row 1")
            && msg.contains("data.num_classes = 5"),
        "{msg}"
    );

    let bad = dir.join("data_batch_2.bin");
    write(&bad, &cifar_records(&[1], 0)[..3000]);
    let msg = err_msg(load(&cfg, 0));
    assert!(
        msg.contains("data_batch_2.bin") && msg.contains("3073"),
        "{msg}"
    );
    std::fs::remove_file(&bad).unwrap();

    std::fs::remove_file(dir.join("test_batch.bin")).unwrap();
    let msg = err_msg(load(&cfg, 0));
    assert!(msg.contains("test_batch.bin"), "{msg}");
}

// ---------- preprocessing ----------

#[test]
fn standardize_uses_train_statistics() {
    let cfg = DataConfig {
        standardize: true,
        test_fraction: Some(0.25),
        ..DataConfig::default()
    };
    let Split { train, test } = load(&cfg, 3).unwrap();
    let test = test.unwrap();
    let raw = load(
        &DataConfig {
            test_fraction: Some(0.25),
            ..DataConfig::default()
        },
        3,
    )
    .unwrap();
    let (raw_train, raw_test) = (raw.train, raw.test.unwrap());
    let mut constant = 0;
    for j in 0..64 {
        let (mean, std) = col_stats(&train, j);
        let (raw_mean, raw_std) = col_stats(&raw_train, j);
        assert!(mean.abs() < 1e-12, "feature {j}: mean {mean}");
        if raw_std == 0.0 {
            constant += 1;
            assert!(train.x.iter().skip(j).step_by(64).all(|&v| v == 0.0));
        } else {
            assert!((std - 1.0).abs() < 1e-12, "feature {j}: std {std}");
            // The test set is transformed with the train set's numbers.
            let want = (raw_test.x[j] - raw_mean) / raw_std;
            assert!((test.x[j] - want).abs() < 1e-12);
        }
    }
    assert!(constant >= 1, "digits has constant border pixels");
}

#[test]
fn standardize_leaves_nearly_constant_features_finite() {
    let dir = temp_dir("standardize-const");
    // Feature 0 is 0.1 everywhere (its computed std is rounding noise),
    // feature 1 varies.
    let x: Vec<f64> = (0..7).flat_map(|i| [0.1, i as f64]).collect();
    write(
        &dir.join("x.npy"),
        &npy_bytes("<f8", &[7, 2], &f64_bytes(&x)),
    );
    write(&dir.join("y.npy"), &npy_bytes("|u1", &[7], &[0; 7]));
    let cfg = DataConfig {
        standardize: true,
        ..npy_cfg(&dir.join("x.npy"), &dir.join("y.npy"))
    };
    let ds = load(&cfg, 0).unwrap().train;
    assert!(
        ds.x.iter().step_by(2).all(|v| v.abs() < 1e-15),
        "{:?}",
        ds.x
    );
    assert!((col_stats(&ds, 1).1 - 1.0).abs() < 1e-12);
}

#[test]
fn one_hot_matches_labels() {
    let base = load(&DataConfig::default(), 0).unwrap().train;
    let cfg = DataConfig {
        one_hot: true,
        ..DataConfig::default()
    };
    let ds = load(&cfg, 0).unwrap().train;
    let (v, k) = values(&ds);
    assert_eq!((k, ds.out_dim()), (10, 10));
    for (i, &label) in labels(&base).0.iter().enumerate() {
        let row = &v[i * 10..(i + 1) * 10];
        for (c, &e) in row.iter().enumerate() {
            assert_eq!(e, if c == label { 1.0 } else { 0.0 });
        }
    }
}

#[test]
fn n_train_takes_the_first_examples_and_then_transforms() {
    let full = load(&DataConfig::default(), 0).unwrap().train;
    let cfg = DataConfig {
        n_train: Some(50),
        scale: Some(0.5),
        ..DataConfig::default()
    };
    let ds = load(&cfg, 0).unwrap().train;
    assert_eq!(ds.n, 50);
    let first = full.take_first(50);
    assert_eq!(ds.y, first.y);
    assert!(ds.x.iter().zip(&first.x).all(|(a, b)| *a == 0.5 * b));

    // Standardization statistics are those of the 50 kept examples.
    let cfg = DataConfig {
        n_train: Some(50),
        standardize: true,
        ..DataConfig::default()
    };
    let ds = load(&cfg, 0).unwrap().train;
    assert!((0..64).all(|j| col_stats(&ds, j).0.abs() < 1e-12));

    let cfg = DataConfig {
        n_train: Some(5000),
        ..DataConfig::default()
    };
    let msg = err_msg(load(&cfg, 0));
    assert!(
        msg.contains("data.n_train") && msg.contains("1797"),
        "{msg}"
    );
}

#[test]
fn test_fraction_holds_out_a_seeded_disjoint_part() {
    let (_dir, cfg) = indexed_npy("test-fraction", 100);
    let cfg = DataConfig {
        test_fraction: Some(0.2),
        ..cfg
    };
    let Split { train, test } = load(&cfg, 1).unwrap();
    let test = test.unwrap();
    assert_eq!((train.n, test.n), (80, 20));
    let mut all: Vec<f64> = train.x.iter().chain(&test.x).cloned().collect();
    // Without `shuffle`, each part keeps file order.
    assert!(train.x.windows(2).all(|w| w[0] < w[1]));
    assert!(test.x.windows(2).all(|w| w[0] < w[1]));
    all.sort_by(f64::total_cmp);
    assert_eq!(all, (0..100).map(|i| i as f64).collect::<Vec<_>>());
    // Targets travel with their inputs.
    let (y, _) = labels(&train);
    assert!(train.x.iter().zip(y).all(|(x, &l)| *x as usize % 3 == l));

    assert_eq!(load(&cfg, 1).unwrap().test.unwrap(), test);
    assert_ne!(load(&cfg, 2).unwrap().test.unwrap(), test);

    // n_train then takes the first of the remaining train examples.
    let cfg2 = DataConfig {
        n_train: Some(10),
        n_test: Some(5),
        ..cfg.clone()
    };
    let split = load(&cfg2, 1).unwrap();
    assert_eq!(split.train, train.take_first(10));
    assert_eq!(split.test.unwrap(), test.take_first(5));

    let tiny = DataConfig {
        test_fraction: Some(0.001),
        ..cfg
    };
    let msg = err_msg(load(&tiny, 1));
    assert!(msg.contains("data.test_fraction"), "{msg}");
}

#[test]
fn shuffle_is_seeded() {
    let (_dir, cfg) = indexed_npy("shuffle", 100);
    let first: Vec<f64> = (0..10).map(|i| i as f64).collect();
    let cfg = DataConfig {
        n_train: Some(10),
        ..cfg
    };
    assert_eq!(load(&cfg, 0).unwrap().train.x, first);
    let cfg = DataConfig {
        shuffle: true,
        ..cfg
    };
    let a = load(&cfg, 0).unwrap().train;
    assert_ne!(a.x, first);
    assert_eq!(load(&cfg, 0).unwrap().train, a);
    assert_ne!(load(&cfg, 1).unwrap().train, a);
    let (y, _) = labels(&a);
    assert!(a.x.iter().zip(y).all(|(x, &l)| *x as usize % 3 == l));
}

#[test]
fn dataset_helpers() {
    let ds = Dataset::new(
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        3,
        2,
        Targets::Values {
            y: vec![10.0, 11.0, 12.0],
            k: 1,
        },
    )
    .unwrap();
    let s = ds.subset(&[2, 0, 2]);
    assert_eq!(s.x, vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    assert_eq!(
        s.y,
        Targets::Values {
            y: vec![12.0, 10.0, 12.0],
            k: 1
        }
    );
    assert_eq!(ds.take_first(2).n, 2);
    assert_eq!(ds.take_first(9).n, 3);
    assert!(Dataset::new(
        vec![0.0; 5],
        3,
        2,
        Targets::Labels {
            y: vec![0; 3],
            classes: 1
        }
    )
    .is_err());
    assert!(Dataset::new(
        vec![0.0; 6],
        3,
        2,
        Targets::Labels {
            y: vec![0, 1, 2],
            classes: 2
        }
    )
    .is_err());
}

// ---------- synthetic tasks ----------

#[test]
fn chebyshev_matches_cosine_form() {
    for k in [0usize, 1, 4, 7] {
        let cfg = DataConfig {
            source: "chebyshev".into(),
            n: 101,
            degree: k,
            n_test: Some(40),
            ..DataConfig::default()
        };
        let Split { train, test } = load(&cfg, 0).unwrap();
        let test = test.unwrap();
        assert_eq!((train.n, train.d, train.out_dim(), test.n), (101, 1, 1, 40));
        assert_eq!((train.x[0], train.x[50], train.x[100]), (-1.0, 0.0, 1.0));
        assert!((test.x[0] + 1.0 - 1.0 / 40.0).abs() < 1e-15);
        for ds in [&train, &test] {
            let (y, _) = values(ds);
            for (x, y) in ds.x.iter().zip(y) {
                let want = (k as f64 * x.acos()).cos();
                assert!((y - want).abs() < 1e-12, "T_{k}({x}) = {y}, want {want}");
            }
        }
    }
}

/// Cross product X^T Y / n of a data set with k values per example: [d, k].
fn cross(ds: &Dataset, other: &[f64], k: usize) -> Vec<f64> {
    let mut c = vec![0.0; ds.d * k];
    for i in 0..ds.n {
        for a in 0..ds.d {
            for b in 0..k {
                c[a * k + b] += ds.x[i * ds.d + a] * other[i * k + b] / ds.n as f64;
            }
        }
    }
    c
}

#[test]
fn linear_inputs_are_whitened_and_singular_values_hold() {
    let s = [3.0, 2.0, 0.5];
    let cfg = DataConfig {
        source: "linear".into(),
        n: 64,
        input_dim: 5,
        output_dim: 4,
        singular_values: Some(s.to_vec()),
        n_test: Some(7),
        ..DataConfig::default()
    };
    let Split { train, test } = load(&cfg, 11).unwrap();
    assert_eq!((train.n, train.d, train.out_dim()), (64, 5, 4));
    assert_eq!((test.as_ref().unwrap().n, test.as_ref().unwrap().d), (7, 5));
    let gram = cross(&train, &train.x, 5);
    for a in 0..5 {
        for b in 0..5 {
            let want = if a == b { 1.0 } else { 0.0 };
            assert!(
                (gram[a * 5 + b] - want).abs() < 1e-10,
                "gram[{a},{b}] = {}",
                gram[a * 5 + b]
            );
        }
    }
    // With whitened inputs, X^T Y / n = A^T; its Gram matrix M = A A^T has
    // eigenvalues s^2 (and a zero), pinned down by traces of M, M^2, M^3.
    let (y, k) = values(&train);
    let at = cross(&train, y, k); // [5, 4]
    let mut m = vec![0.0; 16];
    for i in 0..4 {
        for j in 0..4 {
            m[i * 4 + j] = (0..5).map(|c| at[c * 4 + i] * at[c * 4 + j]).sum();
        }
    }
    let mul = |p: &[f64], q: &[f64]| -> Vec<f64> {
        (0..16)
            .map(|ij| (0..4).map(|c| p[ij / 4 * 4 + c] * q[c * 4 + ij % 4]).sum())
            .collect()
    };
    let trace = |p: &[f64]| (0..4).map(|i| p[i * 5]).sum::<f64>();
    let m2 = mul(&m, &m);
    let m3 = mul(&m2, &m);
    for (p, t) in [(1, trace(&m)), (2, trace(&m2)), (3, trace(&m3))] {
        let want: f64 = s.iter().map(|v: &f64| v.powi(2 * p)).sum();
        assert!(
            (t - want).abs() < 1e-9 * want,
            "trace(M^{p}) = {t}, want {want}"
        );
    }

    // Without singular values A is Gaussian; still whitened, and seeded.
    let cfg = DataConfig {
        singular_values: None,
        n_test: None,
        ..cfg
    };
    let a = load(&cfg, 5).unwrap().train;
    assert_eq!(a, load(&cfg, 5).unwrap().train);
    assert_ne!(a, load(&cfg, 6).unwrap().train);
}

#[test]
fn teacher_student_is_deterministic_per_seed() {
    let cfg = DataConfig {
        source: "teacher_student".into(),
        n: 200,
        input_dim: 6,
        output_dim: 2,
        teacher_width: 16,
        teacher_depth: 3,
        ..DataConfig::default()
    };
    let a = load(&cfg, 42).unwrap();
    assert!(a.test.is_none());
    assert_eq!((a.train.n, a.train.d, a.train.out_dim()), (200, 6, 2));
    assert_eq!(load(&cfg, 42).unwrap(), a);
    let b = load(&cfg, 43).unwrap();
    assert_ne!(b.train.x, a.train.x);

    // Inputs are standard normal.
    let (mean, std) = col_stats(&a.train, 0);
    assert!(
        mean.abs() < 0.3 && (std - 1.0).abs() < 0.3,
        "mean {mean}, std {std}"
    );

    // A test set is fresh inputs through the same teacher; it leaves the
    // train set alone, and a larger n keeps the first points.
    let with_test = load(
        &DataConfig {
            n_test: Some(30),
            ..cfg.clone()
        },
        42,
    )
    .unwrap();
    assert_eq!(with_test.train, a.train);
    assert_eq!(with_test.test.as_ref().unwrap().n, 30);
    let bigger = load(
        &DataConfig {
            n: 300,
            ..cfg.clone()
        },
        42,
    )
    .unwrap()
    .train;
    assert_eq!(bigger.take_first(200), a.train);

    // Noise changes targets but not inputs.
    let noisy = load(
        &DataConfig {
            noise_std: 0.1,
            ..cfg.clone()
        },
        42,
    )
    .unwrap()
    .train;
    assert_eq!(noisy.x, a.train.x);
    let diff: Vec<f64> = values(&noisy)
        .0
        .iter()
        .zip(values(&a.train).0)
        .map(|(p, q)| p - q)
        .collect();
    let rms = (diff.iter().map(|v| v * v).sum::<f64>() / diff.len() as f64).sqrt();
    assert!((rms - 0.1).abs() < 0.02, "noise rms {rms}");

    // With identity activations the teacher is linear: for d = 1 every
    // output is a fixed multiple of x; tanh bends it.
    let ratios = |act: &str| -> Vec<f64> {
        let c = DataConfig {
            input_dim: 1,
            output_dim: 1,
            teacher_activation: act.into(),
            ..cfg.clone()
        };
        let ds = load(&c, 7).unwrap().train;
        ds.x.iter().zip(values(&ds).0).map(|(x, y)| y / x).collect()
    };
    let lin = ratios("identity");
    assert!(
        lin.iter().all(|r| (r - lin[0]).abs() < 1e-9 * lin[0].abs()),
        "{lin:?}"
    );
    let bent = ratios("tanh");
    assert!(bent
        .iter()
        .any(|r| (r - bent[0]).abs() > 1e-3 * bent[0].abs()));
}

// ---------- config ----------

#[test]
fn validate_names_the_key() {
    let npy = DataConfig {
        source: "npy".into(),
        x_path: Some("x.npy".into()),
        y_path: Some("y.npy".into()),
        ..DataConfig::default()
    };
    let synth = |src: &str| DataConfig {
        source: src.into(),
        ..DataConfig::default()
    };
    let npz = DataConfig {
        source: "npz".into(),
        path: Some("set.npz".into()),
        x_test_key: Some("x_test".into()),
        y_test_key: Some("y_test".into()),
        ..DataConfig::default()
    };
    let cases: Vec<(DataConfig, &str)> = vec![
        (
            DataConfig {
                y_test_key: None,
                ..npz.clone()
            },
            "data.y_test_key",
        ),
        (
            DataConfig {
                x_test_key: Some(String::new()),
                ..npz.clone()
            },
            "data.x_test_key",
        ),
        (
            DataConfig {
                x_test_key: Some("x_test".into()),
                ..DataConfig::default()
            },
            "data.x_test_key",
        ),
        (
            DataConfig {
                test_fraction: Some(0.2),
                ..npz.clone()
            },
            "data.test_fraction",
        ),
        (
            DataConfig {
                num_classes: Some(0),
                ..DataConfig::default()
            },
            "data.num_classes",
        ),
        (
            DataConfig {
                num_classes: Some(3),
                ..synth("teacher_student")
            },
            "data.num_classes",
        ),
        (synth("imagenet"), "data.source"),
        (
            DataConfig {
                test_fraction: Some(1.0),
                ..DataConfig::default()
            },
            "data.test_fraction",
        ),
        (
            DataConfig {
                test_fraction: Some(0.0),
                ..DataConfig::default()
            },
            "data.test_fraction",
        ),
        (
            DataConfig {
                test_fraction: Some(f64::NAN),
                ..DataConfig::default()
            },
            "data.test_fraction",
        ),
        (
            DataConfig {
                n: 0,
                ..synth("teacher_student")
            },
            "data.n",
        ),
        (
            DataConfig {
                n: 5,
                input_dim: 10,
                ..synth("linear")
            },
            "data.n",
        ),
        (
            DataConfig {
                x_path: None,
                ..npy.clone()
            },
            "data.x_path",
        ),
        (
            DataConfig {
                y_path: None,
                ..npy.clone()
            },
            "data.y_path",
        ),
        (
            DataConfig {
                test_x_path: Some("tx.npy".into()),
                ..npy.clone()
            },
            "data.test_y_path",
        ),
        (
            DataConfig {
                x_path: Some("x.npy".into()),
                ..DataConfig::default()
            },
            "data.x_path",
        ),
        (synth("npz"), "data.path"),
        (synth("mnist"), "data.path"),
        (
            DataConfig {
                n_test: Some(10),
                ..DataConfig::default()
            },
            "data.n_test",
        ),
        (
            DataConfig {
                n_train: Some(0),
                ..DataConfig::default()
            },
            "data.n_train",
        ),
        (
            DataConfig {
                scale: Some(f64::INFINITY),
                ..DataConfig::default()
            },
            "data.scale",
        ),
        (
            DataConfig {
                teacher_activation: "gelu".into(),
                ..synth("teacher_student")
            },
            "data.teacher_activation",
        ),
        (
            DataConfig {
                teacher_depth: 0,
                ..synth("teacher_student")
            },
            "data.teacher_depth",
        ),
        (
            DataConfig {
                noise_std: -1.0,
                ..synth("chebyshev")
            },
            "data.noise_std",
        ),
        (
            DataConfig {
                one_hot: true,
                ..synth("chebyshev")
            },
            "data.one_hot",
        ),
        (
            DataConfig {
                n: 1,
                ..synth("chebyshev")
            },
            "data.n",
        ),
        (
            DataConfig {
                singular_values: Some(vec![1.0, 2.0]),
                ..synth("linear")
            },
            "data.singular_values",
        ),
        (
            DataConfig {
                singular_values: Some(vec![1.0]),
                ..DataConfig::default()
            },
            "data.singular_values",
        ),
        (
            DataConfig {
                source: "mnist".into(),
                path: Some("m".into()),
                test_fraction: Some(0.1),
                ..DataConfig::default()
            },
            "data.test_fraction",
        ),
        (
            DataConfig {
                n_test: Some(5),
                test_fraction: Some(0.1),
                ..synth("linear")
            },
            "data.test_fraction",
        ),
    ];
    for (cfg, key) in cases {
        let err = cfg.validate().expect_err(key);
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("`{key}`")),
            "{key}: {err}"
        );
        // load() refuses the same config before touching any file.
        assert!(load(&cfg, 0).is_err());
    }
    let msg = err_msg(synth("imagenet").validate());
    assert!(
        msg.contains("teacher_student") && msg.contains("cifar10"),
        "{msg}"
    );

    for ok in [
        DataConfig::default(),
        npy,
        npz,
        synth("teacher_student"),
        synth("chebyshev"),
        synth("linear"),
    ] {
        ok.validate().unwrap();
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RunConfig {
    #[serde(default)]
    data: DataConfig,
}

#[test]
fn toml_data_table() {
    let run: RunConfig = toml::from_str(
        "[data]\nsource = 'npy'\nx_path = 'a.npy'\ny_path = 'b.npy'\nn_train = 100\nscale = 0.0625\nstandardize = true\n",
    )
    .unwrap();
    let d = run.data;
    assert_eq!(d.source, "npy");
    assert_eq!(d.x_path.as_deref(), Some(Path::new("a.npy")));
    assert_eq!(
        (d.n_train, d.scale, d.standardize),
        (Some(100), Some(0.0625), true)
    );
    assert_eq!(d.n, 1000, "unnamed keys keep their defaults");

    let run: RunConfig = toml::from_str("").unwrap();
    assert_eq!(run.data, DataConfig::default());

    let err = toml::from_str::<RunConfig>("[data]\nsorce = 'digits'\n")
        .err()
        .expect("unknown key");
    assert!(err.to_string().contains("sorce"), "{err}");

    let linear = DataConfig {
        source: "linear".into(),
        singular_values: Some(vec![2.0, 1.0]),
        ..DataConfig::default()
    };
    let text = toml::to_string(&linear).unwrap();
    assert_eq!(toml::from_str::<DataConfig>(&text).unwrap(), linear);
}
