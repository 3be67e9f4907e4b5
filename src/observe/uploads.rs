//! The observers' data on the device, uploaded the first time a measurement
//! asks for it and kept for the rest of the run: the training set does not
//! change, and re-uploading it at every measurement is a host-to-device copy
//! of up to the whole set each time on a GPU. Each distinct request (the
//! first `n` examples, in chunks of `chunk`) is kept once; the observers of
//! one run ask for few (one per configured `n` and `chunk`).

use crate::backend::Backend;
use crate::data::device::upload_inputs_and_targets;
use crate::data::Dataset;
use crate::error::Result;
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Inputs and loss targets of a run of examples, on the device.
pub type Chunk<B> = (Tensor<B>, Tensor<B>);

pub struct Uploads<B: Backend> {
    train: Dataset,
    loss: LossKind,
    /// (n, chunk) -> the first n examples in chunks of `chunk`.
    chunked: HashMap<(usize, usize), Vec<Chunk<B>>>,
    /// n -> the inputs of the first n examples.
    inputs: HashMap<usize, Tensor<B>>,
}

impl<B: Backend> Uploads<B> {
    pub fn new(train: &Dataset, loss: LossKind) -> Self {
        Uploads {
            train: train.clone(),
            loss,
            chunked: HashMap::new(),
            inputs: HashMap::new(),
        }
    }

    /// The training set, on the host.
    pub fn train(&self) -> &Dataset {
        &self.train
    }

    /// Inputs and targets of the first `n` examples in chunks of `chunk`
    /// (tensors share their device buffers, so the copy is cheap).
    pub fn chunks(&mut self, be: &B, n: usize, chunk: usize) -> Result<Vec<Chunk<B>>> {
        let n = n.min(self.train.n);
        let chunk = chunk.clamp(1, n.max(1));
        if !self.chunked.contains_key(&(n, chunk)) {
            let mut out = Vec::new();
            for start in (0..n).step_by(chunk) {
                let rows: Vec<usize> = (start..(start + chunk).min(n)).collect();
                out.push(upload_inputs_and_targets(
                    be,
                    &self.train.subset(&rows),
                    self.loss,
                )?);
            }
            self.chunked.insert((n, chunk), out);
        }
        Ok(self.chunked[&(n, chunk)].clone())
    }

    /// Inputs and targets of the first `n` examples as one chunk.
    pub fn first(&mut self, be: &B, n: usize) -> Result<Chunk<B>> {
        Ok(self.chunks(be, n, n)?.swap_remove(0))
    }

    /// Inputs of the first `n` examples.
    pub fn inputs(&mut self, be: &B, n: usize) -> Result<Tensor<B>> {
        let n = n.min(self.train.n);
        if let Some((x, _)) = self.chunked.get(&(n, n.max(1))).and_then(|c| c.first()) {
            return Ok(x.clone());
        }
        if !self.inputs.contains_key(&n) {
            let sub = self.train.take_first(n);
            self.inputs.insert(n, be.from_f64(&[sub.n, sub.d], &sub.x)?);
        }
        Ok(self.inputs[&n].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::{Cpu, Elem};

    fn data_ptr(t: &Tensor<Cpu>) -> *const f64 {
        f64::view(t.storage()).unwrap().as_ptr()
    }

    fn digits(n: usize) -> Dataset {
        let cfg: crate::data::DataConfig = toml::from_str("source = \"digits\"").unwrap();
        crate::data::load(&cfg, 0).unwrap().train.take_first(n)
    }

    #[test]
    fn a_request_is_uploaded_once_and_handed_out_again() {
        let be = Cpu::f64();
        let mut up = Uploads::new(&digits(50), LossKind::CrossEntropy);
        let a = up.chunks(&be, 50, 20).unwrap();
        assert_eq!(
            a.iter().map(|c| c.0.shape()[0]).collect::<Vec<_>>(),
            [20, 20, 10]
        );
        let b = up.chunks(&be, 50, 20).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(data_ptr(&x.0), data_ptr(&y.0), "inputs uploaded again");
            assert_eq!(data_ptr(&x.1), data_ptr(&y.1), "targets uploaded again");
        }
        // Another request is another upload; a chunk past n is one chunk,
        // and n past the set is the set.
        let c = up.chunks(&be, 50, 25).unwrap();
        assert_ne!(data_ptr(&c[0].0), data_ptr(&a[0].0));
        let whole = up.first(&be, 80).unwrap();
        assert_eq!(whole.0.shape()[0], 50);
        assert_eq!(
            data_ptr(&up.chunks(&be, 50, 500).unwrap()[0].0),
            data_ptr(&whole.0)
        );
        // Inputs alone reuse a one-chunk upload, or are kept by themselves.
        assert_eq!(data_ptr(&up.inputs(&be, 50).unwrap()), data_ptr(&whole.0));
        let x10 = up.inputs(&be, 10).unwrap();
        assert_eq!(x10.shape()[0], 10);
        assert_eq!(data_ptr(&up.inputs(&be, 10).unwrap()), data_ptr(&x10));
        assert_eq!(
            be.to_f64(&x10).unwrap(),
            be.to_f64(&a[0].0).unwrap()[..10 * 64]
        );
    }
}
