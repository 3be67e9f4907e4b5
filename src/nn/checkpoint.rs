//! A model to and from a safetensors checkpoint. Each parameter is stored
//! under the name and in the layout of the equivalent PyTorch module
//! (`layers.{i}.weight` `[out, in]` for `nn.Linear`, `[out, in, kh, kw]` for
//! `nn.Conv2d`), with a leading E when the ensemble has more than one
//! member. The metadata holds what rebuilds the function in PyTorch or
//! here: the input shape, the layer list (as JSON), the parametrization and
//! each weight layer's forward multipliers, `z = multiplier * h W^T +
//! bias_multiplier * b`. An MLP also keeps the MLP keys it always had
//! (`layer_sizes`, `activation`, `bias`).

use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::graph::ModelSpec;
use crate::nn::layer_spec::LayerSpec;
use crate::nn::mlp::MlpSpec;
use crate::nn::model::Model;
use crate::nn::parametrization::Parametrization;
use crate::nn::shape::Shape;
use crate::run::{load_checkpoint, NamedTensor, TensorData};
use std::collections::BTreeMap;
use std::path::Path;

/// The tensors and metadata `save_checkpoint` writes for `model`.
pub fn checkpoint_contents<B: Backend>(
    be: &B,
    model: &Model<B>,
    config_toml: &str,
) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    let mut tensors = Vec::new();
    for (info, p) in model.param_info().iter().zip(model.params()) {
        let mut shape = info.torch_shape.clone();
        if model.ensemble > 1 {
            shape.insert(0, model.ensemble);
        }
        let values = be.to_f64(p)?;
        let data = match be.dtype() {
            // f16 values are exact in f32, which every reader takes.
            DType::F32 | DType::F16 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
            DType::F64 => TensorData::F64(values),
        };
        tensors.push(NamedTensor {
            name: info.name.clone(),
            shape,
            data,
        });
    }
    for (info, b) in model.graph.buffers.iter().zip(model.buffers()) {
        let shape = if model.ensemble > 1 {
            vec![model.ensemble, info.len]
        } else {
            vec![info.len]
        };
        let values = be.to_f64(b)?;
        let data = match be.dtype() {
            DType::F32 | DType::F16 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
            DType::F64 => TensorData::F64(values),
        };
        tensors.push(NamedTensor {
            name: info.name.clone(),
            shape,
            data,
        });
    }
    let json = |v: Vec<f64>| serde_json::to_string(&v).unwrap_or_default();
    let scales = model.layer_scales();
    let spec = &model.spec;
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "pt".into());
    meta.insert("lmech_version".into(), env!("CARGO_PKG_VERSION").into());
    match spec.as_mlp() {
        Some(mlp) => {
            meta.insert("architecture".into(), "mlp".into());
            meta.insert(
                "layer_sizes".into(),
                serde_json::to_string(&mlp.sizes).unwrap_or_default(),
            );
            meta.insert("activation".into(), mlp.activation.name().into());
            meta.insert("bias".into(), mlp.bias.to_string());
        }
        None => {
            meta.insert("architecture".into(), "graph".into());
        }
    }
    meta.insert(
        "input_shape".into(),
        serde_json::to_string(&spec.input.dims()).unwrap_or_default(),
    );
    meta.insert(
        "layers".into(),
        serde_json::to_string(&spec.layers).unwrap_or_default(),
    );
    meta.insert("parametrization".into(), spec.parametrization.name().into());
    meta.insert("width".into(), spec.width.to_string());
    meta.insert("base_width".into(), spec.base_width.to_string());
    meta.insert(
        "multipliers".into(),
        json(scales.iter().map(|s| s.multiplier).collect()),
    );
    meta.insert(
        "bias_multipliers".into(),
        json(scales.iter().map(|s| s.bias_multiplier).collect()),
    );
    meta.insert("ensemble".into(), model.ensemble.to_string());
    meta.insert("config".into(), config_toml.into());
    Ok((tensors, meta))
}

fn field<'a>(path: &Path, meta: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str> {
    meta.get(key).map(|s| s.as_str()).ok_or_else(|| {
        Error::data(
            path,
            format!("checkpoint metadata has no `{key}`; not an lmech checkpoint"),
        )
    })
}

fn json_value<T: serde::de::DeserializeOwned>(
    path: &Path,
    meta: &BTreeMap<String, String>,
    key: &str,
) -> Result<T> {
    serde_json::from_str(field(path, meta, key)?).map_err(|e| {
        Error::data(
            path,
            format!("checkpoint metadata `{key}` is not valid: {e}"),
        )
    })
}

fn number(path: &Path, meta: &BTreeMap<String, String>, key: &str) -> Result<usize> {
    field(path, meta, key)?
        .parse()
        .map_err(|_| Error::data(path, format!("bad `{key}`")))
}

/// The model spec a checkpoint's metadata describes (MLP checkpoints
/// written before the layer graph have only the MLP keys).
fn spec_of(path: &Path, meta: &BTreeMap<String, String>) -> Result<ModelSpec> {
    let parametrization =
        Parametrization::parse("parametrization", field(path, meta, "parametrization")?)
            .map_err(|e| Error::data(path, e.to_string()))?;
    if !meta.contains_key("layers") {
        if field(path, meta, "architecture")? != "mlp" {
            return Err(Error::data(path, "the checkpoint has no layer list"));
        }
        let sizes: Vec<usize> = json_value(path, meta, "layer_sizes")?;
        if sizes.len() < 2 {
            return Err(Error::data(path, "an MLP needs at least two layer sizes"));
        }
        let activation = Activation::parse("activation", field(path, meta, "activation")?)
            .map_err(|e| Error::data(path, e.to_string()))?;
        let base_width = match meta.get("base_width") {
            Some(_) => number(path, meta, "base_width")?,
            None => sizes.get(1).copied().unwrap_or(1),
        };
        let bias = field(path, meta, "bias")? == "true";
        return Ok(MlpSpec {
            sizes,
            activation,
            bias,
            parametrization,
            base_width,
        }
        .into());
    }
    let dims: Vec<usize> = json_value(path, meta, "input_shape")?;
    let layers: Vec<LayerSpec> = json_value(path, meta, "layers")?;
    Ok(ModelSpec {
        input: Shape::from_dims("input_shape", &dims)
            .map_err(|e| Error::data(path, e.to_string()))?,
        layers,
        parametrization,
        width: number(path, meta, "width")?,
        base_width: number(path, meta, "base_width")?,
    })
}

/// Rebuild the model a checkpoint holds, on backend `be`.
pub fn load_model<B: Backend>(be: &B, path: &Path) -> Result<Model<B>> {
    let (tensors, meta) = load_checkpoint(path)?;
    model_from_contents(be, path, &tensors, &meta)
}

/// The model that `checkpoint_contents`' tensors and metadata describe, on
/// backend `be`, without a file (the Python package builds PyTorch modules'
/// weights into models this way); `path` names the source in errors.
pub fn model_from_contents<B: Backend>(
    be: &B,
    path: &Path,
    tensors: &[NamedTensor],
    meta: &BTreeMap<String, String>,
) -> Result<Model<B>> {
    let spec = spec_of(path, meta)?;
    let ensemble = number(path, meta, "ensemble")?;
    let seeds: Vec<u64> = (0..ensemble.max(1) as u64).collect();
    let mut model = Model::init(be, spec, &seeds).map_err(|e| Error::data(path, e.to_string()))?;
    let multipliers: Vec<f64> = json_value(path, meta, "multipliers")?;
    let bias_multipliers: Vec<f64> = json_value(path, meta, "bias_multipliers")?;
    let mut scales = model.layer_scales_mut();
    if multipliers.len() != scales.len() || bias_multipliers.len() != scales.len() {
        return Err(Error::data(path, "layers and multipliers disagree"));
    }
    for (s, (m, mb)) in scales
        .iter_mut()
        .zip(multipliers.iter().zip(&bias_multipliers))
    {
        s.multiplier = *m;
        s.bias_multiplier = *mb;
    }
    let infos = model.param_info().to_vec();
    for (info, dst) in infos.iter().zip(model.params_mut()) {
        *dst = read(
            be,
            path,
            tensors,
            &info.name,
            &info.torch_shape,
            ensemble,
            dst.shape(),
        )?;
    }
    let buffers = model.graph.buffers.clone();
    for (info, dst) in buffers.iter().zip(model.buffers_mut()) {
        *dst = read(
            be,
            path,
            tensors,
            &info.name,
            &[info.len],
            ensemble,
            dst.shape(),
        )?;
    }
    Ok(model)
}

/// The tensor `name` of the file, checked against its PyTorch shape
/// (`torch_shape`, with E first for an ensemble), as a tensor of `shape`.
fn read<B: Backend>(
    be: &B,
    path: &Path,
    tensors: &[NamedTensor],
    name: &str,
    torch_shape: &[usize],
    ensemble: usize,
    shape: &[usize],
) -> Result<crate::tensor::Tensor<B>> {
    let t = tensors
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::data(path, format!("checkpoint has no tensor `{name}`")))?;
    let mut want = torch_shape.to_vec();
    if ensemble > 1 {
        want.insert(0, ensemble);
    }
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
    be.from_f64(shape, &values)
}
