//! A model on one of the engine's backends. Python classes cannot be
//! generic, so the backend is an enum and `with_engine!` runs one generic
//! body for whichever backend the model lives on.

use lmech::backend::cuda::Cuda;
use lmech::backend::device::{Device, DeviceRequest};
use lmech::nn::checkpoint::{load_model, model_from_contents};
use lmech::nn::model::Model;
use lmech::run::NamedTensor;
use lmech::{Backend, Cpu, DType, Error, Result, Wgpu};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub enum Engine {
    Cpu(Cpu, Model<Cpu>),
    Wgpu(Wgpu, Model<Wgpu>),
    Cuda(Cuda, Model<Cuda>),
}

/// Runs `$body` with `$be` the backend and `$m` the model, whatever the
/// backend.
macro_rules! with_engine {
    ($engine:expr, |$be:ident, $m:ident| $body:expr) => {
        match $engine {
            $crate::engine::Engine::Cpu($be, $m) => $body,
            $crate::engine::Engine::Wgpu($be, $m) => $body,
            $crate::engine::Engine::Cuda($be, $m) => $body,
        }
    };
}
pub(crate) use with_engine;

/// `auto|cpu|wgpu|cuda[:N]` as the CLI's `--device` takes it, resolved for
/// `dtype` (`auto` keeps f64 on the CPU).
pub fn device(request: &str, dtype: DType) -> Result<Device> {
    Ok(DeviceRequest::parse(request)?.resolve_for(dtype)?.0)
}

/// Where a model's weights come from: a checkpoint file, or tensors and
/// metadata as `checkpoint_contents` gives them (from the PyTorch bridge).
pub enum Source {
    File(PathBuf),
    Contents {
        tensors: Vec<NamedTensor>,
        meta: BTreeMap<String, String>,
    },
}

impl Source {
    fn model<B: Backend>(&self, be: &B) -> Result<Model<B>> {
        match self {
            Source::File(path) => load_model(be, path),
            Source::Contents { tensors, meta } => {
                model_from_contents(be, Path::new("<from_torch>"), tensors, meta)
            }
        }
    }
}

impl Engine {
    /// The model of `source` rebuilt on `device` in `dtype`.
    pub fn load(source: &Source, device: Device, dtype: DType) -> Result<Engine> {
        Ok(match device {
            Device::Cpu => {
                if dtype == DType::F16 {
                    return Err(Error::config("dtype", "f16 storage needs a GPU device"));
                }
                let be = Cpu::new(dtype);
                let m = source.model(&be)?;
                Engine::Cpu(be, m)
            }
            Device::Wgpu => {
                let be = Wgpu::new(dtype)?;
                let m = source.model(&be)?;
                Engine::Wgpu(be, m)
            }
            Device::Cuda(i) => {
                let be = Cuda::new(i, dtype)?;
                let m = source.model(&be)?;
                Engine::Cuda(be, m)
            }
        })
    }
}
