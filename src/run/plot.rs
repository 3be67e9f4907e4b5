//! SVG line plots of training curves (loss against step and the like),
//! drawn with plotters' SVG backend so no font or image library is needed:
//! text goes into the SVG as `<text>` elements and the viewer renders it.
//!
//! A plot is a by-product of a run, so awkward data never fails it: points
//! with non-finite coordinates (and non-positive values on a log axis) are
//! skipped, a single point or a constant curve gets a padded axis, and no
//! data at all gives a plot saying "no data".

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::atomic::write_atomic;
use super::metrics::MetricsLog;
use crate::error::{Error, Result};

const SIZE: (u32, u32) = (800, 500);
/// Above this many points a curve is thinned (keeping each bucket's extremes,
/// so spikes survive): a 100k-step run would otherwise give a multi-megabyte
/// SVG that viewers render slowly, with no visible gain at this size.
const MAX_POINTS: usize = 4000;
/// Curves this sparse (e.g. test loss evaluated now and then) also get a
/// marker per point, so single points are visible at all.
const MARKER_MAX_POINTS: usize = 50;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

struct Labels<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
}

/// One chart of a figure: named series of (x, y) points.
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    pub log_y: bool,
}

/// Writes an SVG plot of `series` (name, points) to `path` atomically.
pub fn plot_curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
) -> Result<()> {
    let panel = Panel {
        title: title.to_string(),
        x_label: x_label.to_string(),
        y_label: y_label.to_string(),
        series: series.to_vec(),
        log_y,
    };
    plot_panels(path, &[panel])
}

/// Writes an SVG of `panels` side by side to `path` atomically.
pub fn plot_panels(path: &Path, panels: &[Panel]) -> Result<()> {
    let mut svg = String::new();
    {
        let size = (SIZE.0 * panels.len().max(1) as u32, SIZE.1);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let areas = root.split_evenly((1, panels.len().max(1)));
        let mut drawn = root.fill(&WHITE);
        for (panel, area) in panels.iter().zip(&areas) {
            drawn = drawn.and_then(|()| draw_panel(area, panel));
        }
        drawn
            .and_then(|()| root.present())
            .map_err(|e| Error::msg(format!("{}: cannot draw plot: {e}", path.display())))?;
    }
    write_atomic(path, svg.as_bytes())
}

fn draw_panel(root: &Area, panel: &Panel) -> DrawResult {
    let log_y = panel.log_y;
    let curves: Vec<(&str, Vec<(f64, f64)>)> = panel
        .series
        .iter()
        .map(|(name, points)| {
            let kept = points
                .iter()
                .copied()
                .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0))
                .collect();
            (name.as_str(), thin(kept))
        })
        .collect();
    let labels = Labels {
        title: &panel.title,
        x: &panel.x_label,
        y: &panel.y_label,
    };
    match bounds(&curves) {
        None => draw_no_data(root, &labels),
        Some((x, y)) if log_y => draw_chart(
            root,
            &labels,
            x,
            LogCoord::from(pad_log(y).log_scale()),
            &curves,
        ),
        Some((x, y)) => draw_chart(
            root,
            &labels,
            x,
            RangedCoordf64::from(pad_linear(y)),
            &curves,
        ),
    }
}

/// The named series of `keys` that the run logged, against step.
fn logged(log: &MetricsLog, keys: &[&str]) -> Vec<(String, Vec<(f64, f64)>)> {
    keys.iter()
        .map(|&key| (key.to_string(), log.series(key)))
        .filter(|(_, points)| !points.is_empty())
        .collect()
}

/// Writes `dir/loss.svg`: `loss` and, when logged, `test_loss` against step,
/// on a log axis when every value is positive (loss curves span decades).
pub fn plot_loss(dir: &Path, log: &MetricsLog) -> Result<()> {
    let series = logged(log, &["loss", "test_loss"]);
    let all_positive = series
        .iter()
        .all(|(_, points)| points.iter().all(|&(_, y)| y > 0.0));
    plot_curves(
        &dir.join("loss.svg"),
        "loss",
        "step",
        "loss",
        &series,
        all_positive,
    )
}

/// Writes `dir/accuracy.svg`, `train_acc` and `test_acc` against step,
/// when the run logged an accuracy (classification losses): the figure of
/// grokking, test accuracy jumping long after train accuracy reached 1.
pub fn plot_accuracy(dir: &Path, log: &MetricsLog) -> Result<()> {
    let series = logged(log, &["train_acc", "test_acc"]);
    if series.is_empty() {
        return Ok(());
    }
    plot_curves(
        &dir.join("accuracy.svg"),
        "accuracy",
        "step",
        "accuracy",
        &series,
        false,
    )
}

fn draw_chart<Y>(
    root: &Area,
    labels: &Labels,
    x: Range<f64>,
    y: Y,
    curves: &[(&str, Vec<(f64, f64)>)],
) -> DrawResult
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(labels.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(RangedCoordf64::from(pad_linear(x)), y)?;
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .draw()?;

    let drawn: Vec<_> = curves
        .iter()
        .filter(|(_, points)| !points.is_empty())
        .collect();
    for (i, (name, points)) in drawn.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line = chart.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?;
        line.label(*name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
        });
        if points.len() <= MARKER_MAX_POINTS {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    if drawn.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

fn draw_no_data(root: &Area, labels: &Labels) -> DrawResult {
    let area = root.titled(labels.title, ("sans-serif", 22))?;
    let (w, h) = area.dim_in_pixel();
    let style =
        TextStyle::from(("sans-serif", 20).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), style))
}

/// x and y extents over all points, or `None` when there are none.
fn bounds(curves: &[(&str, Vec<(f64, f64)>)]) -> Option<(Range<f64>, Range<f64>)> {
    let mut points = curves.iter().flat_map(|(_, p)| p.iter().copied());
    let (x0, y0) = points.next()?;
    Some(points.fold((x0..x0, y0..y0), |(x, y), (px, py)| {
        (
            x.start.min(px)..x.end.max(px),
            y.start.min(py)..y.end.max(py),
        )
    }))
}

/// Adds a 5% margin; a zero-width range (one point, constant curve) is
/// widened by 10% of the value (or by 1 around zero) instead, since an
/// empty axis range cannot be drawn. Halves are subtracted so that extreme
/// finite values do not overflow to infinity.
fn pad_linear(r: Range<f64>) -> Range<f64> {
    let margin = if r.end > r.start {
        (r.end / 2.0 - r.start / 2.0) * 0.1
    } else if r.start == 0.0 {
        1.0
    } else {
        r.start.abs() * 0.1
    };
    (r.start - margin).max(f64::MIN)..(r.end + margin).min(f64::MAX)
}

/// The log-axis analogue of [`pad_linear`]: a 5% margin in decades, or a
/// factor of 2 either side of a constant.
fn pad_log(r: Range<f64>) -> Range<f64> {
    let factor = if r.end > r.start {
        (r.end / r.start).powf(0.05)
    } else {
        2.0
    };
    (r.start / factor).max(f64::MIN_POSITIVE)..(r.end * factor).min(f64::MAX)
}

/// Thins `points` to about [`MAX_POINTS`] by keeping, in each bucket of
/// consecutive points, the lowest and the highest in their original order.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let bucket = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS);
    for chunk in points.chunks(bucket) {
        let by_y = |&a: &usize, &b: &usize| chunk[a].1.total_cmp(&chunk[b].1);
        let lo = (0..chunk.len()).min_by(by_y);
        let hi = (0..chunk.len()).max_by(by_y);
        if let (Some(lo), Some(hi)) = (lo, hi) {
            out.push(chunk[lo.min(hi)]);
            if lo != hi {
                out.push(chunk[lo.max(hi)]);
            }
        }
    }
    out
}

/// Up to three significant digits, without trailing zeros, switching to
/// exponent notation outside [1e-3, 1e4) where fixed point gets long.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if (1e-3..1e4).contains(&a) {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.2e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if mantissa.contains('.') => {
                format!(
                    "{}e{exp}",
                    mantissa.trim_end_matches('0').trim_end_matches('.')
                )
            }
            _ => s,
        }
    }
}
