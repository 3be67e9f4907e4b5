//! `lmech._lmech.Model`: a checkpoint rebuilt on a backend, with its loss,
//! and the measurements of `measure` as methods. Each releases the GIL
//! while the engine works and returns plain values and `(bytearray, shape)`
//! arrays for the Python half to wrap.

use crate::arrays::{self, HostArray};
use crate::engine::{self, with_engine, Engine, Source};
use crate::errors::IntoPy;
use crate::measure::{self, Cost};
use lmech::config::Config;
use lmech::linalg::LanczosOptions;
use lmech::nn::loss::LossKind;
use lmech::run::{NamedTensor, TensorData};
use lmech::{DType, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A trained lmech model (`Model.load` in the Python package).
#[pyclass(module = "lmech._lmech")]
pub struct Model {
    engine: Engine,
    loss: LossKind,
    dtype: DType,
    path: PathBuf,
}

/// The loss and dtype of the config a checkpoint carries.
fn checkpoint_config(path: &std::path::Path) -> lmech::Result<(LossKind, DType)> {
    let (_, meta) = lmech::run::load_checkpoint(path)?;
    let text = meta
        .get("config")
        .ok_or_else(|| Error::data(path, "checkpoint metadata has no `config`"))?;
    let res = Config::from_toml_str(text, &[])?.resolve()?;
    Ok((res.loss, res.dtype))
}

fn parse_dtype(name: &str) -> lmech::Result<DType> {
    toml::Value::String(name.into())
        .try_into()
        .map_err(|_| Error::config("dtype", format!("expected f32, f64 or f16, got {name:?}")))
}

fn cost_dict<'py>(py: Python<'py>, cost: &Cost) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("hvps", cost.products)?;
    d.set_item("seconds", cost.seconds)?;
    Ok(d)
}

impl Model {
    fn data(&self, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<lmech::data::Dataset> {
        let x = arrays::read(x, "x")?;
        let y = arrays::read(y, "y")?;
        let outputs = with_engine!(&self.engine, |_be, m| m.outputs());
        measure::dataset(self.loss, outputs, &x, &y).py_err()
    }
}

#[pymethods]
impl Model {
    /// Model.load(path, device="cpu", dtype=None): the checkpoint at
    /// `path` on `device`, in `dtype` (default: the run's).
    #[staticmethod]
    #[pyo3(signature = (path, device="cpu", dtype=None, loss=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        device: &str,
        dtype: Option<&str>,
        loss: Option<&str>,
    ) -> PyResult<Model> {
        py.detach(|| {
            let (run_loss, run_dtype) = checkpoint_config(&path)?;
            let dtype = dtype.map(parse_dtype).transpose()?.unwrap_or(run_dtype);
            let loss = loss
                .map(|l| LossKind::parse("loss", l))
                .transpose()?
                .unwrap_or(run_loss);
            let device = engine::device(device, dtype)?;
            let engine = Engine::load(&Source::File(path.clone()), device, dtype)?;
            Ok(Model {
                engine,
                loss,
                dtype,
                path,
            })
        })
        .py_err()
    }

    /// Model.from_contents(meta, tensors, loss, device="cpu", dtype="f64"):
    /// the model a checkpoint's metadata and (name, float64 array) tensors
    /// describe, without a file (the PyTorch bridge).
    #[staticmethod]
    #[pyo3(signature = (meta, tensors, loss, device="cpu", dtype="f64"))]
    fn from_contents(
        py: Python<'_>,
        meta: BTreeMap<String, String>,
        tensors: Vec<(String, Bound<'_, PyAny>)>,
        loss: &str,
        device: &str,
        dtype: &str,
    ) -> PyResult<Model> {
        let tensors = tensors
            .iter()
            .map(|(name, a)| {
                let a = arrays::read(a, name)?;
                Ok(NamedTensor {
                    name: name.clone(),
                    shape: a.shape,
                    data: TensorData::F64(a.values),
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        py.detach(|| {
            let loss = LossKind::parse("loss", loss)?;
            let dtype = parse_dtype(dtype)?;
            let device = engine::device(device, dtype)?;
            let engine = Engine::load(&Source::Contents { tensors, meta }, device, dtype)?;
            Ok(Model {
                engine,
                loss,
                dtype,
                path: PathBuf::from("<from_torch>"),
            })
        })
        .py_err()
    }

    /// (tensors, meta) as the model's checkpoint would hold them: each
    /// tensor as (name, float64 array in PyTorch's layout).
    fn contents<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (tensors, meta) = with_engine!(&self.engine, |be, m| {
            lmech::nn::checkpoint::checkpoint_contents(be, m, "")
        })
        .py_err()?;
        let list = tensors
            .iter()
            .map(|t| {
                let values: Vec<f64> = match &t.data {
                    TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
                    TensorData::F64(v) => v.clone(),
                };
                (t.name.clone(), arrays::write(py, &values, t.shape.clone()))
            })
            .collect::<Vec<_>>();
        (list, meta).into_pyobject(py).map(|o| o.into_any())
    }

    /// The checkpoint file this model was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The loss the measurements use (`xent`, `mse`, `mse_mean`).
    #[getter]
    fn loss(&self) -> &'static str {
        self.loss.name()
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        self.dtype.name()
    }

    /// The backend, as the engine describes it.
    #[getter]
    fn device(&self) -> String {
        with_engine!(&self.engine, |be, _m| lmech::Backend::describe(be))
    }

    /// Parameters of the model (one ensemble member).
    #[getter]
    fn param_count(&self) -> usize {
        with_engine!(&self.engine, |_be, m| m.param_count())
    }

    /// Outputs per example.
    #[getter]
    fn outputs(&self) -> usize {
        with_engine!(&self.engine, |_be, m| m.outputs())
    }

    /// One example's input shape, channels first.
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        with_engine!(&self.engine, |_be, m| m.spec.input.dims())
    }

    /// The parameters' (PyTorch) names, in the order of flat vectors.
    fn param_names(&self) -> Vec<String> {
        with_engine!(&self.engine, |_be, m| m.param_names())
    }

    /// The names of the layers per-sample norms are given for.
    fn layer_names(&self) -> Vec<String> {
        with_engine!(&self.engine, |_be, m| m.graph.groups.clone())
    }

    /// The flattened parameters.
    fn parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = with_engine!(&self.engine, |be, m| {
            lmech::curvature::flatten(be, &m.params().into_iter().cloned().collect::<Vec<_>>())
        })
        .py_err()?;
        let n = v.len();
        arrays::write(py, &v, vec![n])
            .into_pyobject(py)
            .map(|b| b.into_any())
    }

    fn forward<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x: HostArray = arrays::read(x, "x")?;
        let (v, shape) = py
            .detach(|| with_engine!(&self.engine, |be, m| measure::forward(be, m, &x)))
            .py_err()?;
        Ok(arrays::write(py, &v, shape).into_pyobject(py)?.into_any())
    }

    /// (loss, gradient, cost) of the mean loss over (x, y).
    fn gradient<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let ((loss, g), cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| measure::gradient(
                    be, m, self.loss, &ds
                ))
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("loss", loss)?;
        let n = g.len();
        d.set_item("gradient", arrays::write(py, &g, vec![n]))?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    /// The products with one direction `v` `[P]`, or with each row of `v`
    /// `[k, P]`, on one loss: the first is cold, the rest reuse its tape
    /// when (x, y) fits one chunk. Returned in `v`'s shape.
    #[pyo3(signature = (x, y, v, gauss_newton=false))]
    fn products<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        v: &Bound<'py, PyAny>,
        gauss_newton: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let v = arrays::read(v, "v")?;
        let (hv, cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| {
                    measure::products(be, m, self.loss, &ds, &v, gauss_newton)
                })
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("products", arrays::write(py, &hv, v.shape.clone()))?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, y, k, tol, max_iter, seed, vectors, gauss_newton))]
    fn eigs<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        k: usize,
        tol: f64,
        max_iter: usize,
        seed: u64,
        vectors: bool,
        gauss_newton: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let opts = LanczosOptions {
            k,
            max_iter,
            tol,
            seed,
            start: None,
        };
        let (r, cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| {
                    measure::eigs(be, m, self.loss, &ds, &opts, gauss_newton)
                })
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("values", r.values.clone())?;
        d.set_item("residuals", r.residuals.clone())?;
        d.set_item("bounds", r.bounds.clone())?;
        d.set_item("converged", r.converged)?;
        if vectors {
            let n = r.vectors.first().map_or(0, Vec::len);
            let flat: Vec<f64> = r.vectors.concat();
            d.set_item(
                "vectors",
                arrays::write(py, &flat, vec![r.vectors.len(), n]),
            )?;
        }
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    #[pyo3(signature = (x, y, probes, seed, gauss_newton))]
    fn trace<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        probes: usize,
        seed: u64,
        gauss_newton: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let (t, cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| {
                    measure::trace(be, m, self.loss, &ds, probes, seed, gauss_newton)
                })
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("estimate", t.estimate)?;
        d.set_item("std_error", t.std_error)?;
        d.set_item("probes", t.probes)?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    #[pyo3(signature = (x, y, probes, seed, gauss_newton))]
    fn diagonal<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        probes: usize,
        seed: u64,
        gauss_newton: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let (e, cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| {
                    measure::diagonal(be, m, self.loss, &ds, probes, seed, gauss_newton)
                })
            })
            .py_err()?;
        let d = PyDict::new(py);
        let n = e.estimate.len();
        d.set_item("estimate", arrays::write(py, &e.estimate, vec![n]))?;
        d.set_item("std_error", arrays::write(py, &e.std_error, vec![n]))?;
        d.set_item("probes", e.probes)?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    #[pyo3(signature = (x, y, probes, steps, seed))]
    fn density<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        probes: usize,
        steps: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let (s, cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| {
                    measure::density(be, m, self.loss, &ds, probes, steps, seed)
                })
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("nodes", s.nodes.clone())?;
        d.set_item("weights", s.weights.clone())?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    fn per_sample<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let (p, cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| measure::per_sample(
                    be, m, self.loss, &ds
                ))
            })
            .py_err()?;
        let d = PyDict::new(py);
        let n = p.total.len();
        d.set_item("total_sq", arrays::write(py, &p.total, vec![n]))?;
        let flat = p.per_layer.concat();
        d.set_item(
            "per_layer_sq",
            arrays::write(py, &flat, vec![p.per_layer.len(), n]),
        )?;
        d.set_item("mean_grad_sq", p.mean_grad_sq)?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    #[pyo3(signature = (x, y, max_entries))]
    fn per_sample_grads<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        max_entries: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = self.data(x, y)?;
        let (g, cost) = py
            .detach(|| {
                with_engine!(&self.engine, |be, m| {
                    measure::per_sample_grads(be, m, self.loss, &ds, max_entries)
                })
            })
            .py_err()?;
        let d = PyDict::new(py);
        let (n, p) = (g.len(), g.first().map_or(0, Vec::len));
        d.set_item("grads", arrays::write(py, &g.concat(), vec![n, p]))?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }

    fn ntk<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let x = arrays::read(x, "x")?;
        let (k, cost) = py
            .detach(|| with_engine!(&self.engine, |be, m| measure::ntk(be, m, &x)))
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("trace", arrays::write(py, &k.trace, vec![k.n, k.n]))?;
        let flat = k.per_output.concat();
        d.set_item(
            "per_output",
            arrays::write(py, &flat, vec![k.per_output.len(), k.n, k.n]),
        )?;
        d.set_item("cost", cost_dict(py, &cost)?)?;
        Ok(d)
    }
}
