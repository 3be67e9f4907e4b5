//! The files a run writes into its run directory: metrics JSONL/CSV,
//! summary.json, SVG plots and safetensors checkpoints, checked from the
//! outside as a user (or pandas, or PyTorch) would read them.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

mod common;

use common::temp_dir;
use lmech::run::{
    load_checkpoint, plot_curves, plot_loss, prepare_run_dir, save_checkpoint, unique_run_dir,
    write_atomic, MetricsLog, NamedTensor, Progress, Record, Status, Summary, TensorData,
};
use serde_json::{json, Value as Json};

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read_json_lines(path: &Path) -> Vec<Json> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn metrics_jsonl_lines_parse_back_in_logged_order() {
    let dir = temp_dir("jsonl");
    let mut log = MetricsLog::create(&dir).unwrap();
    log.log(&Record::new(0).with("loss", 2.5).with("phase", "warmup"))
        .unwrap();
    log.log(&Record::new(10).with("loss", 1.25).with("batch", 64usize))
        .unwrap();

    // Every record is on disk as soon as `log` returns, before any CSV.
    let path = dir.join("metrics.jsonl");
    let lines = read_json_lines(&path);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], json!({"step": 0, "loss": 2.5, "phase": "warmup"}));
    assert_eq!(lines[1], json!({"step": 10, "loss": 1.25, "batch": 64}));
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(r#"{"step":0,"loss":2.5,"phase":"warmup"}"#),
        "{text}"
    );
    assert_eq!(log.records().len(), 2);

    // Creating the log again starts a fresh file.
    drop(log);
    MetricsLog::create(&dir).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "");
}

#[test]
fn record_set_replaces_in_place() {
    let r = Record::new(3).with("a", 1.0).with("b", 2.0).with("a", 5i64);
    let keys: Vec<&str> = r.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["step", "a", "b"]);
    assert_eq!(r.get("a").and_then(|v| v.as_f64()), Some(5.0));
    assert_eq!(r.get("missing"), None);
}

#[test]
fn csv_header_is_key_union_in_first_seen_order_with_empty_cells() {
    let dir = temp_dir("csv");
    let mut log = MetricsLog::create(&dir).unwrap();
    log.log(&Record::new(0).with("loss", 0.5)).unwrap();
    log.log(&Record::new(1).with("loss", 0.25).with("test_loss", 0.75))
        .unwrap();
    log.log(&Record::new(2).with("acc", 0.9).with("loss", 0.125))
        .unwrap();
    log.log(&Record::new(3).with("note", "a,\"b\"")).unwrap();
    log.write_csv().unwrap();

    let csv = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "step,loss,test_loss,acc,note",
            "0,0.5,,,",
            "1,0.25,0.75,,",
            "2,0.125,,0.9,",
            "3,,,,\"a,\"\"b\"\"\"",
        ]
    );
}

#[test]
fn floats_are_written_in_full_precision() {
    let dir = temp_dir("precision");
    let mut log = MetricsLog::create(&dir).unwrap();
    let x = 0.1 + 0.2;
    log.log(
        &Record::new(0)
            .with("x", x)
            .with("tiny", 1e-300)
            .with("f32", 0.1f32),
    )
    .unwrap();
    log.write_csv().unwrap();

    let csv = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let row = csv.lines().nth(1).unwrap();
    // Shortest round-trip forms: exponent for tiny values, and an f32 as
    // its own shortest decimal.
    assert_eq!(row, "0,0.30000000000000004,1e-300,0.1");
    let cells: Vec<f64> = row.split(',').map(|c| c.parse().unwrap()).collect();
    assert_eq!(cells, [0.0, x, 1e-300, 0.1]);
    assert_eq!(0.1f64 as f32, 0.1f32);

    let json = &read_json_lines(&dir.join("metrics.jsonl"))[0];
    assert_eq!(json["x"].as_f64(), Some(x));
    assert_eq!(json["tiny"].as_f64(), Some(1e-300));
}

#[test]
fn non_finite_values_become_strings_and_are_skipped_in_series() {
    let dir = temp_dir("nan");
    let mut log = MetricsLog::create(&dir).unwrap();
    log.log(&Record::new(0).with("loss", 1.0)).unwrap();
    log.log(&Record::new(1).with("loss", f64::NAN)).unwrap();
    log.log(&Record::new(2).with("loss", f64::INFINITY))
        .unwrap();
    log.log(&Record::new(3).with("loss", f64::NEG_INFINITY))
        .unwrap();
    log.log(&Record::new(4).with("other", 1.0)).unwrap();
    log.log(&Record::new(5).with("loss", 0.5)).unwrap();
    log.write_csv().unwrap();

    let lines = read_json_lines(&dir.join("metrics.jsonl"));
    assert_eq!(lines[1]["loss"], json!("nan"));
    assert_eq!(lines[2]["loss"], json!("inf"));
    assert_eq!(lines[3]["loss"], json!("-inf"));

    let csv = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let loss: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(loss, ["1.0", "nan", "inf", "-inf", "", "0.5"]);

    assert_eq!(log.series("loss"), [(0.0, 1.0), (5.0, 0.5)]);
    assert_eq!(log.series("absent"), []);
}

#[test]
fn atomic_writes_replace_the_file_and_leave_no_temporaries() {
    let dir = temp_dir("atomic");
    let path = dir.join("out.txt");
    write_atomic(&path, b"first").unwrap();
    write_atomic(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    assert_eq!(file_names(&dir), ["out.txt"]);

    // A failing write (missing directory) is an error, not a panic.
    assert!(write_atomic(&dir.join("missing/out.txt"), b"x").is_err());

    // Every writer of the run directory goes through the atomic path.
    let mut log = MetricsLog::create(&dir).unwrap();
    log.log(&Record::new(1).with("loss", 0.5)).unwrap();
    log.write_csv().unwrap();
    plot_loss(&dir, &log).unwrap();
    finished_summary().write(&dir).unwrap();
    save_checkpoint(
        &dir.join("model.safetensors"),
        &sample_tensors(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(
        file_names(&dir),
        [
            "loss.svg",
            "metrics.csv",
            "metrics.jsonl",
            "model.safetensors",
            "out.txt",
            "summary.json"
        ]
    );
}

fn finished_summary() -> Summary {
    let mut hyperparams = serde_json::Map::new();
    hyperparams.insert("lr".into(), json!(0.01));
    hyperparams.insert("width".into(), json!(128));
    hyperparams.insert("activation".into(), json!("relu"));
    hyperparams.insert("seed".into(), json!(7));
    Summary {
        status: Status::Finished,
        hyperparams,
        final_metrics: Record::new(1000).with("loss", 0.03).with("test_acc", 0.97),
        steps_done: 1000,
        wall_seconds: 12.5,
        device: "cpu".into(),
    }
}

#[test]
fn summary_of_a_finished_run() {
    let dir = temp_dir("summary-finished");
    finished_summary().write(&dir).unwrap();
    let text = fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(
        text.contains("\n  \"status\": \"finished\""),
        "not pretty-printed: {text}"
    );
    let s: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(s["status"], "finished");
    assert_eq!(s["lr"], 0.01);
    assert_eq!(s["width"], 128);
    assert_eq!(s["activation"], "relu");
    assert_eq!(s["seed"], 7);
    assert_eq!(s["steps_done"], 1000);
    assert_eq!(s["wall_seconds"], 12.5);
    assert_eq!(s["device"], "cpu");
    assert_eq!(s["lmech_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        s["final"],
        json!({"step": 1000, "loss": 0.03, "test_acc": 0.97})
    );
    assert!(s.get("diverged_at_step").is_none() && s.get("reason").is_none());
}

#[test]
fn summary_of_a_diverged_run() {
    let dir = temp_dir("summary-diverged");
    let summary = Summary {
        status: Status::Diverged {
            step: 42,
            reason: "loss is nan".into(),
        },
        final_metrics: Record::new(42).with("loss", f64::NAN),
        steps_done: 42,
        ..finished_summary()
    };
    summary.write(&dir).unwrap();
    let s: Json =
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "diverged");
    assert_eq!(s["diverged_at_step"], 42);
    assert_eq!(s["reason"], "loss is nan");
    assert_eq!(s["final"]["loss"], "nan");
    assert_eq!(s["lr"], 0.01);
}

#[test]
fn summary_rejects_a_hyperparameter_named_like_a_field() {
    let dir = temp_dir("summary-clash");
    let mut summary = finished_summary();
    summary.hyperparams.insert("status".into(), json!("x"));
    let err = summary.write(&dir).unwrap_err().to_string();
    assert!(err.contains("status"), "{err}");
    assert!(!dir.join("summary.json").exists());
}

fn assert_svg(path: &Path, must_contain: &[&str]) -> String {
    let svg = fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    for s in must_contain {
        assert!(svg.contains(s), "{s:?} missing from {}", path.display());
    }
    svg
}

fn curve(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (0..n).map(|i| (i as f64, f(i as f64))).collect()
}

#[test]
fn plot_of_normal_curves_has_lines_title_and_legend() {
    let dir = temp_dir("plot-normal");
    let path = dir.join("curves.svg");
    let series = vec![
        ("train <loss>".to_string(), curve(100, |x| 1.0 / (1.0 + x))),
        ("test_loss".to_string(), curve(10, |x| 2.0 / (1.0 + x))),
    ];
    plot_curves(&path, "My run & co", "step", "loss", &series, false).unwrap();
    let svg = assert_svg(
        &path,
        &[
            "<polyline",
            "My run &amp; co",
            "step",
            "train &lt;loss&gt;",
            "test_loss",
        ],
    );
    assert!(!svg.contains("NaN"), "{svg}");
    assert_eq!(file_names(&dir), ["curves.svg"]);
}

#[test]
fn plot_without_data_says_so() {
    let dir = temp_dir("plot-empty");
    let nothing: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    plot_curves(
        &dir.join("a.svg"),
        "empty run",
        "step",
        "loss",
        &nothing,
        false,
    )
    .unwrap();
    assert_svg(&dir.join("a.svg"), &["empty run", "no data"]);

    // Series whose points are all unusable count as no data too.
    let unusable = vec![(
        "loss".to_string(),
        vec![(0.0, f64::NAN), (1.0, -1.0), (f64::INFINITY, 1.0)],
    )];
    plot_curves(&dir.join("b.svg"), "bad", "step", "loss", &unusable, true).unwrap();
    assert_svg(&dir.join("b.svg"), &["bad", "no data"]);
}

#[test]
fn plot_of_a_single_point_and_of_a_constant() {
    let dir = temp_dir("plot-degenerate");
    let one = vec![("loss".to_string(), vec![(5.0, 0.7)])];
    plot_curves(
        &dir.join("one.svg"),
        "one point",
        "step",
        "loss",
        &one,
        false,
    )
    .unwrap();
    let svg = assert_svg(&dir.join("one.svg"), &["one point", "<circle"]);
    assert!(!svg.contains("NaN"), "{svg}");

    for log_y in [false, true] {
        let flat = vec![("loss".to_string(), curve(20, |_| 0.3))];
        let path = dir.join(format!("flat-{log_y}.svg"));
        plot_curves(&path, "constant", "step", "loss", &flat, log_y).unwrap();
        let svg = assert_svg(&path, &["constant", "<polyline"]);
        assert!(!svg.contains("NaN"), "{svg}");
    }
}

#[test]
fn plot_skips_non_finite_and_non_positive_on_log_axis() {
    let dir = temp_dir("plot-nan");
    let mut points = curve(50, |x| (x + 1.0).recip());
    points[10].1 = f64::NAN;
    points[20].1 = f64::INFINITY;
    points[30].1 = 0.0;
    points[40].1 = -3.0;
    let series = vec![("loss".to_string(), points)];
    for log_y in [false, true] {
        let path = dir.join(format!("nan-{log_y}.svg"));
        plot_curves(&path, "with nan", "step", "loss", &series, log_y).unwrap();
        let svg = assert_svg(&path, &["with nan", "<polyline"]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}

#[test]
fn plot_thins_very_long_curves() {
    let dir = temp_dir("plot-long");
    let mut points = curve(100_000, |x| 1.0 / (1.0 + x));
    points[54_321].1 = 50.0;
    plot_curves(
        &dir.join("long.svg"),
        "long",
        "step",
        "loss",
        &[("loss".into(), points)],
        true,
    )
    .unwrap();
    let svg = assert_svg(&dir.join("long.svg"), &["<polyline"]);
    assert!(svg.len() < 300_000, "SVG of {} bytes", svg.len());
}

#[test]
fn plot_loss_draws_loss_and_test_loss() {
    let dir = temp_dir("plot-loss");
    let mut log = MetricsLog::create(&dir).unwrap();
    for step in 0..100u64 {
        let mut r = Record::new(step).with("loss", 1.0 / (1.0 + step as f64));
        if step % 10 == 0 {
            r.set("test_loss", 1.5 / (1.0 + step as f64));
        }
        log.log(&r).unwrap();
    }
    plot_loss(&dir, &log).unwrap();
    assert_svg(&dir.join("loss.svg"), &["<polyline", "loss", "test_loss"]);

    // An empty log still gives a plot.
    let empty_dir = temp_dir("plot-loss-empty");
    plot_loss(&empty_dir, &MetricsLog::create(&empty_dir).unwrap()).unwrap();
    assert_svg(&empty_dir.join("loss.svg"), &["no data"]);
}

fn sample_tensors() -> Vec<NamedTensor> {
    vec![
        NamedTensor {
            name: "layer1.weight".into(),
            shape: vec![2, 3],
            data: TensorData::F32(vec![1.0, -2.5, 3.25, f32::MIN_POSITIVE, 0.0, 1e30]),
        },
        NamedTensor {
            name: "layer1.bias".into(),
            shape: vec![2],
            data: TensorData::F64(vec![0.1, -1e-300]),
        },
        NamedTensor {
            name: "scalar".into(),
            shape: vec![],
            data: TensorData::F64(vec![42.0]),
        },
    ]
}

#[test]
fn checkpoint_round_trip_keeps_data_shapes_and_metadata() {
    let dir = temp_dir("ckpt");
    let path = dir.join("model.safetensors");
    let tensors = sample_tensors();
    let metadata = BTreeMap::from([
        ("step".to_string(), "1000".to_string()),
        ("config".to_string(), "{\"lr\": 0.1}".to_string()),
    ]);
    save_checkpoint(&path, &tensors, &metadata).unwrap();

    let (loaded, loaded_meta) = load_checkpoint(&path).unwrap();
    let mut expected = tensors.clone();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(loaded, expected);
    assert_eq!(loaded_meta, metadata);

    // The safetensors layout: 8-byte little-endian header length, then a
    // JSON header with dtypes PyTorch knows.
    let bytes = fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Json = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["layer1.weight"]["dtype"], "F32");
    assert_eq!(header["layer1.weight"]["shape"], json!([2, 3]));
    assert_eq!(header["layer1.bias"]["dtype"], "F64");
    assert_eq!(header["__metadata__"]["step"], "1000");

    // No metadata round-trips as no metadata.
    save_checkpoint(&path, &tensors, &BTreeMap::new()).unwrap();
    assert!(load_checkpoint(&path).unwrap().1.is_empty());
}

#[test]
fn checkpoint_errors_name_the_file() {
    let dir = temp_dir("ckpt-bad");
    let path = dir.join("model.safetensors");
    save_checkpoint(&path, &sample_tensors(), &BTreeMap::new()).unwrap();
    let bytes = fs::read(&path).unwrap();

    for (what, content) in [
        ("truncated", &bytes[..bytes.len() - 3]),
        ("header cut", &bytes[..20]),
        ("tiny", &bytes[..4]),
        ("garbage", &b"this is not a checkpoint at all"[..]),
    ] {
        let bad = dir.join(format!("{what}.safetensors"));
        fs::write(&bad, content).unwrap();
        let err = load_checkpoint(&bad).unwrap_err().to_string();
        assert!(err.contains(&bad.display().to_string()), "{what}: {err}");
    }

    let missing = dir.join("missing.safetensors");
    let err = load_checkpoint(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.safetensors"), "{err}");
}

#[test]
fn checkpoint_rejects_inconsistent_tensors() {
    let dir = temp_dir("ckpt-invalid");
    let path = dir.join("model.safetensors");
    let wrong_shape = vec![NamedTensor {
        name: "w".into(),
        shape: vec![2, 2],
        data: TensorData::F32(vec![1.0; 3]),
    }];
    assert!(save_checkpoint(&path, &wrong_shape, &BTreeMap::new()).is_err());
    let mut duplicated = sample_tensors();
    duplicated.push(duplicated[0].clone());
    assert!(save_checkpoint(&path, &duplicated, &BTreeMap::new()).is_err());
    assert!(!path.exists());
}

#[test]
fn run_dir_refuses_a_finished_run_and_reuses_a_crashed_one() {
    let parent = temp_dir("rundir");
    let out = parent.join("a/b/run");
    assert_eq!(prepare_run_dir(&out).unwrap(), out);
    assert!(out.is_dir());

    // Partial files of a crashed run: reused.
    fs::write(out.join("metrics.jsonl"), "{}\n").unwrap();
    prepare_run_dir(&out).unwrap();

    finished_summary().write(&out).unwrap();
    let err = prepare_run_dir(&out).unwrap_err().to_string();
    assert!(
        err.contains("summary.json") && err.contains("--out"),
        "{err}"
    );
    // The finished result is untouched.
    assert!(out.join("summary.json").exists());
}

#[test]
fn unique_run_dir_counts_up() {
    let parent = temp_dir("unique");
    assert_eq!(unique_run_dir(&parent, "mlp"), parent.join("mlp"));
    fs::create_dir(parent.join("mlp")).unwrap();
    assert_eq!(unique_run_dir(&parent, "mlp"), parent.join("mlp-1"));
    fs::create_dir(parent.join("mlp-1")).unwrap();
    assert_eq!(unique_run_dir(&parent, "mlp"), parent.join("mlp-2"));
}

#[test]
fn progress_is_hidden_off_a_terminal_and_cheap_to_update() {
    use std::io::IsTerminal;
    let progress = Progress::new(100_000, "train");
    assert_eq!(progress.is_hidden(), !std::io::stderr().is_terminal());
    let start = std::time::Instant::now();
    for step in 0..100_000u64 {
        progress.update(step, 1.0 / (1.0 + step as f64));
    }
    progress.finish("done");
    assert!(
        start.elapsed().as_secs_f64() < 5.0,
        "updates took {:?}",
        start.elapsed()
    );
}

#[test]
fn the_same_checkpoint_is_the_same_bytes() {
    let dir = temp_dir("ckpt-bytes");
    let tensors = vec![
        NamedTensor {
            name: "layers.0.weight".into(),
            shape: vec![2, 3],
            data: TensorData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        },
        NamedTensor {
            name: "layers.0.bias".into(),
            shape: vec![2],
            data: TensorData::F32(vec![0.5, -0.5]),
        },
    ];
    let meta: BTreeMap<String, String> = (0..20)
        .map(|i| (format!("key{i}"), format!("value {i}")))
        .collect();
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    save_checkpoint(&a, &tensors, &meta).unwrap();
    save_checkpoint(&b, &tensors, &meta).unwrap();
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    let (back, meta_back) = load_checkpoint(&a).unwrap();
    assert_eq!(meta_back, meta);
    assert_eq!(back.len(), 2);
}
