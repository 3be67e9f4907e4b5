//! `central_flow.svg`, the figure of a run with `[observe.central_flow]`:
//! beside the real loss and its running average, the central flow's
//! predicted time-averaged loss and gradient flow's loss against step; and
//! the flow's sharpness (and the real run's, when the sharpness observer
//! measured the same quantity) against the edge it is held at, 2/eta for
//! GD, 2 for RMSProp's preconditioned sharpness.

use std::path::Path;

use super::metrics::MetricsLog;
use super::plot::{plot_panels, Panel};
use crate::error::Result;

/// How far (in steps) each side of a step the running average reaches: the
/// oscillations at the edge have periods of a few steps, so 10 either side
/// averages several of them without smearing the loss's slow descent.
pub const RUNNING_AVERAGE_HALF_WINDOW: f64 = 10.0;

/// The centered running average of `points` (step, value): at each point,
/// the mean of the points within `half` steps of it (fewer at the ends).
pub fn running_average(points: &[(f64, f64)], half: f64) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|&(s, _)| {
            let near: Vec<f64> = points
                .iter()
                .filter(|(t, _)| (t - s).abs() <= half)
                .map(|&(_, v)| v)
                .collect();
            (s, near.iter().sum::<f64>() / near.len() as f64)
        })
        .collect()
}

/// Writes `dir/central_flow.svg` when the run logged the central flow.
pub fn plot_central_flow(dir: &Path, log: &MetricsLog) -> Result<()> {
    let predicted = log.series("central_flow_predicted_loss");
    if predicted.is_empty() {
        return Ok(());
    }
    let loss = log.series("loss");
    let average = running_average(&loss, RUNNING_AVERAGE_HALF_WINDOW);
    let gd = log.records().iter().any(|r| {
        r.get("central_flow_optimizer")
            .is_some_and(|v| *v == "gd".into())
    });
    let mut sharpness = vec![(
        "central flow".to_string(),
        log.series("central_flow_sharpness"),
    )];
    if gd {
        sharpness.push(("real run".to_string(), log.series("sharpness")));
    }
    sharpness.push(("edge".to_string(), log.series("central_flow_edge")));
    let panels = [
        Panel {
            title: "loss: real, its running average, the flows".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![
                ("real".into(), loss),
                ("running average".into(), average),
                ("central flow".into(), predicted),
                ("gradient flow".into(), log.series("gradient_flow_loss")),
            ],
            log_y: true,
        },
        Panel {
            title: if gd {
                "sharpness against 2/eta".into()
            } else {
                "preconditioned sharpness against 2".into()
            },
            x_label: "step".into(),
            y_label: "top eigenvalue".into(),
            series: sharpness
                .into_iter()
                .filter(|(_, p)| !p.is_empty())
                .collect(),
            log_y: false,
        },
    ];
    plot_panels(&dir.join("central_flow.svg"), &panels)
}
