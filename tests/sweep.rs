//! Sweeps: expanding sweep files, ensembles that give the same results as
//! runs one by one, divergence of one member, crash safety (SIGKILL, then
//! --resume; restart points), shards (also from Slurm's variables) and the
//! report. Many workers on one store: tests/sweep_store.rs.

mod common;

use common::temp_dir;
use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::run::{load_checkpoint, Record, Status, TensorData};
use lmech::sweep::{Shard, SweepSpec};
use lmech::train::{train, train_ensemble, Member, RunOptions, RunReport};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lmech(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(args)
        .output()
        .expect("cannot start the lmech binary")
}

/// `lmech sweep SPEC --out OUT --device cpu --quiet EXTRA...`, which must
/// succeed; its stdout.
fn sweep_ok(spec: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = lmech(&args);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

fn spec(text: &str) -> SweepSpec {
    SweepSpec::parse(text, "test", Path::new(".")).unwrap()
}

fn spec_err(text: &str) -> String {
    match SweepSpec::parse(text, "test", Path::new(".")).and_then(|s| s.expand()) {
        Ok(_) => panic!("accepted a bad sweep file:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn product_zip_and_range_helpers_expand_to_the_grid() {
    let s = spec(
        r#"
        [axes]
        "model.width" = { pow2 = [16, 64] }
        "optim.lr" = { logspace = [-2, 0, 3] }
        [[zip]]
        "model.parametrization" = ["sp", "mup"]
        "optim.name" = ["sgd", "adam"]
        "#,
    );
    let runs = s.expand().unwrap();
    assert_eq!(runs.len(), 3 * 3 * 2);
    let widths: BTreeSet<usize> = runs.iter().map(|r| r.cfg.model.width).collect();
    assert_eq!(widths, BTreeSet::from([16, 32, 64]));
    let lrs: BTreeSet<String> = runs.iter().map(|r| r.cfg.optim.lr.to_string()).collect();
    assert_eq!(
        lrs,
        BTreeSet::from(["0.01".into(), "0.1".into(), "1".into()])
    );
    for r in &runs {
        // Zipped keys vary together.
        let pair = (
            r.cfg.model.parametrization.as_str(),
            r.cfg.optim.name.as_str(),
        );
        assert!(pair == ("sp", "sgd") || pair == ("mup", "adam"), "{pair:?}");
    }
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), runs.len(), "ids must be unique");
    // Ids are a function of the overrides: the same on a second expansion.
    let again: Vec<String> = s.expand().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(again, runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    assert!(runs[0].id.starts_with("width16_lr0.01_"), "{}", runs[0].id);

    let g = spec(
        r#"
        [axes]
        "model.width" = { geomspace = [10, 1000, 3], round = true }
        "optim.momentum" = { linspace = [0, 0.5, 3] }
        seed = 7
        "#,
    )
    .expand()
    .unwrap();
    let w: BTreeSet<usize> = g.iter().map(|r| r.cfg.model.width).collect();
    assert_eq!(w, BTreeSet::from([10, 100, 1000]));
    let m: BTreeSet<String> = g.iter().map(|r| r.cfg.optim.momentum.to_string()).collect();
    assert_eq!(m, BTreeSet::from(["0".into(), "0.25".into(), "0.5".into()]));
    assert!(g.iter().all(|r| r.cfg.seed == 7));
}

#[test]
fn bad_sweep_files_name_the_key() {
    let e = spec_err("[axes]\n\"optim.lr\" = { logspace = [1, 2] }");
    assert!(e.contains("axes.optim.lr") && e.contains("logspace"), "{e}");
    let e = spec_err("[axes]\n\"optim.lr\" = { fancy = [1, 2, 3] }");
    assert!(e.contains("axes.optim.lr") && e.contains("expected"), "{e}");
    let e = spec_err("[[zip]]\n\"optim.lr\" = [0.1, 0.2]\nseed = [1, 2, 3]");
    assert!(e.contains("zip[0]") && e.contains("equal lengths"), "{e}");
    let e = spec_err("axis = 3");
    assert!(e.contains("axis") && e.contains("unknown sweep key"), "{e}");
    let e = spec_err("[axes]\nseed = [1]\n[[zip]]\nseed = [2]");
    assert!(
        e.contains("seed") && e.contains("more than one axis"),
        "{e}"
    );
    // A value that makes a bad config names the run and the key.
    let e = spec_err("[axes]\n\"model.width\" = [8, 0]");
    assert!(e.contains("model.width") && e.contains("width0"), "{e}");
    let e = spec_err("[axes]\n\"model.colour\" = [\"red\"]");
    assert!(e.contains("model.colour"), "{e}");
    let e = spec_err("max_ensemble = 0");
    assert!(e.contains("max_ensemble"), "{e}");
}

#[test]
fn shards_are_disjoint_and_cover_the_grid() {
    for n in 1..6 {
        let mut seen = vec![0; 23];
        for i in 0..n {
            let s = Shard::parse(&format!("{i}/{n}")).unwrap();
            for (p, count) in seen.iter_mut().enumerate() {
                if s.owns(p) {
                    *count += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "n = {n}: {seen:?}");
    }
    for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
    // `--shard slurm` needs an array task.
    let e = Shard::from_arg("slurm", |_| None).unwrap_err().to_string();
    assert!(
        e.contains("--shard") && e.contains("SLURM_ARRAY_TASK_ID"),
        "{e}"
    );
    assert_eq!(
        Shard::from_arg("1/3", |_| None).unwrap(),
        Shard { index: 1, count: 3 }
    );
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(Shard::from_slurm(env(&[])).unwrap(), None);
    let s = Shard::from_slurm(env(&[
        ("SLURM_ARRAY_TASK_ID", "5"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_ARRAY_TASK_MIN", "3"),
    ]))
    .unwrap();
    assert_eq!(s, Some(Shard { index: 2, count: 4 }));
    let e = Shard::from_slurm(env(&[
        ("SLURM_ARRAY_TASK_ID", "9"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID"), "{e}");
}

fn base_config(dtype: &str) -> Config {
    Config::from_toml_str(
        &format!(
            r#"
            dtype = "{dtype}"
            [model]
            width = 24
            [data]
            n_train = 300
            test_fraction = 0.2
            seed = 5
            [optim]
            name = "sgd"
            momentum = 0.9
            [train]
            steps = 30
            batch_size = 64
            log_every = 5
            "#
        ),
        &[],
    )
    .unwrap()
}

fn members(base: &Config, dir: &Path, seeds_lrs: &[(u64, f64)], tag: &str) -> Vec<Member> {
    seeds_lrs
        .iter()
        .map(|&(seed, lr)| {
            let mut cfg = base.clone();
            cfg.seed = seed;
            cfg.optim.lr = lr;
            Member {
                cfg,
                out: dir.join(format!("{tag}-{seed}-{lr}")),
            }
        })
        .collect()
}

fn alone(m: &Member, out: PathBuf) -> RunReport {
    train(
        &m.cfg,
        &RunOptions {
            out,
            device: Device::Cpu,
            progress: false,
        },
    )
    .unwrap()
}

/// Every numeric metric but the clock, step by step.
fn metric_rows(records: &[Record]) -> Vec<Vec<(String, f64)>> {
    records
        .iter()
        .map(|r| {
            r.iter()
                .filter(|(k, _)| *k != "time_s")
                .filter_map(|(k, v)| v.as_f64().map(|v| (k.to_string(), v)))
                .collect()
        })
        .collect()
}

fn weights(path: &Path) -> Vec<f64> {
    let (tensors, _) = load_checkpoint(path).unwrap();
    tensors
        .into_iter()
        .flat_map(|t| match t.data {
            TensorData::F32(v) => v.into_iter().map(f64::from).collect::<Vec<_>>(),
            TensorData::F64(v) => v,
        })
        .collect()
}

fn assert_close(a: &[Vec<(String, f64)>], b: &[Vec<(String, f64)>], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: number of records");
    for (ra, rb) in a.iter().zip(b) {
        let ka: Vec<&String> = ra.iter().map(|(k, _)| k).collect();
        let kb: Vec<&String> = rb.iter().map(|(k, _)| k).collect();
        assert_eq!(ka, kb, "{what}: metric names");
        for ((k, x), (_, y)) in ra.iter().zip(rb) {
            let err = (x - y).abs() / x.abs().max(y.abs()).max(1e-3);
            assert!(
                err <= tol,
                "{what}: {k} = {x} packed, {y} alone (rel {err:e})"
            );
        }
    }
}

/// Mini-batch SGD with momentum and a test set: packed members and the same
/// runs one by one agree exactly in f64 and to f32 rounding in f32.
#[test]
fn an_ensemble_trains_exactly_like_its_members_one_by_one() {
    let dir = temp_dir("ensemble-eq");
    for (dtype, tol) in [("f64", 0.0), ("f32", 1e-5)] {
        let base = base_config(dtype);
        let ms = members(
            &base,
            &dir,
            &[(0, 0.05), (1, 0.05), (2, 0.2), (3, 0.01)],
            dtype,
        );
        let mut done = Vec::new();
        let packed = train_ensemble(&ms, Device::Cpu, false, &mut |e, _| {
            done.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(done, vec![0, 1, 2, 3]);
        for (m, p) in ms.iter().zip(&packed) {
            assert_eq!(p.status, Status::Finished);
            let a = alone(m, dir.join(format!("alone-{dtype}-{}", m.cfg.seed)));
            let what = format!("{dtype} seed {} lr {}", m.cfg.seed, m.cfg.optim.lr);
            assert_close(
                &metric_rows(&p.records),
                &metric_rows(&a.records),
                tol,
                &what,
            );
            assert!(metric_rows(&p.records)[1]
                .iter()
                .any(|(k, _)| k == "test_loss"));
            let (wp, wa) = (
                weights(&p.dir.join("model.safetensors")),
                weights(&a.dir.join("model.safetensors")),
            );
            let worst = wp
                .iter()
                .zip(&wa)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(worst <= tol, "{what}: weights differ by {worst}");
            // Each member's checkpoint is a single model, as `train` writes it.
            let (_, meta) = load_checkpoint(&p.dir.join("model.safetensors")).unwrap();
            assert_eq!(meta["ensemble"], "1");
        }
    }
    // Members must share everything but seed and learning rate.
    let mut ms = members(&base_config("f32"), &dir, &[(0, 0.1), (1, 0.1)], "mixed");
    ms[1].cfg.model.width = 32;
    let e = train_ensemble(&ms, Device::Cpu, false, &mut |_, _| Ok(())).unwrap_err();
    assert!(
        e.to_string().contains("cannot train as one ensemble"),
        "{e}"
    );
}

/// Adam under muP, full batch: the per-member learning rates and the
/// parametrization's per-layer scales pack as well.
#[test]
fn an_adam_mup_ensemble_matches_its_members() {
    let dir = temp_dir("ensemble-adam");
    let mut base = base_config("f64");
    base.optim = Config::default().optim;
    base.optim.name = "adam".into();
    base.model.parametrization = "mup".into();
    base.model.base_width = 8;
    base.train.batch_size = 0;
    let ms = members(&base, &dir, &[(4, 1e-3), (4, 3e-3), (9, 1e-2)], "adam");
    let packed = train_ensemble(&ms, Device::Cpu, false, &mut |_, _| Ok(())).unwrap();
    for (m, p) in ms.iter().zip(&packed) {
        let a = alone(m, dir.join(format!("alone-{}", m.cfg.optim.lr)));
        assert_close(
            &metric_rows(&p.records),
            &metric_rows(&a.records),
            0.0,
            "adam",
        );
    }
}

/// A member that diverges is recorded as diverged at once, while the others
/// finish exactly as they would alone: its NaNs reach no other member.
#[test]
fn a_diverging_member_does_not_stop_or_touch_the_others() {
    let dir = temp_dir("ensemble-div");
    let mut base = base_config("f64");
    base.train.loss = "mse".into();
    base.data.one_hot = true;
    base.train.batch_size = 0;
    base.optim.momentum = 0.0;
    let ms = members(&base, &dir, &[(0, 0.1), (1, 1e4), (2, 0.05)], "div");
    let mut order = Vec::new();
    let packed = train_ensemble(&ms, Device::Cpu, false, &mut |e, r| {
        order.push((e, r.diverged()));
        Ok(())
    })
    .unwrap();
    assert_eq!(order[0], (1, true), "the diverged member is reported first");
    let Status::Diverged { step, .. } = packed[1].status else {
        panic!("member 1 should diverge: {:?}", packed[1].status);
    };
    assert!(step < 30);
    assert!(!packed[1].dir.join("model.safetensors").exists());
    let summary = std::fs::read_to_string(packed[1].dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"diverged\""), "{summary}");
    for e in [0, 2] {
        assert_eq!(packed[e].status, Status::Finished);
        let a = alone(&ms[e], dir.join(format!("alone-{e}")));
        assert_close(
            &metric_rows(&packed[e].records),
            &metric_rows(&a.records),
            0.0,
            "survivor",
        );
    }
}

const SMALL_SWEEP: &str = r#"
name = "small"
max_ensemble = 4
[base]
[base.model]
width = 16
[base.data]
n_train = 200
seed = 0
one_hot = true
[base.optim]
name = "gd"
[base.train]
steps = 20
log_every = 5
loss = "mse"
[axes]
"model.width" = [8, 16]
"optim.lr" = [0.05, 0.2, 5000.0]
seed = [0, 1]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn committed(out: &Path) -> BTreeSet<String> {
    std::fs::read_dir(out.join("runs"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn grid_ids(spec_path: &Path) -> BTreeSet<String> {
    SweepSpec::load(spec_path)
        .unwrap()
        .expand()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Cells of one CSV line (RFC 4180 quoting, no newlines inside cells).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = csv_cells(lines.next().unwrap());
    lines
        .map(|l| {
            let cells = csv_cells(l);
            assert_eq!(cells.len(), header.len(), "{l}");
            header.iter().cloned().zip(cells).collect()
        })
        .collect()
}

/// The number before `what` in the sweep's summary line.
fn count(stdout: &str, what: &str) -> usize {
    let end = stdout
        .find(what)
        .unwrap_or_else(|| panic!("no `{what}` in {stdout}"));
    stdout[..end]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before `{what}` in {stdout}"))
}

/// The whole grid in one command: divergence is recorded and the sweep
/// goes on; the report has one row per run and the transfer plot.
#[test]
fn a_sweep_records_divergence_and_reports_every_run() {
    let dir = temp_dir("sweep-run");
    let spec_path = write(&dir, "s.toml", SMALL_SWEEP);
    let out = dir.join("out");
    let stdout = sweep_ok(&spec_path, &out, &["--jobs", "2"]);
    assert!(
        stdout.contains("12 runs: 8 finished, 4 diverged"),
        "{stdout}"
    );
    assert!(stdout.contains("(4 ensembles)"), "{stdout}");
    assert_eq!(committed(&out), grid_ids(&spec_path));
    let rows = csv_rows(&out.join("report.csv"));
    assert_eq!(rows.len(), 12);
    for r in &rows {
        let diverged = r["status"] == "diverged";
        assert_eq!(diverged, r["optim.lr"] == "5000.0", "{r:?}");
        assert_eq!(r["final_loss"] == "nan", diverged, "{r:?}");
        let best: f64 = r["best_loss"].parse().unwrap();
        assert!(best.is_finite() && best > 0.0);
        if !diverged {
            let fin: f64 = r["final_loss"].parse().unwrap();
            assert!(best <= fin);
            assert!(r.contains_key("best_train_acc"));
        }
    }
    assert!(out.join("lr_transfer.svg").is_file());
    // Another worker joining the finished store finds nothing to do; a
    // report can be redone.
    let again = sweep_ok(&spec_path, &out, &[]);
    assert!(
        again.contains("12 runs: 0 finished, 0 diverged, 12 done before"),
        "{again}"
    );
    let rep = lmech(&["sweep", "report", out.to_str().unwrap()]);
    assert!(rep.status.success());
    assert!(String::from_utf8_lossy(&rep.stdout).contains("report: 12 runs"));
}

/// Shards (by --shard and by Slurm's variables) write into one store; their
/// union is the grid, nothing runs twice, and the report merges them.
#[test]
fn shards_fill_one_store_that_the_report_merges() {
    let dir = temp_dir("sweep-shards");
    let spec_path = write(&dir, "s.toml", SMALL_SWEEP);
    let out = dir.join("out");
    let mut per_shard = Vec::new();
    for i in 0..3 {
        let before = committed(&out);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lmech"));
        cmd.args(["sweep", spec_path.to_str().unwrap(), "--out"])
            .arg(&out)
            .args(["--device", "cpu", "--quiet"]);
        if i == 2 {
            // Slurm numbers this array 4-6.
            cmd.env("SLURM_ARRAY_TASK_ID", "6")
                .env("SLURM_ARRAY_TASK_MIN", "4")
                .env("SLURM_ARRAY_TASK_COUNT", "3")
                .args(["--shard", "slurm"]);
        } else {
            cmd.arg("--shard").arg(format!("{i}/3"));
        }
        let o = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains(&format!("shard {i}/3: 4 runs")), "{stdout}");
        let after = committed(&out);
        assert!(before.is_subset(&after));
        per_shard.push(after.difference(&before).cloned().collect::<BTreeSet<_>>());
    }
    let mut union = BTreeSet::new();
    for s in &per_shard {
        assert_eq!(s.len(), 4);
        assert!(union.is_disjoint(s), "shards overlap");
        union.extend(s.iter().cloned());
    }
    assert_eq!(union, grid_ids(&spec_path));
    let rep = lmech(&["sweep", "report", out.to_str().unwrap()]);
    assert!(rep.status.success());
    assert_eq!(csv_rows(&out.join("report.csv")).len(), 12);
    // A store refuses a different grid.
    let other = write(&dir, "o.toml", &SMALL_SWEEP.replace("[8, 16]", "[8, 32]"));
    let o = lmech(&[
        "sweep",
        other.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--resume",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another sweep"));
}

/// Every file of every committed run, with its bytes and modification time.
fn snapshot(out: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    for id in committed(out) {
        for f in std::fs::read_dir(out.join("runs").join(&id)).unwrap() {
            let p = f.unwrap().path();
            let meta = std::fs::metadata(&p).unwrap();
            files.insert(
                p.clone(),
                (std::fs::read(&p).unwrap(), meta.modified().unwrap()),
            );
        }
    }
    files
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The records of `dir/metrics.jsonl`.
fn read_records(dir: &Path) -> Vec<Record> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// SIGKILL in the middle of a sweep, then --resume: every run of the grid is
/// committed exactly once, runs finished before the kill are untouched, and
/// interrupted runs continue from their restart points to the results an
/// uninterrupted run gives.
#[test]
fn a_sweep_killed_mid_way_resumes_without_losing_or_repeating_runs() {
    let dir = temp_dir("sweep-kill");
    let spec_text = r#"
        name = "kill"
        max_ensemble = 2
        [base]
        [base.model]
        width = 32
        [base.data]
        n_train = 500
        seed = 0
        [base.train]
        steps = 600
        batch_size = 50
        log_every = 50
        checkpoint_every = 100
        [axes]
        "optim.lr" = [0.05, 0.1, 0.2]
        seed = [0, 1, 2, 3]
    "#;
    let spec_path = write(&dir, "s.toml", spec_text);
    let out = dir.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args([
            "--threads",
            "1",
            "sweep",
            spec_path.to_str().unwrap(),
            "--out",
        ])
        .arg(&out)
        .args(["--device", "cpu", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Each worker trains a run in work/<id>/<worker>/.
    let restart_points = || -> Vec<PathBuf> {
        let dirs = |d: PathBuf| -> Vec<PathBuf> {
            std::fs::read_dir(d)
                .map(|rd| rd.map(|e| e.unwrap().path()).collect())
                .unwrap_or_default()
        };
        dirs(out.join("work"))
            .into_iter()
            .flat_map(dirs)
            .filter(|p| p.join("resume.safetensors").exists())
            .collect()
    };
    wait_for(
        "two committed runs and a restart point",
        Duration::from_secs(300),
        || committed(&out).len() >= 2 && !restart_points().is_empty(),
    );
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = snapshot(&out);
    let done_before = committed(&out);
    let all = grid_ids(&spec_path);
    assert!(
        done_before.len() < all.len(),
        "the sweep finished before the kill; nothing was tested"
    );
    // What the interrupted runs had logged before their restart points.
    let interrupted: Vec<(String, Vec<Record>)> = restart_points()
        .into_iter()
        .filter_map(|work| {
            let (_, meta) = load_checkpoint(&work.join("resume.safetensors")).ok()?;
            let step: f64 = meta["step"].parse().ok()?;
            let early = read_records(&work)
                .into_iter()
                .filter(|r| r.get("step").and_then(|v| v.as_f64()).unwrap() < step)
                .collect();
            let id = work.parent()?.file_name()?.to_string_lossy().into_owned();
            Some((id, early))
        })
        .collect();
    assert!(!interrupted.is_empty());
    let stdout = sweep_ok(&spec_path, &out, &["--resume"]);
    // Runs whose summary was written just before the kill are committed
    // without training again; none is trained twice.
    let skipped = count(&stdout, " done before");
    assert!(
        skipped >= done_before.len() && skipped <= done_before.len() + 2,
        "{stdout}"
    );
    assert_eq!(
        count(&stdout, " finished,") + skipped,
        all.len(),
        "{stdout}"
    );
    assert_eq!(count(&stdout, " failed"), 0);
    assert_eq!(committed(&out), all);
    for (path, (bytes, mtime)) in &before {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
        assert_eq!(
            &meta.modified().unwrap(),
            mtime,
            "{} rewritten",
            path.display()
        );
    }
    assert_eq!(std::fs::read_dir(out.join("work")).unwrap().count(), 0);
    assert_eq!(csv_rows(&out.join("report.csv")).len(), all.len());
    // Interrupted runs continued from their restart points: the records
    // logged before it are the killed process's own (clock included), and
    // the whole run equals one trained without interruption.
    let mut continued = 0;
    for (id, early) in &interrupted {
        let run = out.join("runs").join(id);
        let records = read_records(&run);
        if !early.is_empty() && records.get(..early.len()) == Some(&early[..]) {
            continued += 1;
        }
        let cfg = Config::load(&run.join("config.toml"), &[]).unwrap();
        let reference = train(
            &cfg,
            &RunOptions {
                out: dir.join(format!("reference-{id}")),
                device: Device::Cpu,
                progress: false,
            },
        )
        .unwrap();
        // The sweep trained it in an ensemble of two (f32): equal to f32
        // rounding to a run alone.
        assert_close(
            &metric_rows(&records),
            &metric_rows(&reference.records),
            1e-6,
            id,
        );
    }
    assert_eq!(
        continued,
        interrupted.len(),
        "every interrupted run continues from a restart point"
    );
}

/// A run killed after a restart point continues from it and ends exactly as
/// an uninterrupted run: same metrics at every logged step, same weights.
#[test]
fn a_killed_run_restarts_from_its_checkpoint() {
    let dir = temp_dir("resume-ckpt");
    let config = write(
        &dir,
        "c.toml",
        r#"
        [model]
        width = 64
        [data]
        n_train = 1000
        [optim]
        name = "adam"
        lr = 0.001
        [train]
        steps = 3000
        batch_size = 100
        log_every = 100
        checkpoint_every = 200
        "#,
    );
    let run = |out: &Path| {
        let o = lmech(&[
            "train",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let reference = dir.join("reference");
    run(&reference);
    assert!(!reference.join("resume.safetensors").exists());
    let killed = dir.join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(["train", config.to_str().unwrap(), "--out"])
        .arg(&killed)
        .args(["--quiet", "--device", "cpu"])
        .spawn()
        .unwrap();
    wait_for("a restart point", Duration::from_secs(120), || {
        killed.join("resume.safetensors").exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.join("summary.json").exists(),
        "the run finished before the kill; nothing was tested"
    );
    let (_, meta) = load_checkpoint(&killed.join("resume.safetensors")).unwrap();
    let restart_step: u64 = meta["step"].parse().unwrap();
    assert!((200..3000).contains(&restart_step));
    let early: Vec<Record> = read_records(&killed)
        .into_iter()
        .filter(|r| r.get("step").and_then(|v| v.as_f64()).unwrap() < restart_step as f64)
        .collect();
    assert!(!early.is_empty());
    run(&killed);
    let records = read_records;
    // The records before the restart point are the killed process's own,
    // clock included: the run continued rather than started over.
    assert_eq!(records(&killed)[..early.len()], early[..]);
    assert_close(
        &metric_rows(&records(&killed)),
        &metric_rows(&records(&reference)),
        0.0,
        "restarted run",
    );
    assert_eq!(
        weights(&killed.join("model.safetensors")),
        weights(&reference.join("model.safetensors"))
    );
    assert!(!killed.join("resume.safetensors").exists());
}

/// Observers run one model at a time, so they pack E = 1, and the report
/// draws the coordinate check and the sharpness against 2/eta.
#[test]
fn the_report_draws_coordinate_checks_and_sharpness() {
    let dir = temp_dir("sweep-plots");
    let spec_path = write(
        &dir,
        "s.toml",
        r#"
        [base]
        [base.data]
        n_train = 100
        [base.train]
        steps = 6
        log_every = 1
        [base.observe]
        every = 1
        [base.observe.coord]
        n = 50
        [base.observe.sharpness]
        max_iter = 10
        [axes]
        "model.width" = [8, 16]
        "optim.lr" = [0.1, 0.5]
        "#,
    );
    let out = dir.join("out");
    let stdout = sweep_ok(&spec_path, &out, &[]);
    assert!(stdout.contains("(4 ensembles)"), "{stdout}");
    for plot in ["coord_check.svg", "sharpness.svg", "lr_transfer.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(svg.contains("<svg"), "{plot}");
    }
    let sharp = std::fs::read_to_string(out.join("sharpness.svg")).unwrap();
    assert!(sharp.contains("2/eta, lr 0.5"));
    let coord = std::fs::read_to_string(out.join("coord_check.svg")).unwrap();
    assert!(coord.contains("layer 0, step 1") && coord.contains("layer 2, step 4"));
    let rows = csv_rows(&out.join("report.csv"));
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|r| r.contains_key("final_sharpness") && r.contains_key("best_coord_l1.1")));
}

/// A model with many weight products (a transformer block: 8 of them, 4
/// steps) would put 32 curves in the coordinate check's legend, more than
/// its panel holds: the report draws the last step's, one per layer.
#[test]
fn coordinate_checks_of_deep_models_draw_the_last_step() {
    let dir = temp_dir("sweep-coord-deep");
    let spec_path = write(
        &dir,
        "s.toml",
        r#"
        [base.model]
        arch = "transformer"
        vocab = 6
        depth = 1
        heads = 2
        [base.data]
        source = "sort"
        length = 4
        vocab = 6
        n = 32
        n_test = 8
        [base.optim]
        name = "adam"
        lr = 0.01
        [base.train]
        steps = 4
        log_every = 1
        loss = "xent"
        [base.observe]
        every = 1
        [base.observe.coord]
        n = 16
        [axes]
        "model.width" = [8, 16]
        "#,
    );
    let out = dir.join("out");
    sweep_ok(&spec_path, &out, &[]);
    let coord = std::fs::read_to_string(out.join("coord_check.svg")).unwrap();
    assert!(coord.contains("layer 0, step 4") && coord.contains("layer 7, step 4"));
    assert!(
        !coord.contains("step 1") && coord.contains(", step 4"),
        "{coord}"
    );
}

/// The sweep examples parse, expand to their documented grids and pack as
/// their comments say.
#[test]
fn the_sweep_examples_expand_and_pack_as_documented() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for (file, runs, ensembles) in [
        ("mup_transfer.toml", 140, 10),
        ("coord_check.toml", 36, 36),
        ("eos_sweep.toml", 3, 3),
        ("resnet_width_sweep.toml", 24, 4),
        ("mup_cnn.toml", 40, 8),
        ("mup_transformer.toml", 36, 6),
    ] {
        let spec = SweepSpec::load(&examples.join(file)).unwrap();
        let all = spec.expand().unwrap();
        assert_eq!(all.len(), runs, "{file}");
        let indices: Vec<usize> = (0..all.len()).collect();
        let packs = lmech::sweep::pack::pack(&all, &indices, spec.max_ensemble).unwrap();
        assert_eq!(packs.len(), ensembles, "{file}");
    }
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/sweep/ensemble64.toml");
    let spec = SweepSpec::load(&bench).unwrap();
    let all = spec.expand().unwrap();
    let packs = lmech::sweep::pack::pack(&all, &(0..64).collect::<Vec<_>>(), 64).unwrap();
    assert_eq!((all.len(), packs.len()), (64, 1));
}
