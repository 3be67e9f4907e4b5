//! Data validated on load: non-finite values and out-of-range labels are
//! refused naming the file, the array and the first bad index, whatever the
//! preprocessing; `data.num_classes` fixes the model's outputs; an `.npz`
//! archive's own test split is read through `x_test_key` / `y_test_key`.

mod common;

use common::{f64_bytes, i64_bytes, npy_bytes, temp_dir, write_npz};
use lmech::data::{load, DataConfig, Split, Targets};
use lmech::error::Error;
use std::path::Path;
use zip::CompressionMethod::Stored;

const BAD: [(f64, &str); 3] = [
    (f64::NAN, "NaN"),
    (f64::INFINITY, "+inf"),
    (f64::NEG_INFINITY, "-inf"),
];

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// `n` rows of `d` finite inputs.
fn inputs(n: usize, d: usize) -> Vec<f64> {
    (0..n * d).map(|v| v as f64 * 0.5).collect()
}

fn npy_cfg(dir: &Path) -> DataConfig {
    DataConfig {
        source: "npy".into(),
        x_path: Some(dir.join("x.npy")),
        y_path: Some(dir.join("y.npy")),
        ..DataConfig::default()
    }
}

/// Writes `x` as a [4, 3] `<f8` array.
fn write_inputs(path: impl AsRef<Path>, x: &[f64]) {
    write(path.as_ref(), &npy_bytes("<f8", &[4, 3], &f64_bytes(x)));
}

/// Writes x.npy ([4, 3] inputs `x`) and y.npy (`<i8` labels `y`) into `dir`.
fn write_pair(dir: &Path, x: &[f64], y: &[i64]) {
    write_inputs(dir.join("x.npy"), x);
    write(
        &dir.join("y.npy"),
        &npy_bytes("<i8", &[y.len()], &i64_bytes(y)),
    );
}

fn err_msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message does not mention {p:?}: {msg}");
    }
}

fn classes(t: &Targets) -> usize {
    match t {
        Targets::Labels { classes, .. } => *classes,
        other => panic!("expected labels, got {other:?}"),
    }
}

// ---------- non-finite values ----------

#[test]
fn non_finite_npy_inputs_are_refused_even_when_scaled_away() {
    let dir = temp_dir("nonfinite-x");
    for (bad, name) in BAD {
        let mut x = inputs(4, 3);
        x[2 * 3 + 1] = bad;
        write_pair(&dir, &x, &[0, 1, 2, 0]);
        // A scale of 0 would turn an infinity into NaN and train on it.
        for scale in [None, Some(0.0)] {
            let cfg = DataConfig {
                scale,
                standardize: true,
                ..npy_cfg(&dir)
            };
            let err = load(&cfg, 0).unwrap_err();
            assert!(matches!(err, Error::Data { .. }), "{err}");
            assert_mentions(
                &err.to_string(),
                &["x.npy", "x[2, 1]", "row 2, column 1", &format!("is {name}")],
            );
        }
    }
}

#[test]
fn non_finite_values_of_a_flattened_example_name_its_column() {
    let dir = temp_dir("nonfinite-3d");
    let mut x = inputs(2, 4);
    x[4 + 2] = f64::NAN;
    write(
        &dir.join("x.npy"),
        &npy_bytes("<f8", &[2, 2, 2], &f64_bytes(&x)),
    );
    write(&dir.join("y.npy"), &npy_bytes("|u1", &[2], &[0, 1]));
    let msg = err_msg(load(&npy_cfg(&dir), 0));
    assert_mentions(
        &msg,
        &[
            "x.npy",
            "x[1, 1, 0]",
            "row 1, column 2 of the flattened example",
        ],
    );
}

#[test]
fn non_finite_npy_float_targets_are_refused() {
    let dir = temp_dir("nonfinite-y");
    write_inputs(dir.join("x.npy"), &inputs(4, 3));
    for (bad, name) in BAD {
        let mut y = vec![0.5; 8];
        y[3 * 2] = bad;
        write(
            &dir.join("y.npy"),
            &npy_bytes("<f8", &[4, 2], &f64_bytes(&y)),
        );
        let msg = err_msg(load(&npy_cfg(&dir), 0));
        assert_mentions(&msg, &["y.npy", "y[3, 0]", "row 3", name]);

        // f4 targets widen to f64 with their NaN or infinity intact.
        let y32: Vec<u8> = [1.0, bad as f32, 0.0, 2.0]
            .iter()
            .flat_map(|v: &f32| v.to_le_bytes())
            .collect();
        write(&dir.join("y.npy"), &npy_bytes("<f4", &[4], &y32));
        let msg = err_msg(load(&npy_cfg(&dir), 0));
        assert_mentions(&msg, &["y.npy", "y[1] (row 1)", name]);
    }
}

#[test]
fn non_finite_npy_test_set_is_refused() {
    let dir = temp_dir("nonfinite-test");
    write_pair(&dir, &inputs(4, 3), &[0, 1, 2, 0]);
    let mut tx = inputs(2, 3);
    tx[5] = f64::INFINITY;
    write(
        &dir.join("tx.npy"),
        &npy_bytes("<f8", &[2, 3], &f64_bytes(&tx)),
    );
    write(&dir.join("ty.npy"), &npy_bytes("|u1", &[2], &[1, 0]));
    let cfg = DataConfig {
        test_x_path: Some(dir.join("tx.npy")),
        test_y_path: Some(dir.join("ty.npy")),
        ..npy_cfg(&dir)
    };
    let msg = err_msg(load(&cfg, 0));
    assert_mentions(&msg, &["tx.npy", "x_test[1, 2]", "+inf"]);

    write(
        &dir.join("tx.npy"),
        &npy_bytes("<f8", &[2, 3], &f64_bytes(&inputs(2, 3))),
    );
    write(
        &dir.join("ty.npy"),
        &npy_bytes("<i8", &[2], &i64_bytes(&[1, 3])),
    );
    let msg = err_msg(load(&cfg, 0));
    assert_mentions(&msg, &["ty.npy", "label 3 at row 1 of y_test", "0..3"]);
}

/// An archive with train arrays `x`, `y` and a test split `x_test`, `y_test`.
fn write_archive(path: &Path, x: &[f64], y: &[i64], x_test: &[f64], y_test: &[i64]) {
    write_npz(
        path,
        Stored,
        &[
            ("x.npy", npy_bytes("<f8", &[4, 3], &f64_bytes(x))),
            ("y.npy", npy_bytes("<i8", &[4], &i64_bytes(y))),
            ("x_test.npy", npy_bytes("<f8", &[2, 3], &f64_bytes(x_test))),
            ("y_test.npy", npy_bytes("<i8", &[2], &i64_bytes(y_test))),
        ],
    );
}

fn npz_cfg(path: &Path) -> DataConfig {
    DataConfig {
        source: "npz".into(),
        path: Some(path.to_path_buf()),
        x_test_key: Some("x_test".into()),
        y_test_key: Some("y_test".into()),
        ..DataConfig::default()
    }
}

#[test]
fn non_finite_npz_arrays_are_refused_naming_the_key() {
    let dir = temp_dir("nonfinite-npz");
    let path = dir.join("set.npz");
    let (x, tx) = (inputs(4, 3), inputs(2, 3));
    for (bad, name) in BAD {
        let mut bad_x = x.clone();
        bad_x[0] = bad;
        write_archive(&path, &bad_x, &[0, 1, 2, 0], &tx, &[0, 1]);
        let msg = err_msg(load(&npz_cfg(&path), 0));
        assert_mentions(&msg, &["set.npz", "x[0, 0]", name]);

        let mut bad_tx = tx.clone();
        bad_tx[4] = bad;
        write_archive(&path, &x, &[0, 1, 2, 0], &bad_tx, &[0, 1]);
        let msg = err_msg(load(&npz_cfg(&path), 0));
        assert_mentions(&msg, &["set.npz", "x_test[1, 1]", "row 1, column 1", name]);
    }
}

// ---------- labels and data.num_classes ----------

#[test]
fn labels_outside_num_classes_are_refused_naming_value_and_row() {
    let dir = temp_dir("labels-range");
    write_pair(&dir, &inputs(4, 3), &[0, 1, 99, 2]);
    let cfg = DataConfig {
        num_classes: Some(10),
        ..npy_cfg(&dir)
    };
    let msg = err_msg(load(&cfg, 0));
    assert_mentions(
        &msg,
        &[
            "y.npy",
            "label 99 at row 2",
            "0..10",
            "data.num_classes = 10",
        ],
    );

    // A count below the largest label is refused the same way.
    write_pair(&dir, &inputs(4, 3), &[0, 1, 4, 2]);
    let cfg = DataConfig {
        num_classes: Some(3),
        ..npy_cfg(&dir)
    };
    let msg = err_msg(load(&cfg, 0));
    assert_mentions(&msg, &["y.npy", "label 4 at row 2", "data.num_classes = 3"]);
}

#[test]
fn negative_labels_are_refused_naming_value_and_row() {
    let dir = temp_dir("labels-negative");
    write_pair(&dir, &inputs(4, 3), &[0, 1, 2, -7]);
    let msg = err_msg(load(&npy_cfg(&dir), 0));
    assert_mentions(&msg, &["y.npy", "label -7 at row 3", "negative"]);
    let i1: Vec<u8> = [0i8, -1, 1, 0].iter().map(|&v| v as u8).collect();
    write(&dir.join("y.npy"), &npy_bytes("|i1", &[4], &i1));
    let msg = err_msg(load(&npy_cfg(&dir), 0));
    assert_mentions(&msg, &["y.npy", "label -1 at row 1"]);
}

#[test]
fn num_classes_sets_the_outputs_and_the_one_hot_width() {
    let dir = temp_dir("labels-count");
    // The labels miss the top class 4: inferred, the model would have 3 outputs.
    write_pair(&dir, &inputs(4, 3), &[0, 1, 2, 0]);
    assert_eq!(load(&npy_cfg(&dir), 0).unwrap().train.out_dim(), 3);
    let cfg = DataConfig {
        num_classes: Some(5),
        ..npy_cfg(&dir)
    };
    let train = load(&cfg, 0).unwrap().train;
    assert_eq!((classes(&train.y), train.out_dim()), (5, 5));
    let cfg = DataConfig {
        one_hot: true,
        ..cfg
    };
    let train = load(&cfg, 0).unwrap().train;
    let Targets::Values { y, k } = &train.y else {
        panic!("one_hot makes values")
    };
    assert_eq!(*k, 5);
    assert_eq!(&y[5..10], &[0.0, 1.0, 0.0, 0.0, 0.0]);

    // The bundled digits take a declared count too.
    let digits = DataConfig {
        num_classes: Some(12),
        ..DataConfig::default()
    };
    assert_eq!(load(&digits, 0).unwrap().train.out_dim(), 12);
    let digits = DataConfig {
        num_classes: Some(9),
        ..DataConfig::default()
    };
    let msg = err_msg(load(&digits, 0));
    assert_mentions(
        &msg,
        &["digits/y.npy", "label 9 at row", "data.num_classes = 9"],
    );
}

#[test]
fn num_classes_is_refused_for_real_valued_targets() {
    let dir = temp_dir("labels-values");
    write_inputs(dir.join("x.npy"), &inputs(4, 3));
    write(
        &dir.join("y.npy"),
        &npy_bytes("<f8", &[4], &f64_bytes(&[0.0, 1.0, 2.0, 1.0])),
    );
    let cfg = DataConfig {
        num_classes: Some(3),
        ..npy_cfg(&dir)
    };
    let err = load(&cfg, 0).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert_mentions(
        &err.to_string(),
        &["data.num_classes", "y.npy", "real values"],
    );
}

// ---------- npz test split ----------

#[test]
fn npz_test_split_is_read_from_its_keys() {
    let dir = temp_dir("npz-test-split");
    let path = dir.join("set.npz");
    let tx = vec![9.0, 8.0, 7.0, 6.0, 5.0, 4.0];
    write_archive(&path, &inputs(4, 3), &[0, 1, 2, 1], &tx, &[2, 0]);
    let Split { train, test } = load(&npz_cfg(&path), 0).unwrap();
    let test = test.expect("the archive's test split");
    assert_eq!((train.n, test.n, test.d), (4, 2, 3));
    assert_eq!(test.x, tx);
    assert_eq!(
        test.y,
        Targets::Labels {
            y: vec![2, 0],
            classes: 3
        }
    );

    // Its labels are held to the train class count...
    write_archive(&path, &inputs(4, 3), &[0, 1, 2, 1], &tx, &[2, 7]);
    let msg = err_msg(load(&npz_cfg(&path), 0));
    assert_mentions(
        &msg,
        &[
            "set.npz",
            "label 7 at row 1 of y_test",
            "0..3",
            "data.num_classes",
        ],
    );
    // ... which data.num_classes can set.
    let cfg = DataConfig {
        num_classes: Some(8),
        ..npz_cfg(&path)
    };
    assert_eq!(classes(&load(&cfg, 0).unwrap().test.unwrap().y), 8);

    // A split in the archive leaves nothing to hold out.
    let cfg = DataConfig {
        test_fraction: Some(0.5),
        ..npz_cfg(&path)
    };
    let msg = err_msg(load(&cfg, 0));
    assert_mentions(&msg, &["data.test_fraction", "test split"]);

    // A missing key lists what the archive holds.
    let cfg = DataConfig {
        y_test_key: Some("labels_test".into()),
        ..npz_cfg(&path)
    };
    let msg = err_msg(load(&cfg, 0));
    assert_mentions(&msg, &["set.npz", "'labels_test'", "x, x_test, y, y_test"]);
}
