//! The benchmarks' shared workload: one training step of the MLP
//! 784-1024-1024-10, tanh, batch 1000, softmax cross-entropy, SGD — the
//! workload BENCHMARKS.md compares with PyTorch (bench/pytorch/train_step.py),
//! built the same way on every backend so their times compare.

use lmech::nn::activation::Activation;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::{Backend, Tensor};

pub const BATCH: usize = 1000;

pub struct MlpStep<B: Backend> {
    pub model: Model<B>,
    pub x: Tensor<B>,
    pub labels: Tensor<B>,
    pub opt: Optimizer<B>,
}

impl<B: Backend> MlpStep<B> {
    pub fn new(be: &B) -> Self {
        let spec = MlpSpec::new(784, 1024, 3, 10, Activation::Tanh);
        let model = Model::init(be, spec, &[0]).unwrap();
        let mut rng = Rng::new(1);
        let x: Vec<f64> = (0..BATCH * 784).map(|_| rng.normal()).collect();
        let labels: Vec<f64> = (0..BATCH).map(|_| rng.below(10) as f64).collect();
        let x = be.from_f64(&[BATCH, 784], &x).unwrap();
        let labels = be.from_f64(&[BATCH], &labels).unwrap();
        let opt = Optimizer::new(
            be,
            OptimHyper::new(OptimizerKind::Sgd),
            Schedule::Constant,
            vec![1e-3],
            &model.params(),
            vec![1.0; model.params().len()],
        )
        .unwrap();
        MlpStep {
            model,
            x,
            labels,
            opt,
        }
    }

    /// Forward and backward, then (with `update`) the SGD update; returns
    /// the loss tensor (still on the device).
    pub fn step(&mut self, be: &B, update: bool) -> Tensor<B> {
        let pass = self
            .model
            .loss_pass(be, &self.x, &self.labels, LossKind::CrossEntropy, true)
            .unwrap();
        if update {
            self.opt
                .step(be, self.model.params_mut(), &pass.grads)
                .unwrap();
        }
        pass.loss
    }
}
