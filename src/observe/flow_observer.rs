//! The `[observe.central_flow]` observer: the central flow of the run's
//! optimizer (GD or RMSProp, `observe::central_flow`) and the flow without
//! oscillations (gradient flow), both integrated from the run's
//! initialization beside the real run, `substeps` forward-Euler substeps
//! per training step, on the whole training set. The flows are advanced
//! when a record is due, up to that step, so the train loop still only
//! calls the observers at their steps; every substep is integrated all the
//! same, and the cost of the interval since the last record is logged with
//! it.
//!
//! Per record (the flows at time t = step, the run's weights before that
//! step's update):
//! - `central_flow_loss`: L at the flow's point; `central_flow_predicted_loss`:
//!   the predicted time average of the real loss, `L(w) + 1/2 <Sigma, H>`;
//! - `central_flow_sharpness` (and `central_flow_top_k.{i}` for k > 1): the
//!   flow's top eigenvalues (of the preconditioned Hessian for RMSProp),
//!   `central_flow_edge` the line they are held at (2/eta, or 2), and
//!   `central_flow_optimizer` ("gd" or "rmsprop");
//! - `central_flow_x.{i}`: the eigenvalues of X;
//! - `central_flow_distance`, `gradient_flow_distance`: |w_flow - w_real|;
//! - `gradient_flow_loss`;
//! - `central_flow_hvps`, `central_flow_seconds`: spent since the previous
//!   record by both flows, and `central_flow_hvps_per_step`;
//!   `central_flow_unconverged`: substeps in that interval whose Lanczos
//!   did not reach its tolerance.

use super::central_flow::{CentralFlow, FlowStep};
use super::config::CentralFlowConfig;
use super::flow_optimizer::FlowOptimizer;
use super::uploads::Uploads;
use crate::backend::Backend;
use crate::curvature::flatten;
use crate::error::{Error, Result};
use crate::nn::loss::LossKind;
use crate::nn::model::Model;
use crate::run::Record;
use std::time::Instant;

pub struct FlowObserver<B: Backend> {
    cfg: CentralFlowConfig,
    opt: FlowOptimizer,
    /// The central flow and gradient flow, from the first record (step 0).
    flows: Option<(CentralFlow<B>, CentralFlow<B>)>,
    /// Substeps both flows have taken.
    substeps: u64,
    /// Step of the previous record.
    last_step: u64,
}

/// What an interval of substeps cost and found.
#[derive(Default)]
struct Interval {
    hvps: usize,
    unconverged: u64,
}

impl Interval {
    fn add(&mut self, s: &FlowStep) {
        self.hvps += s.hvps;
        self.unconverged += u64::from(!s.converged);
    }
}

impl<B: Backend> FlowObserver<B> {
    pub fn new(cfg: CentralFlowConfig, opt: FlowOptimizer) -> Self {
        FlowObserver {
            cfg,
            opt,
            flows: None,
            substeps: 0,
            last_step: 0,
        }
    }

    /// Integrate both flows to t = `step` and record them against `model`.
    pub fn observe(
        &mut self,
        be: &B,
        model: &Model<B>,
        data: &mut Uploads<B>,
        loss: LossKind,
        seed: u64,
        step: u64,
        rec: &mut Record,
    ) -> Result<()> {
        let started = Instant::now();
        if self.flows.is_none() {
            if step != 0 {
                return Err(Error::msg(format!(
                    "observe.central_flow: the flows start at the initialization, step 0; \
                     the first record came at step {step}"
                )));
            }
            let chunks = data.chunks(be, data.train().n, self.cfg.chunk)?;
            let k = Some(self.cfg.k);
            let opt = self.opt.clone();
            let central =
                CentralFlow::following(be, model, loss, chunks.clone(), opt.clone(), k, seed)?;
            let plain = CentralFlow::following(be, model, loss, chunks, opt, None, seed)?;
            self.flows = Some((central, plain));
        }
        let per_step = self.cfg.substeps as u64;
        let dt = 1.0 / self.cfg.substeps as f64;
        let Some((central, plain)) = self.flows.as_mut() else {
            return Err(Error::msg("internal: the central flows were not started"));
        };
        let real = flatten(be, &model.params().into_iter().cloned().collect::<Vec<_>>())?;
        let mut spent = Interval::default();
        // Substeps up to t = step; then the one from t = step, whose
        // measurements are those at the record's time.
        let target = step * per_step;
        if self.substeps > target + 1 {
            return Err(Error::msg(format!(
                "internal: the central flow is past step {step}"
            )));
        }
        while self.substeps < target {
            spent.add(&central.substep(dt)?);
            plain.substep(dt)?;
            self.substeps += 1;
        }
        let flow_distance = distance(central.weights(), &real);
        let plain_distance = distance(plain.weights(), &real);
        let at = central.substep(dt)?;
        let gf = plain.substep(dt)?;
        spent.add(&at);
        self.substeps += 1;
        rec.set("central_flow_loss", at.loss);
        rec.set("central_flow_predicted_loss", at.predicted_loss);
        rec.set("central_flow_sharpness", at.sharpness[0]);
        if at.sharpness.len() > 1 {
            for (i, v) in at.sharpness.iter().enumerate() {
                rec.set(format!("central_flow_top_k.{i}"), *v);
            }
        }
        rec.set("central_flow_edge", self.opt.threshold());
        rec.set("central_flow_optimizer", self.opt.name());
        for (i, v) in at.x_eigenvalues.iter().enumerate() {
            rec.set(format!("central_flow_x.{i}"), *v);
        }
        rec.set("central_flow_distance", flow_distance);
        rec.set("gradient_flow_loss", gf.loss);
        rec.set("gradient_flow_distance", plain_distance);
        rec.set("central_flow_hvps", spent.hvps as u64);
        let steps = (step - self.last_step).max(1);
        rec.set(
            "central_flow_hvps_per_step",
            spent.hvps as f64 / steps as f64,
        );
        rec.set("central_flow_unconverged", spent.unconverged);
        rec.set("central_flow_seconds", started.elapsed().as_secs_f64());
        self.last_step = step;
        Ok(())
    }
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}
