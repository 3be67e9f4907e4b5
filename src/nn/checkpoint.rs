//! An MLP to and from a safetensors checkpoint. Each dense layer is stored
//! as `layers.{i}.weight` `[out, in]` and `layers.{i}.bias` `[out]`, as
//! PyTorch's `nn.Linear` (with a leading E when the ensemble has more than
//! one member), and the metadata holds what rebuilds the function in PyTorch
//! or here: layer sizes, activation, parametrization and each layer's
//! forward multipliers, `z = multiplier * h W^T + bias_multiplier * b`.

use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::mlp::{Mlp, MlpSpec};
use crate::nn::parametrization::Parametrization;
use crate::run::{load_checkpoint, NamedTensor, TensorData};
use std::collections::BTreeMap;
use std::path::Path;

/// The tensors and metadata `save_checkpoint` writes for `model`.
pub fn checkpoint_contents<B: Backend>(
    be: &B,
    model: &Mlp<B>,
    config_toml: &str,
) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    let mut tensors = Vec::new();
    for (name, p) in model.param_names().into_iter().zip(model.params()) {
        let mut shape = p.shape().to_vec();
        if model.ensemble == 1 {
            shape.remove(0);
        }
        let values = be.to_f64(p)?;
        let data = match be.dtype() {
            // f16 values are exact in f32, which every reader takes.
            DType::F32 | DType::F16 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
            DType::F64 => TensorData::F64(values),
        };
        tensors.push(NamedTensor { name, shape, data });
    }
    let json = |v: Vec<f64>| serde_json::to_string(&v).unwrap_or_default();
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "pt".into());
    meta.insert("lmech_version".into(), env!("CARGO_PKG_VERSION").into());
    meta.insert("architecture".into(), "mlp".into());
    meta.insert(
        "layer_sizes".into(),
        serde_json::to_string(&model.spec.sizes).unwrap_or_default(),
    );
    meta.insert("activation".into(), model.spec.activation.name().into());
    meta.insert("bias".into(), model.spec.bias.to_string());
    meta.insert(
        "parametrization".into(),
        model.spec.parametrization.name().into(),
    );
    meta.insert("base_width".into(), model.spec.base_width.to_string());
    meta.insert(
        "multipliers".into(),
        json(model.scales.iter().map(|s| s.multiplier).collect()),
    );
    meta.insert(
        "bias_multipliers".into(),
        json(model.scales.iter().map(|s| s.bias_multiplier).collect()),
    );
    meta.insert("ensemble".into(), model.ensemble.to_string());
    meta.insert("config".into(), config_toml.into());
    Ok((tensors, meta))
}

fn field<'a>(path: &Path, meta: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str> {
    meta.get(key).map(|s| s.as_str()).ok_or_else(|| {
        Error::data(
            path,
            format!("checkpoint metadata has no `{key}`; not an lmech MLP checkpoint"),
        )
    })
}

fn json_list<T: serde::de::DeserializeOwned>(
    path: &Path,
    meta: &BTreeMap<String, String>,
    key: &str,
) -> Result<Vec<T>> {
    serde_json::from_str(field(path, meta, key)?).map_err(|e| {
        Error::data(
            path,
            format!("checkpoint metadata `{key}` is not a JSON list: {e}"),
        )
    })
}

/// Rebuild the model a checkpoint holds, on backend `be`.
pub fn load_mlp<B: Backend>(be: &B, path: &Path) -> Result<Mlp<B>> {
    let (tensors, meta) = load_checkpoint(path)?;
    if field(path, &meta, "architecture")? != "mlp" {
        return Err(Error::data(path, "not an MLP checkpoint"));
    }
    let sizes: Vec<usize> = json_list(path, &meta, "layer_sizes")?;
    let activation = Activation::parse("activation", field(path, &meta, "activation")?)
        .map_err(|e| Error::data(path, e.to_string()))?;
    let parametrization =
        Parametrization::parse("parametrization", field(path, &meta, "parametrization")?)
            .map_err(|e| Error::data(path, e.to_string()))?;
    let bias = field(path, &meta, "bias")? == "true";
    let ensemble: usize = field(path, &meta, "ensemble")?
        .parse()
        .map_err(|_| Error::data(path, "bad `ensemble`"))?;
    let base_width = match meta.get("base_width") {
        Some(b) => b
            .parse()
            .map_err(|_| Error::data(path, "bad `base_width`"))?,
        None => sizes.get(1).copied().unwrap_or(1),
    };
    let multipliers: Vec<f64> = json_list(path, &meta, "multipliers")?;
    let bias_multipliers: Vec<f64> = json_list(path, &meta, "bias_multipliers")?;
    if sizes.len() < 2
        || multipliers.len() != sizes.len() - 1
        || bias_multipliers.len() != sizes.len() - 1
    {
        return Err(Error::data(path, "layer sizes and multipliers disagree"));
    }
    let spec = MlpSpec {
        sizes: sizes.clone(),
        activation,
        bias,
        parametrization,
        base_width,
    };
    let seeds: Vec<u64> = (0..ensemble.max(1) as u64).collect();
    let mut model = Mlp::init(be, spec, &seeds)?;
    for (l, (m, mb)) in multipliers.iter().zip(&bias_multipliers).enumerate() {
        model.scales[l].multiplier = *m;
        model.scales[l].bias_multiplier = *mb;
    }
    let names = model.param_names();
    for (name, dst) in names.iter().zip(model.params_mut()) {
        let t = tensors
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| Error::data(path, format!("checkpoint has no tensor `{name}`")))?;
        let want: Vec<usize> = if ensemble == 1 {
            dst.shape()[1..].to_vec()
        } else {
            dst.shape().to_vec()
        };
        if t.shape != want {
            return Err(Error::data(
                path,
                format!("`{name}` has shape {:?}, expected {want:?}", t.shape),
            ));
        }
        let values: Vec<f64> = match &t.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F64(v) => v.clone(),
        };
        *dst = be.from_f64(dst.shape(), &values)?;
    }
    Ok(model)
}
