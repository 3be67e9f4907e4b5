//! Sequence data and the sequence loss: the `modular`, `sort`, `copy` and
//! `tokens` sources hold their ground truth and seeded splits and refuse
//! bad keys and bad token files by name (ignored targets of `tokens` given
//! as negative ids); `check_token_ids` names the row, position and value it
//! refuses; cross-entropy on labels `[B, T]` is the mean over
//! all positions, with its gradient and Hessian-vector product checked
//! against finite differences (f64), accuracy counted by position, and one
//! sequence weighed as one example by the per-sample observers; `lmech
//! train` runs a sequence task end to end and refuses a model whose output
//! shape does not fit the targets.

mod common;

use common::{
    f64_bytes, fd_check, i64_bytes, max_rel_err, npy_bytes, randn, temp_dir, tensor, values,
};
use lmech::curvature::flatten;
use lmech::data::{check_token_ids, load, DataConfig, Dataset, Split, Targets};
use lmech::error::Error;
use lmech::nn::graph::ModelSpec;
use lmech::nn::layer_spec::LayerSpec;
use lmech::nn::loss::{labels_correct, LossKind};
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::shape::Shape;
use lmech::observe::per_sample::per_sample_norms;
use lmech::rng::Rng;
use lmech::tape::{Curvature, LossHead, Tape};
use lmech::Cpu;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

// ---------------------------------------------------------------- helpers

fn err_msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message does not mention {p:?}: {msg}");
    }
}

fn modular_cfg(p: usize, op: &str) -> DataConfig {
    DataConfig {
        source: "modular".into(),
        p: Some(p),
        op: Some(op.into()),
        ..DataConfig::default()
    }
}

fn labels(ds: &Dataset) -> &[usize] {
    match &ds.y {
        Targets::Labels { y, .. } => y,
        other => panic!("expected labels, got {other:?}"),
    }
}

/// (labels, positions, classes) of sequence targets (`None`: ignored).
fn sequence(ds: &Dataset) -> (&[Option<usize>], usize, usize) {
    match &ds.y {
        Targets::Sequence { y, t, classes } => (y, *t, *classes),
        other => panic!("expected sequence targets, got {other:?}"),
    }
}

/// Every example of a split as (a, b), checking the `[a, b, p]` layout.
fn pairs(ds: &Dataset, p: usize) -> Vec<(usize, usize)> {
    assert_eq!(ds.d, 3);
    ds.x.chunks_exact(3)
        .map(|row| {
            assert_eq!(row[2], p as f64, "the third token is '=' (id p)");
            (row[0] as usize, row[1] as usize)
        })
        .collect()
}

fn test_set(split: &Split) -> &Dataset {
    split.test.as_ref().expect("a test set")
}

// ------------------------------------------------------------------ modular

#[test]
fn modular_labels_are_a_op_b_mod_p_for_every_op() {
    let p = 7;
    for op in ["+", "-", "*", "/"] {
        let split = load(&modular_cfg(p, op), 1).unwrap();
        for ds in [&split.train, test_set(&split)] {
            assert_eq!(ds.out_shape(), Shape::Flat(p), "{op}");
            for (&(a, b), &label) in pairs(ds, p).iter().zip(labels(ds)) {
                let (a, b, l, m) = (a as i64, b as i64, label as i64, p as i64);
                let ok = match op {
                    "+" => l == (a + b) % m,
                    "-" => l == (a - b).rem_euclid(m),
                    "*" => l == a * b % m,
                    // a / b is the c with c * b = a (mod p).
                    _ => (l * b) % m == a,
                };
                assert!(ok && l < m, "{a} {op} {b} mod {p} labelled {l}");
            }
        }
    }
}

#[test]
fn modular_division_leaves_out_a_zero_divisor() {
    let p = 11;
    let split = load(&modular_cfg(p, "/"), 2).unwrap();
    let all: Vec<(usize, usize)> = [&split.train, test_set(&split)]
        .iter()
        .flat_map(|ds| pairs(ds, p))
        .collect();
    assert!(all.iter().all(|&(_, b)| b != 0));
    assert_eq!(all.len(), p * (p - 1));
}

#[test]
fn modular_train_and_test_hold_every_pair_once() {
    let p = 13;
    let split = load(&modular_cfg(p, "*"), 3).unwrap();
    let train = pairs(&split.train, p);
    let test = pairs(test_set(&split), p);
    let train_set: BTreeSet<_> = train.iter().copied().collect();
    let test_set_: BTreeSet<_> = test.iter().copied().collect();
    assert_eq!(train_set.len(), train.len(), "a train pair repeats");
    assert_eq!(test_set_.len(), test.len(), "a test pair repeats");
    assert!(train_set.is_disjoint(&test_set_));
    let every: BTreeSet<_> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    let union: BTreeSet<_> = train_set.union(&test_set_).copied().collect();
    assert_eq!(union, every);
}

#[test]
fn modular_train_count_is_the_rounded_fraction_of_pairs() {
    for (p, op, fraction) in [(11, "+", 0.37), (7, "/", 0.5), (113, "-", 0.3)] {
        let cfg = DataConfig {
            train_fraction: Some(fraction),
            ..modular_cfg(p, op)
        };
        let split = load(&cfg, 4).unwrap();
        let total = if op == "/" { p * (p - 1) } else { p * p };
        let want = (fraction * total as f64).round() as usize;
        assert_eq!(split.train.n, want, "{p} {op} {fraction}");
        assert_eq!(test_set(&split).n, total - want);
    }
    // The defaults: p = 113, "+", 0.3 of the pairs.
    let split = load(
        &DataConfig {
            source: "modular".into(),
            ..DataConfig::default()
        },
        0,
    )
    .unwrap();
    assert_eq!(split.train.n, (0.3 * 113.0 * 113.0_f64).round() as usize);
    assert_eq!(split.train.out_shape(), Shape::Flat(113));
}

#[test]
fn modular_split_is_fixed_by_the_seed() {
    let cfg = modular_cfg(17, "+");
    let a = load(&cfg, 5).unwrap();
    assert_eq!(a, load(&cfg, 5).unwrap());
    let b = load(&cfg, 6).unwrap();
    assert_ne!(pairs(&a.train, 17), pairs(&b.train, 17));
}

#[test]
fn modular_n_train_and_n_test_cut_the_split() {
    let cfg = DataConfig {
        n_train: Some(10),
        n_test: Some(4),
        ..modular_cfg(7, "+")
    };
    let cut = load(&cfg, 7).unwrap();
    let whole = load(&modular_cfg(7, "+"), 7).unwrap();
    assert_eq!(cut.train, whole.train.take_first(10));
    assert_eq!(cut.test, Some(test_set(&whole).take_first(4)));
}

#[test]
fn modular_division_by_a_non_prime_is_refused_naming_data_p() {
    let msg = err_msg(load(&modular_cfg(12, "/"), 0));
    assert_mentions(&msg, &["data.p", "prime"]);
    // Other operations take any modulus.
    assert!(load(&modular_cfg(12, "-"), 0).is_ok());
}

#[test]
fn modular_unknown_op_is_refused_naming_data_op() {
    let msg = err_msg(load(&modular_cfg(7, "^"), 0));
    assert_mentions(&msg, &["data.op", "^", "+, -, *, /"]);
}

#[test]
fn keys_a_source_does_not_read_are_refused() {
    let cases = [
        (
            DataConfig {
                length: Some(4),
                ..modular_cfg(7, "+")
            },
            "data.length",
        ),
        (
            DataConfig {
                p: Some(7),
                ..DataConfig::default()
            },
            "data.p",
        ),
        (
            DataConfig {
                source: "sort".into(),
                train_fraction: Some(0.5),
                ..DataConfig::default()
            },
            "data.train_fraction",
        ),
        (
            DataConfig {
                source: "sort".into(),
                num_classes: Some(16),
                ..DataConfig::default()
            },
            "data.num_classes",
        ),
        (
            DataConfig {
                source: "sort".into(),
                one_hot: true,
                ..DataConfig::default()
            },
            "data.one_hot",
        ),
        (
            DataConfig {
                source: "teacher_student".into(),
                vocab: Some(16),
                ..DataConfig::default()
            },
            "data.vocab",
        ),
        (
            DataConfig {
                source: "modular".into(),
                test_fraction: Some(0.2),
                ..DataConfig::default()
            },
            "data.test_fraction",
        ),
    ];
    for (cfg, key) in cases {
        let msg = err_msg(cfg.validate());
        assert_mentions(&msg, &[key]);
    }
}

// --------------------------------------------------------------------- sort

fn sort_cfg(n: usize, n_test: Option<usize>) -> DataConfig {
    DataConfig {
        source: "sort".into(),
        n,
        n_test,
        length: Some(5),
        vocab: Some(7),
        ..DataConfig::default()
    }
}

#[test]
fn sort_labels_are_the_sorted_inputs() {
    let split = load(&sort_cfg(40, Some(20)), 8).unwrap();
    for ds in [&split.train, test_set(&split)] {
        let (y, t, _) = sequence(ds);
        for (row, want) in ds.x.chunks_exact(t).zip(y.chunks_exact(t)) {
            let mut sorted: Vec<usize> = row.iter().map(|&v| v as usize).collect();
            sorted.sort_unstable();
            let sorted: Vec<Option<usize>> = sorted.into_iter().map(Some).collect();
            assert_eq!(sorted, want);
        }
    }
}

#[test]
fn sort_shapes_follow_n_length_and_vocab() {
    let split = load(&sort_cfg(40, Some(20)), 9).unwrap();
    let test = test_set(&split);
    assert_eq!(
        (split.train.n, split.train.d, test.n, test.d),
        (40, 5, 20, 5)
    );
    let (y, t, classes) = sequence(&split.train);
    assert_eq!((y.len(), t, classes), (200, 5, 7));
    assert_eq!(split.train.out_shape(), Shape::Signal { c: 7, l: 5 });
    assert!(split
        .train
        .x
        .iter()
        .all(|&v| v.fract() == 0.0 && (0.0..7.0).contains(&v)));
    // The defaults: 8 tokens from 0..16.
    let split = load(
        &DataConfig {
            source: "sort".into(),
            n: 3,
            ..DataConfig::default()
        },
        0,
    )
    .unwrap();
    assert_eq!(split.train.out_shape(), Shape::Signal { c: 16, l: 8 });
}

#[test]
fn sort_sets_are_fixed_by_the_seed_and_train_does_not_see_n_test() {
    let a = load(&sort_cfg(30, Some(10)), 10).unwrap();
    assert_eq!(a, load(&sort_cfg(30, Some(10)), 10).unwrap());
    assert_ne!(
        a.train.x,
        load(&sort_cfg(30, Some(10)), 11).unwrap().train.x
    );
    assert_ne!(
        a.train.x[..50],
        test_set(&a).x[..],
        "train and test share a stream"
    );
    let more = load(&sort_cfg(30, Some(25)), 10).unwrap();
    assert_eq!(a.train, more.train);
    assert_eq!(test_set(&a).x[..], test_set(&more).x[..50]);
}

// --------------------------------------------------------------------- copy

fn copy_cfg(n: usize, n_test: Option<usize>) -> DataConfig {
    DataConfig {
        source: "copy".into(),
        n,
        n_test,
        length: Some(4),
        vocab: Some(6),
        ..DataConfig::default()
    }
}

#[test]
fn copy_examples_are_a_string_the_separator_and_the_string_scored_on_the_copy() {
    let (l, v) = (4, 6);
    let split = load(&copy_cfg(30, Some(10)), 12).unwrap();
    for ds in [&split.train, test_set(&split)] {
        let (y, t, classes) = sequence(ds);
        assert_eq!((ds.d, t, classes), (2 * l, 2 * l, v));
        assert_eq!(ds.out_shape(), Shape::Signal { c: v, l: 2 * l });
        assert_eq!(ds.y.scored(), ds.n * l, "the second copy is scored");
        for (x, y) in ds.x.chunks_exact(t).zip(y.chunks_exact(t)) {
            let s: Vec<usize> = x[..l].iter().map(|&c| c as usize).collect();
            assert!(s.iter().all(|&c| c < v), "{x:?}");
            assert_eq!(x[l], v as f64, "the separator is the id vocab: {x:?}");
            let again: Vec<usize> = x[l + 1..].iter().map(|&c| c as usize).collect();
            assert_eq!(again, s[..l - 1], "{x:?}");
            assert!(y[..l].iter().all(Option::is_none), "{y:?}");
            // Next-token labels: position t is labelled with token t + 1 of
            // the whole string s, sep, s.
            let mut whole = x.to_vec();
            whole.push(s[l - 1] as f64);
            for (t, label) in y.iter().enumerate().skip(l) {
                assert_eq!(*label, Some(whole[t + 1] as usize), "position {t}: {x:?}");
            }
        }
    }
}

#[test]
fn copy_sets_are_fixed_by_the_seed_and_sized_by_n_and_n_test() {
    let a = load(&copy_cfg(30, Some(10)), 13).unwrap();
    assert_eq!((a.train.n, test_set(&a).n), (30, 10));
    assert_eq!(a, load(&copy_cfg(30, Some(10)), 13).unwrap());
    assert_ne!(
        a.train.x,
        load(&copy_cfg(30, Some(10)), 14).unwrap().train.x
    );
    // The first n strings do not depend on how many are drawn, and the
    // test strings come from a stream of their own.
    let more = load(&copy_cfg(50, Some(20)), 13).unwrap();
    assert_eq!(more.train.take_first(30), a.train);
    assert_eq!(test_set(&more).take_first(10), *test_set(&a));
    assert_ne!(a.train.x[..80], test_set(&a).x[..]);
    assert!(load(&copy_cfg(30, None), 13).unwrap().test.is_none());
    // The defaults: strings of 8 tokens from 16 symbols.
    let split = load(
        &DataConfig {
            source: "copy".into(),
            n: 2,
            ..DataConfig::default()
        },
        0,
    )
    .unwrap();
    assert_eq!(split.train.out_shape(), Shape::Signal { c: 16, l: 16 });
}

#[test]
fn copy_bad_keys_are_refused_by_name() {
    let cases = [
        (
            DataConfig {
                length: Some(0),
                ..copy_cfg(8, None)
            },
            "data.length",
        ),
        (
            DataConfig {
                vocab: Some(0),
                ..copy_cfg(8, None)
            },
            "data.vocab",
        ),
        (
            DataConfig {
                n: 0,
                ..copy_cfg(8, None)
            },
            "data.n",
        ),
        (
            DataConfig {
                p: Some(7),
                ..copy_cfg(8, None)
            },
            "data.p",
        ),
        (
            DataConfig {
                num_classes: Some(6),
                ..copy_cfg(8, None)
            },
            "data.num_classes",
        ),
        (
            DataConfig {
                test_fraction: Some(0.5),
                ..copy_cfg(8, Some(4))
            },
            "data.test_fraction",
        ),
    ];
    for (cfg, key) in cases {
        assert_mentions(&err_msg(load(&cfg, 0)), &[key]);
    }
}

// ------------------------------------------------------------------- tokens

fn tokens_cfg(path: &Path, vocab: usize) -> DataConfig {
    DataConfig {
        source: "tokens".into(),
        path: Some(path.to_path_buf()),
        vocab: Some(vocab),
        ..DataConfig::default()
    }
}

/// A corpus [rows, width] whose row r holds r, r+1, ... (mod 50).
fn corpus(rows: usize, width: usize) -> Vec<i64> {
    (0..rows)
        .flat_map(|r| (0..width).map(move |j| ((r + j) % 50) as i64))
        .collect()
}

#[test]
fn token_corpus_gives_shifted_inputs_and_next_token_labels() {
    let dir = temp_dir("tokens");
    let ids = corpus(4, 6);
    let i32_bytes: Vec<u8> = ids.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
    let floats: Vec<f64> = ids.iter().map(|&v| v as f64).collect();
    let files = [
        ("i8.npy", npy_bytes("<i8", &[4, 6], &i64_bytes(&ids))),
        ("i4.npy", npy_bytes("<i4", &[4, 6], &i32_bytes)),
        ("f8.npy", npy_bytes("<f8", &[4, 6], &f64_bytes(&floats))),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let split = load(&tokens_cfg(&path, 50), 0).unwrap();
        let ds = &split.train;
        let (y, t, classes) = sequence(ds);
        assert_eq!((ds.n, ds.d, t, classes), (4, 5, 5, 50), "{name}");
        for (r, row) in ids.chunks_exact(6).enumerate() {
            let x: Vec<f64> = row[..5].iter().map(|&v| v as f64).collect();
            let next: Vec<Option<usize>> = row[1..].iter().map(|&v| Some(v as usize)).collect();
            assert_eq!(ds.x[r * 5..(r + 1) * 5], x[..], "{name} row {r}");
            assert_eq!(y[r * 5..(r + 1) * 5], next[..], "{name} row {r}");
        }
        assert_eq!(ds.out_shape(), Shape::Signal { c: 50, l: 5 });
    }
}

#[test]
fn token_test_corpus_comes_from_test_path() {
    let dir = temp_dir("tokens-test");
    let (train, test) = (dir.join("train.npy"), dir.join("test.npy"));
    std::fs::write(&train, npy_bytes("<i8", &[4, 6], &i64_bytes(&corpus(4, 6)))).unwrap();
    std::fs::write(&test, npy_bytes("<i8", &[3, 6], &i64_bytes(&corpus(3, 6)))).unwrap();
    let cfg = DataConfig {
        test_path: Some(test.clone()),
        ..tokens_cfg(&train, 50)
    };
    let split = load(&cfg, 0).unwrap();
    assert_eq!((split.train.n, test_set(&split).n), (4, 3));
    // Rows of another length do not fit the same model.
    std::fs::write(&test, npy_bytes("<i8", &[3, 4], &i64_bytes(&corpus(3, 4)))).unwrap();
    assert_mentions(&err_msg(load(&cfg, 0)), &["data.test_path", "6"]);
    // A bad id in the test corpus is named by the test corpus's key.
    let mut ids = corpus(3, 6);
    ids[4] = 70;
    std::fs::write(&test, npy_bytes("<i8", &[3, 6], &i64_bytes(&ids))).unwrap();
    assert_mentions(
        &err_msg(load(&cfg, 0)),
        &["data.test_path", "test.npy", "row 0", "position 4", "70"],
    );
}

#[test]
fn token_ids_outside_the_vocab_are_refused_naming_row_position_and_value() {
    let dir = temp_dir("tokens-bad");
    let path = dir.join("corpus.npy");
    for (bad, why) in [(70, "is not below the vocab of 50"), (-3, "negative")] {
        let mut ids = corpus(4, 6);
        ids[2 * 6 + 3] = bad;
        std::fs::write(&path, npy_bytes("<i8", &[4, 6], &i64_bytes(&ids))).unwrap();
        let msg = err_msg(load(&tokens_cfg(&path, 50), 0));
        assert_mentions(
            &msg,
            &[
                "corpus.npy",
                "row 2",
                "position 3",
                &bad.to_string(),
                why,
                "data.vocab",
            ],
        );
    }
    let mut floats: Vec<f64> = corpus(4, 6).iter().map(|&v| v as f64).collect();
    floats[5] = 2.5;
    std::fs::write(&path, npy_bytes("<f8", &[4, 6], &f64_bytes(&floats))).unwrap();
    let msg = err_msg(load(&tokens_cfg(&path, 50), 0));
    assert_mentions(&msg, &["row 0", "position 5", "2.5", "not a token id"]);
}

#[test]
fn truncated_or_misshapen_token_files_give_clear_errors() {
    let dir = temp_dir("tokens-truncated");
    let path = dir.join("corpus.npy");
    let mut bytes = npy_bytes("<i8", &[4, 6], &i64_bytes(&corpus(4, 6)));
    bytes.truncate(bytes.len() - 20);
    std::fs::write(&path, bytes).unwrap();
    assert_mentions(
        &err_msg(load(&tokens_cfg(&path, 50), 0)),
        &["corpus.npy", "truncated"],
    );
    std::fs::write(&path, npy_bytes("<i8", &[24], &i64_bytes(&corpus(4, 6)))).unwrap();
    assert_mentions(
        &err_msg(load(&tokens_cfg(&path, 50), 0)),
        &["corpus.npy", "[N, T+1]", "[24]"],
    );
    std::fs::write(&path, npy_bytes("<i8", &[4, 1], &i64_bytes(&corpus(4, 1)))).unwrap();
    assert_mentions(
        &err_msg(load(&tokens_cfg(&path, 50), 0)),
        &["corpus.npy", "T + 1 >= 2"],
    );
}

#[test]
fn token_source_needs_vocab_and_path() {
    let msg = err_msg(
        DataConfig {
            vocab: None,
            ..tokens_cfg(Path::new("corpus.npy"), 1)
        }
        .validate(),
    );
    assert_mentions(&msg, &["data.vocab"]);
    let msg = err_msg(
        DataConfig {
            path: None,
            ..tokens_cfg(Path::new("corpus.npy"), 10)
        }
        .validate(),
    );
    assert_mentions(&msg, &["data.path"]);
}

/// `tokens` with inputs and targets apart, both `[rows, width]` of `<i8`.
fn token_pairs(dir: &Path, x: &[i64], y: &[i64], shape: [usize; 2]) -> DataConfig {
    let (xp, yp) = (dir.join("inputs.npy"), dir.join("targets.npy"));
    std::fs::write(&xp, npy_bytes("<i8", &shape, &i64_bytes(x))).unwrap();
    std::fs::write(&yp, npy_bytes("<i8", &shape, &i64_bytes(y))).unwrap();
    DataConfig {
        source: "tokens".into(),
        x_path: Some(xp),
        y_path: Some(yp),
        vocab: Some(50),
        ..DataConfig::default()
    }
}

#[test]
fn token_targets_apart_mark_ignored_positions_with_negative_ids() {
    let dir = temp_dir("tokens-pairs");
    let x = corpus(4, 5);
    let mut y = corpus(4, 5);
    // -1 and PyTorch's -100 alike; a whole row ignored is allowed.
    for (k, v) in y.iter_mut().enumerate() {
        if k % 3 == 0 || (10..15).contains(&k) {
            *v = if k % 2 == 0 { -1 } else { -100 };
        }
    }
    let mut cfg = token_pairs(&dir, &x, &y, [4, 5]);
    let (tx, ty) = (dir.join("test_x.npy"), dir.join("test_y.npy"));
    std::fs::write(&tx, npy_bytes("<i8", &[2, 5], &i64_bytes(&x[..10]))).unwrap();
    std::fs::write(&ty, npy_bytes("<i8", &[2, 5], &i64_bytes(&y[..10]))).unwrap();
    cfg.test_x_path = Some(tx);
    cfg.test_y_path = Some(ty);
    let split = load(&cfg, 0).unwrap();
    let ds = &split.train;
    assert_eq!((ds.n, ds.d), (4, 5));
    assert_eq!(ds.x, x.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let (labels, t, classes) = sequence(ds);
    assert_eq!((t, classes), (5, 50));
    let want: Vec<Option<usize>> = y.iter().map(|&v| (v >= 0).then_some(v as usize)).collect();
    assert_eq!(labels, want);
    assert_eq!(ds.y.scored(), y.iter().filter(|&&v| v >= 0).count());
    assert_eq!(sequence(test_set(&split)).0, &want[..10]);
    // A bad test target is named by its own key and file.
    let mut bad = y[..10].to_vec();
    bad[7] = 50;
    let ty = cfg.test_y_path.clone().unwrap();
    std::fs::write(&ty, npy_bytes("<i8", &[2, 5], &i64_bytes(&bad))).unwrap();
    assert_mentions(
        &err_msg(load(&cfg, 0)),
        &[
            "data.test_y_path",
            "test_y.npy",
            "row 1",
            "position 2",
            "50",
        ],
    );
}

#[test]
fn token_targets_apart_refuse_other_bad_ids_by_file_row_position_and_value() {
    let dir = temp_dir("tokens-pairs-bad");
    let x = corpus(4, 5);
    let mut y = corpus(4, 5);
    y[5 + 2] = 70;
    let msg = err_msg(load(&token_pairs(&dir, &x, &y, [4, 5]), 0));
    assert_mentions(
        &msg,
        &[
            "data.y_path",
            "targets.npy",
            "row 1",
            "position 2",
            "70",
            "not below the vocab of 50",
            "data.vocab",
        ],
    );
    // A negative input is no ignored target.
    let mut bad_x = corpus(4, 5);
    bad_x[3 * 5 + 4] = -1;
    let msg = err_msg(load(&token_pairs(&dir, &bad_x, &corpus(4, 5), [4, 5]), 0));
    assert_mentions(
        &msg,
        &[
            "data.x_path",
            "inputs.npy",
            "row 3",
            "position 4",
            "negative",
        ],
    );
    // A fractional target, negative or not, is not an id.
    let cfg = token_pairs(&dir, &x, &corpus(4, 5), [4, 5]);
    let mut floats: Vec<f64> = corpus(4, 5).iter().map(|&v| v as f64).collect();
    floats[6] = -0.5;
    let yp = cfg.y_path.clone().unwrap();
    std::fs::write(&yp, npy_bytes("<f8", &[4, 5], &f64_bytes(&floats))).unwrap();
    assert_mentions(
        &err_msg(load(&cfg, 0)),
        &["row 1", "position 1", "-0.5", "not a token id"],
    );
    // Targets that do not match the inputs position for position.
    std::fs::write(&yp, npy_bytes("<i8", &[3, 5], &i64_bytes(&corpus(3, 5)))).unwrap();
    assert_mentions(
        &err_msg(load(&cfg, 0)),
        &["data.y_path", "[3, 5]", "[4, 5]"],
    );
    // Every target ignored leaves nothing to score.
    let msg = err_msg(load(&token_pairs(&dir, &x, &[-1; 20], [4, 5]), 0));
    assert_mentions(&msg, &["every target position", "ignored"]);
}

#[test]
fn token_layouts_are_one_or_the_other() {
    let file = |name: &str| Some(Path::new(name).to_path_buf());
    let pairs = DataConfig {
        source: "tokens".into(),
        x_path: file("x.npy"),
        y_path: file("y.npy"),
        vocab: Some(10),
        ..DataConfig::default()
    };
    let cases = [
        (
            DataConfig {
                path: file("corpus.npy"),
                ..pairs.clone()
            },
            "data.x_path",
        ),
        (
            DataConfig {
                y_path: None,
                ..pairs.clone()
            },
            "data.y_path",
        ),
        (
            DataConfig {
                test_path: file("test.npy"),
                ..pairs.clone()
            },
            "data.test_path",
        ),
        (
            DataConfig {
                test_x_path: file("tx.npy"),
                ..pairs.clone()
            },
            "data.test_y_path",
        ),
        (
            DataConfig {
                x_path: None,
                y_path: None,
                ..pairs.clone()
            },
            "data.path",
        ),
    ];
    for (cfg, key) in cases {
        assert_mentions(&err_msg(cfg.validate()), &[key]);
    }
    assert!(pairs.validate().is_ok());
}

// --------------------------------------------------------- check_token_ids

#[test]
fn check_token_ids_accepts_integers_below_the_vocab() {
    let x = [0.0, 3.0, 9.0, 9.0, 1.0, 0.0];
    assert!(check_token_ids(&x, 2, 3, 10, "data", "model.layers[0].vocab").is_ok());
}

#[test]
fn check_token_ids_refuses_a_non_integer_by_row_and_position() {
    let x = [0.0, 3.0, 9.0, 9.0, 1.5, 0.0];
    let msg = err_msg(check_token_ids(
        &x,
        2,
        3,
        10,
        "data",
        "model.layers[0].vocab",
    ));
    assert_mentions(
        &msg,
        &[
            "data",
            "row 1",
            "position 1",
            "1.5",
            "model.layers[0].vocab",
        ],
    );
    let x = [0.0, f64::NAN, 1.0];
    let msg = err_msg(check_token_ids(
        &x,
        1,
        3,
        10,
        "data",
        "model.layers[0].vocab",
    ));
    assert_mentions(&msg, &["row 0", "position 1", "NaN"]);
}

#[test]
fn check_token_ids_refuses_an_id_outside_the_vocab_naming_it() {
    let x = [0.0, 3.0, 113.0, 9.0, 114.0, 115.0];
    let msg = err_msg(check_token_ids(
        &x,
        2,
        3,
        114,
        "data",
        "model.layers[0].vocab",
    ));
    assert_mentions(
        &msg,
        &[
            "row 1",
            "position 1",
            "token id 114",
            "vocab of 114",
            "model.layers[0].vocab",
        ],
    );
    let msg = err_msg(check_token_ids(&[-1.0], 1, 1, 4, "data", "data.vocab"));
    assert_mentions(&msg, &["row 0", "position 0", "-1", "negative"]);
}

// ------------------------------------------------------ the sequence loss

const E: usize = 2;
const B: usize = 3;
const T: usize = 4;
const V: usize = 5;

/// Random outputs `[E, B, T*V]` and labels `[B, T]`.
fn outputs_and_labels(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let f = randn(&mut rng, E * B * T * V, 1.5);
    let labels = (0..B * T).map(|_| rng.below(V) as f64).collect();
    (f, labels)
}

fn loss_head(be: &Cpu, labels: &[f64]) -> Box<LossHead<Cpu>> {
    Box::new(LossHead::new(
        LossKind::CrossEntropy,
        tensor(be, &[B, T], labels),
    ))
}

#[test]
fn sequence_xent_is_the_mean_over_positions_of_each_positions_xent() {
    let be = Cpu::f64();
    let (f, labels) = outputs_and_labels(20);
    let mut tape = Tape::new(be.clone());
    let fv = tape.leaf(tensor(&be, &[E, B, T * V], &f), false);
    let l = tape.apply(loss_head(&be, &labels), &[fv]).unwrap();
    let got = values(&be, tape.value(l));
    for (e, &got) in got.iter().enumerate() {
        let mut sum = 0.0;
        for b in 0..B {
            for t in 0..T {
                // Example b's position t: V logits, position-major.
                let at = (e * B + b) * T * V + t * V;
                let row = &f[at..at + V];
                let top = row.iter().cloned().fold(f64::MIN, f64::max);
                let lse = top + row.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
                sum += lse - row[labels[b * T + t] as usize];
            }
        }
        let want = sum / (B * T) as f64;
        assert!((got - want).abs() < 1e-12, "member {e}: {got} vs {want}");
    }
}

#[test]
fn sequence_xent_gradient_matches_finite_differences() {
    let be = Cpu::f64();
    let (f, labels) = outputs_and_labels(21);
    let err = fd_check(
        &[(vec![E, B, T * V], f, true)],
        |t, v| t.apply(loss_head(&be, &labels), &[v[0]]),
        22,
    );
    assert!(err < 1e-7, "{err}");
}

/// The gradient of each member's loss with respect to `f`.
fn gradient(be: &Cpu, f: &[f64], labels: &[f64]) -> Vec<f64> {
    let mut tape = Tape::new(be.clone());
    let fv = tape.leaf(tensor(be, &[E, B, T * V], f), true);
    let l = tape.apply(loss_head(be, labels), &[fv]).unwrap();
    let g = tape.backward(l, tensor(be, &[E], &[1.0; E])).unwrap();
    values(be, g.get(fv).unwrap())
}

#[test]
fn sequence_xent_hvp_matches_finite_differences_of_the_gradient() {
    let be = Cpu::f64();
    let (f, labels) = outputs_and_labels(23);
    let v = randn(&mut Rng::new(24), f.len(), 1.0);
    let mut tape = Tape::new(be.clone());
    let shape = [E, B, T * V];
    let fv = tape
        .leaf_with_tangent(tensor(&be, &shape, &f), tensor(&be, &shape, &v), true)
        .unwrap();
    let l = tape.apply(loss_head(&be, &labels), &[fv]).unwrap();
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
    let shifted = |s: f64| -> Vec<f64> { f.iter().zip(&v).map(|(a, b)| a + s * b).collect() };
    let (plus, minus) = (
        gradient(&be, &shifted(h), &labels),
        gradient(&be, &shifted(-h), &labels),
    );
    let fd: Vec<f64> = plus
        .iter()
        .zip(&minus)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    let err = max_rel_err(&hv, &fd);
    assert!(err < 1e-7, "{err}");
}

#[test]
fn sequence_accuracy_counts_the_positions_right() {
    let be = Cpu::f64();
    let (f, mut labels) = outputs_and_labels(25);
    // Make member 0 right at a known set of positions: its argmax there.
    let argmax = |row: &[f64]| (0..V).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap();
    for (k, label) in labels.iter_mut().enumerate().filter(|(k, _)| k % 3 == 0) {
        *label = argmax(&f[k * V..(k + 1) * V]) as f64;
    }
    let got = labels_correct(
        &be,
        &tensor(&be, &[E, B, T * V], &f),
        &tensor(&be, &[B, T], &labels),
    )
    .unwrap();
    for (e, got) in got.iter().enumerate() {
        let right = (0..B * T)
            .filter(|&k| {
                let at = e * B * T * V + k * V;
                argmax(&f[at..at + V]) == labels[k] as usize
            })
            .count();
        assert!(
            right > 0 || e > 0,
            "member 0 is right somewhere by construction"
        );
        assert_eq!(*got, right as f64, "member {e}: positions right");
    }
}

#[test]
fn outputs_that_do_not_divide_into_positions_are_refused() {
    let be = Cpu::f64();
    let mut tape = Tape::new(be.clone());
    let f = tape.leaf(tensor(&be, &[1, B, 10], &[0.0; B * 10]), false);
    let head = LossHead::new(LossKind::CrossEntropy, tensor(&be, &[B, T], &[0.0; B * T]));
    let msg = err_msg(tape.apply(Box::new(head), &[f]));
    assert_mentions(&msg, &["[1, 3, 10]", "[3, 4]", "positions"]);
}

#[test]
fn per_sample_norms_weigh_one_sequence_as_one_example() {
    let be = Cpu::f64();
    let conv = |channels, kernel, padding, act: Option<&str>| LayerSpec::Conv1d {
        channels,
        kernel,
        stride: 1,
        padding,
        bias: true,
        activation: act.map(String::from),
    };
    let spec = ModelSpec {
        input: Shape::Signal { c: 1, l: T },
        layers: vec![conv(3, 3, 1, Some("tanh")), conv(V, 1, 0, None)],
        parametrization: Parametrization::Standard,
        width: 3,
        base_width: 3,
    };
    let m = Model::init(&be, spec, &[26]).unwrap();
    let (n, mut rng) = (5, Rng::new(27));
    let x = randn(&mut rng, n * T, 1.0);
    let y: Vec<f64> = (0..n * T).map(|_| rng.below(V) as f64).collect();
    let norms = per_sample_norms(
        &be,
        &m,
        &tensor(&be, &[n, T], &x),
        &tensor(&be, &[n, T], &y),
        LossKind::CrossEntropy,
    )
    .unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| {
            let xi = tensor(&be, &[1, T], &x[i * T..(i + 1) * T]);
            let yi = tensor(&be, &[1, T], &y[i * T..(i + 1) * T]);
            let pass = m
                .loss_pass(&be, &xi, &yi, LossKind::CrossEntropy, true)
                .unwrap();
            flatten(&be, &pass.grads)
                .unwrap()
                .iter()
                .map(|g| g * g)
                .sum()
        })
        .collect();
    assert_eq!(norms.batch(), n);
    assert!(
        max_rel_err(&norms.total, &want) < 1e-10,
        "{:?} vs {want:?}",
        norms.total
    );
}

// ------------------------------------------------------------- end to end

const SORT_RUN: &str = r#"
seed = 3

[data]
source = "sort"
input_shape = [1, 8]
n = 48
n_test = 16

[[model.layers]]
kind = "conv1d"
channels = CHANNELS
kernel = 1

[optim]
name = "gd"
lr = 0.05

[train]
steps = 4
loss = "xent"
log_every = 1
checkpoint = false
"#;

/// `lmech train` on the sort task with a conv1d of `channels` outputs.
fn train_sort(dir: &Path, channels: usize, sets: &[&str]) -> Output {
    let config = dir.join("sort.toml");
    std::fs::write(&config, SORT_RUN.replace("CHANNELS", &channels.to_string())).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lmech"));
    cmd.arg("train")
        .arg(&config)
        .arg("--out")
        .arg(dir.join("run"))
        .arg("--quiet");
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    cmd.output().expect("cannot start the lmech binary")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn sort_trains_end_to_end_with_a_per_position_readout() {
    // Full batch (the step's own accuracy) and mini-batches (evaluation).
    for batch in ["0", "16"] {
        let dir = temp_dir("sort-run");
        let out = train_sort(&dir, 16, &[&format!("train.batch_size={batch}")]);
        assert!(out.status.success(), "batch {batch}: {}", stderr(&out));
        let body = std::fs::read_to_string(dir.join("run").join("metrics.jsonl")).unwrap();
        let records: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 5, "batch {batch}: steps 0..=4");
        for r in &records {
            for key in ["loss", "test_loss"] {
                let v = r[key].as_f64().unwrap_or(f64::NAN);
                assert!(
                    v.is_finite() && v > 0.0,
                    "batch {batch}: {key} = {v} in {r}"
                );
            }
            for key in ["train_acc", "test_acc"] {
                let v = r[key].as_f64().unwrap_or(f64::NAN);
                assert!(
                    (0.0..=1.0).contains(&v),
                    "batch {batch}: {key} = {v} in {r}"
                );
            }
        }
    }
}

#[test]
fn a_model_whose_output_does_not_fit_the_sequence_is_refused_naming_both_shapes() {
    let dir = temp_dir("sort-misfit");
    let out = train_sort(&dir, 10, &[]);
    assert!(!out.status.success());
    let msg = stderr(&out);
    assert!(!msg.contains("panicked"), "{msg}");
    assert_mentions(
        &msg,
        &[
            "model.layers",
            "10 channels at 8 positions",
            "8 positions x 16 classes",
        ],
    );
    assert!(
        !dir.join("run").exists(),
        "a refused run left its directory"
    );
}

#[test]
fn a_squared_loss_on_sequence_labels_is_refused_naming_train_loss() {
    let dir = temp_dir("sort-mse");
    let out = train_sort(&dir, 16, &["train.loss=mse"]);
    assert!(!out.status.success());
    assert_mentions(&stderr(&out), &["train.loss", "sequence labels need xent"]);
}

/// Token ids must stay integers: `scale` and `standardize` are refused on
/// every token source, by key.
#[test]
fn token_sources_refuse_scaling_their_ids() {
    for source in ["modular", "sort", "copy", "tokens"] {
        let base = DataConfig {
            source: source.into(),
            p: (source == "modular").then_some(7),
            path: (source == "tokens").then(|| "corpus.npy".into()),
            vocab: (source == "tokens").then_some(16),
            ..DataConfig::default()
        };
        let scaled = DataConfig {
            scale: Some(0.5),
            ..base.clone()
        };
        assert_mentions(
            &err_msg(scaled.validate()),
            &["data.scale", "token ids", source],
        );
        let standardized = DataConfig {
            standardize: true,
            ..base
        };
        assert_mentions(
            &err_msg(standardized.validate()),
            &["data.standardize", "integers"],
        );
    }
}
