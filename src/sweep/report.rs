//! `lmech sweep report DIR`: merges the committed runs of every shard into
//! one table, `report.csv` (one row per run: its axis values, status,
//! hyperparameters, and the final and best value of every metric), and
//! draws the standard plots of the quantities the sweep recorded:
//!
//! - `lr_transfer.svg`: final training loss against log10 learning rate,
//!   one curve per width (muP transfer), a panel per value of the other
//!   axes; diverged runs leave their point out;
//! - `coord_check.svg`: mean |h| of each layer's output against log2 width
//!   at the first recorded steps after initialization (`[observe.coord]`;
//!   only the last of them for models with many layers, so the legend
//!   fits);
//! - `sharpness.svg`: sharpness against step per run, with each learning
//!   rate's 2/eta line (`[observe.sharpness]`).
//!
//! Values are means over the runs that differ only in seed. A committed run
//! that cannot be read (a file missing, cut short or not parsing) is left
//! out and named with the reason; the others are reported.

use crate::error::{Error, Result};
use crate::run::metrics::push_row;
use crate::run::{plot_panels, Panel, Record};
use crate::sweep::store::{read_manifest, ManifestRun};
use crate::sweep::verify::{verify, Depth};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Metrics whose "best" means nothing (the schedule's rate, the clock):
/// no `best_` column.
const NO_BEST: [&str; 2] = ["lr", "time_s"];

/// Coordinate checks show this many steps after initialization.
const COORD_STEPS: usize = 4;
/// Curves a coordinate-check panel's legend holds inside a 500-pixel
/// panel; past it (a transformer has 14 weight products, 56 curves) only
/// the last step's curves are drawn, one per layer.
const COORD_CURVES: usize = 16;

pub struct ReportOutcome {
    /// Committed runs in the table.
    pub rows: usize,
    /// Runs of the grid not committed yet (by any worker).
    pub missing: Vec<String>,
    /// `(id, reason)` of committed runs that could not be read.
    pub skipped: Vec<(String, String)>,
    pub table: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// One committed run, read back.
struct RunData {
    overrides: Vec<(String, String)>,
    summary: serde_json::Map<String, serde_json::Value>,
    records: Vec<Record>,
}

impl RunData {
    fn axis(&self, key: &str) -> Option<&str> {
        self.overrides
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn axis_f64(&self, key: &str) -> Option<f64> {
        self.axis(key).and_then(|v| v.parse().ok())
    }

    /// A hyperparameter from `summary.json` (the axis value if it is one).
    fn hyper_f64(&self, key: &str, summary_key: &str) -> Option<f64> {
        self.axis_f64(key)
            .or_else(|| self.summary.get(summary_key).and_then(|v| v.as_f64()))
    }

    /// The values of the axes not in `except`, as a label.
    fn group(&self, except: &[&str]) -> String {
        let parts: Vec<String> = self
            .overrides
            .iter()
            .filter(|(k, _)| !except.contains(&k.as_str()))
            .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), v))
            .collect();
        if parts.is_empty() {
            "all runs".into()
        } else {
            parts.join(", ")
        }
    }

    /// The last value of `key` (possibly non-finite: a diverged loss).
    fn last(&self, key: &str) -> Option<f64> {
        self.records
            .iter()
            .rev()
            .find_map(|r| r.get(key).and_then(|v| v.as_f64()))
    }

    fn best(&self, key: &str) -> Option<f64> {
        let higher_is_better = key.contains("acc");
        self.records
            .iter()
            .filter_map(|r| r.get(key).and_then(|v| v.as_f64()))
            .filter(|v| v.is_finite())
            .reduce(|a, b| if (b > a) == higher_is_better { b } else { a })
    }

    fn diverged(&self) -> bool {
        self.summary.get("status").and_then(|s| s.as_str()) == Some("diverged")
    }

    fn final_train_loss(&self) -> Option<f64> {
        self.last("train_loss").or_else(|| self.last("loss"))
    }
}

fn read_run(dir: &Path, m: &ManifestRun) -> Result<Option<RunData>> {
    let run = dir.join("runs").join(&m.id);
    if !run.is_dir() {
        return Ok(None);
    }
    verify(&run, Depth::Sizes)?;
    let summary_path = run.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).map_err(|e| Error::io(&summary_path, e))?;
    let summary = serde_json::from_str(&text)
        .map_err(|e| Error::data(&summary_path, format!("not a run summary: {e}")))?;
    let metrics = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).map_err(|e| Error::io(&metrics, e))?;
    let records = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| Error::data(&metrics, format!("bad metrics line: {e}")))
        })
        .collect::<Result<Vec<Record>>>()?;
    let overrides = m
        .overrides
        .iter()
        .map(|(k, v)| (k.clone(), v.trim_matches('"').to_string()))
        .collect();
    Ok(Some(RunData {
        overrides,
        summary,
        records,
    }))
}

/// Writes `DIR/report.csv` and the plots the recorded metrics allow.
pub fn write_report(dir: &Path) -> Result<ReportOutcome> {
    let manifest = read_manifest(dir)?;
    let mut runs = Vec::new();
    let mut ids = Vec::new();
    let mut missing = Vec::new();
    let mut skipped = Vec::new();
    for m in &manifest.runs {
        match read_run(dir, m) {
            Ok(Some(r)) => {
                runs.push(r);
                ids.push(m.id.clone());
            }
            Ok(None) => missing.push(m.id.clone()),
            Err(e) => skipped.push((m.id.clone(), e.to_string())),
        }
    }
    let table = dir.join("report.csv");
    crate::run::write_atomic(&table, table_csv(&manifest.axes, &ids, &runs).as_bytes())?;
    let mut plots = Vec::new();
    let axes: Vec<&str> = manifest.axes.iter().map(String::as_str).collect();
    let figures = [
        ("lr_transfer.svg", lr_transfer(&axes, &runs)),
        ("coord_check.svg", coord_check(&axes, &runs)),
        ("sharpness.svg", sharpness(&runs)),
    ];
    for (name, panels) in figures {
        if !panels.is_empty() {
            let path = dir.join(name);
            plot_panels(&path, &panels)?;
            plots.push(path);
        }
    }
    Ok(ReportOutcome {
        rows: runs.len(),
        missing,
        skipped,
        table,
        plots,
    })
}

fn table_csv(axes: &[String], ids: &[String], runs: &[RunData]) -> String {
    let mut summary_keys: Vec<String> = Vec::new();
    let mut metrics: Vec<String> = Vec::new();
    for r in runs {
        for (k, v) in &r.summary {
            let named = k == "final" || k == "status" || axes.contains(k);
            if !named && !v.is_object() && !summary_keys.contains(k) {
                summary_keys.push(k.clone());
            }
        }
        for rec in &r.records {
            for (k, v) in rec.iter() {
                if k != "step" && v.as_f64().is_some() && !metrics.iter().any(|m| m == k) {
                    metrics.push(k.to_string());
                }
            }
        }
    }
    let mut header = vec!["id".to_string(), "status".to_string()];
    header.extend(axes.iter().cloned());
    header.extend(summary_keys.iter().cloned());
    for m in &metrics {
        header.push(format!("final_{m}"));
        if !NO_BEST.contains(&m.as_str()) {
            header.push(format!("best_{m}"));
        }
    }
    let mut out = String::new();
    push_row(&mut out, header.into_iter());
    let num = |v: Option<f64>| v.map(crate::run::record::format_float).unwrap_or_default();
    for (id, r) in ids.iter().zip(runs) {
        let mut row = vec![
            id.clone(),
            r.summary
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_string(),
        ];
        row.extend(axes.iter().map(|a| r.axis(a).unwrap_or("").to_string()));
        row.extend(summary_keys.iter().map(|k| match r.summary.get(k) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }));
        for m in &metrics {
            row.push(num(r.last(m)));
            if !NO_BEST.contains(&m.as_str()) {
                row.push(num(r.best(m)));
            }
        }
        push_row(&mut out, row.into_iter());
    }
    out
}

/// The mean of the values that share a key.
fn mean_by<K: Ord + Clone>(items: impl Iterator<Item = (K, f64)>) -> Vec<(K, f64)> {
    let mut acc: BTreeMap<K, (f64, usize)> = BTreeMap::new();
    for (k, v) in items {
        let e = acc.entry(k).or_insert((0.0, 0));
        e.0 += v;
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(k, (s, n))| (k, s / n as f64))
        .collect()
}

/// Numbers as sortable keys (all values here are finite).
fn key(x: f64) -> i64 {
    (x * 1e9).round() as i64
}

fn groups<'a>(runs: &'a [RunData], except: &[&str]) -> BTreeMap<String, Vec<&'a RunData>> {
    let mut g: BTreeMap<String, Vec<&RunData>> = BTreeMap::new();
    for r in runs {
        g.entry(r.group(except)).or_default().push(r);
    }
    g
}

/// The runs of one (width, learning rate) point of a transfer plot.
struct Cell {
    width: f64,
    lr: f64,
    losses: Vec<f64>,
    diverged: bool,
}

fn lr_transfer(axes: &[&str], runs: &[RunData]) -> Vec<Panel> {
    const LR: &str = "optim.lr";
    const WIDTH: &str = "model.width";
    if !axes.contains(&LR) || !axes.contains(&WIDTH) {
        return Vec::new();
    }
    let mut panels = Vec::new();
    for (label, members) in groups(runs, &[LR, WIDTH, "seed"]) {
        // Runs of one (width, lr) that all finished give a point.
        let mut cells: BTreeMap<(i64, i64), Cell> = BTreeMap::new();
        for r in &members {
            let (Some(width), Some(lr)) = (r.axis_f64(WIDTH), r.axis_f64(LR)) else {
                continue;
            };
            let c = cells.entry((key(width), key(lr))).or_insert(Cell {
                width,
                lr,
                losses: Vec::new(),
                diverged: false,
            });
            match r.final_train_loss().filter(|l| l.is_finite()) {
                Some(l) if !r.diverged() => c.losses.push(l),
                _ => c.diverged = true,
            }
        }
        let mut series: BTreeMap<i64, (f64, Vec<(f64, f64)>)> = BTreeMap::new();
        for c in cells.into_values() {
            let s = series.entry(key(c.width)).or_insert((c.width, Vec::new()));
            if !c.diverged && !c.losses.is_empty() {
                let mean = c.losses.iter().sum::<f64>() / c.losses.len() as f64;
                s.1.push((c.lr.log10(), mean));
            }
        }
        let series: Vec<(String, Vec<(f64, f64)>)> = series
            .into_values()
            .map(|(w, pts)| (format!("width {w}"), pts))
            .collect();
        let log_y = series.iter().all(|(_, p)| p.iter().all(|&(_, y)| y > 0.0));
        panels.push(Panel {
            title: format!("final train loss: {label}"),
            x_label: "log10 learning rate".into(),
            y_label: "final train loss".into(),
            series,
            log_y,
        });
    }
    panels
}

fn coord_check(axes: &[&str], runs: &[RunData]) -> Vec<Panel> {
    const WIDTH: &str = "model.width";
    let has_coord = runs
        .iter()
        .any(|r| r.records.iter().any(|rec| rec.get("coord_l1.0").is_some()));
    if !has_coord || !axes.contains(&WIDTH) {
        return Vec::new();
    }
    let mut panels = Vec::new();
    for (label, members) in groups(runs, &[WIDTH, "seed"]) {
        // (layer, step, width) -> mean |h| over seeds.
        let mut points = Vec::new();
        for r in &members {
            let Some(w) = r.axis_f64(WIDTH) else { continue };
            let steps: Vec<u64> = {
                let mut s: Vec<u64> = r
                    .records
                    .iter()
                    .filter(|rec| rec.get("coord_l1.0").is_some())
                    .filter_map(|rec| rec.get("step").and_then(|v| v.as_f64()))
                    .map(|s| s as u64)
                    .filter(|&s| s >= 1)
                    .collect();
                s.sort_unstable();
                s.dedup();
                s.truncate(COORD_STEPS);
                s
            };
            for rec in &r.records {
                let Some(step) = rec.get("step").and_then(|v| v.as_f64()) else {
                    continue;
                };
                if !steps.contains(&(step as u64)) {
                    continue;
                }
                for (k, v) in rec.iter() {
                    let Some(layer) = k.strip_prefix("coord_l1.") else {
                        continue;
                    };
                    let (Ok(layer), Some(v)) = (layer.parse::<usize>(), v.as_f64()) else {
                        continue;
                    };
                    if v.is_finite() {
                        points.push(((layer, step as u64, key(w)), (w, v)));
                    }
                }
            }
        }
        let means = mean_by(points.iter().map(|(k, (_, v))| (*k, *v)));
        let widths: BTreeMap<i64, f64> =
            points.iter().map(|((_, _, k), (w, _))| (*k, *w)).collect();
        let mut series: BTreeMap<(usize, u64), Vec<(f64, f64)>> = BTreeMap::new();
        for ((layer, step, wk), v) in means {
            series
                .entry((layer, step))
                .or_default()
                .push((widths[&wk].log2(), v));
        }
        let mut title = format!("coordinate check: {label}");
        if series.len() > COORD_CURVES {
            let last = series.keys().map(|(_, s)| *s).max().unwrap_or(0);
            series.retain(|(_, s), _| *s == last);
            title = format!("{title}, step {last}");
        }
        panels.push(Panel {
            title,
            x_label: "log2 width".into(),
            y_label: "mean |h| of the layer's output".into(),
            series: series
                .into_iter()
                .map(|((l, s), p)| (format!("layer {l}, step {s}"), p))
                .collect(),
            log_y: true,
        });
    }
    panels
}

fn sharpness(runs: &[RunData]) -> Vec<Panel> {
    const LR: &str = "optim.lr";
    let has = runs
        .iter()
        .any(|r| r.records.iter().any(|rec| rec.get("sharpness").is_some()));
    if !has {
        return Vec::new();
    }
    let mut panels = Vec::new();
    for (label, members) in groups(runs, &[LR, "seed"]) {
        let mut series = Vec::new();
        let mut lines: BTreeMap<i64, f64> = BTreeMap::new();
        let mut last_step: f64 = 0.0;
        for r in &members {
            let pts: Vec<(f64, f64)> = r
                .records
                .iter()
                .filter_map(|rec| {
                    Some((rec.get("step")?.as_f64()?, rec.get("sharpness")?.as_f64()?))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            last_step = pts.iter().fold(last_step, |m, p| m.max(p.0));
            let Some(lr) = r.hyper_f64(LR, "lr") else {
                continue;
            };
            let seed = r
                .axis("seed")
                .map(|s| format!(", seed {s}"))
                .unwrap_or_default();
            series.push((format!("sharpness, lr {lr}{seed}"), pts));
            lines.insert(key(lr), lr);
        }
        for lr in lines.into_values() {
            series.push((
                format!("2/eta, lr {lr}"),
                vec![(0.0, 2.0 / lr), (last_step, 2.0 / lr)],
            ));
        }
        panels.push(Panel {
            title: format!("sharpness: {label}"),
            x_label: "step".into(),
            y_label: "top Hessian eigenvalue".into(),
            series,
            log_y: false,
        });
    }
    panels
}
