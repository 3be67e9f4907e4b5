//! The native module `lmech._lmech` behind the Python package: thin
//! bindings over the lmech crate (training, sweeps, models, curvature and
//! per-sample measurements). The Python half (`python/lmech/`) turns what
//! these functions return into numpy arrays, DataFrames and result objects;
//! nothing here computes what the engine already does.

mod arrays;
mod engine;
mod errors;
mod measure;
mod model;
mod runs;

use pyo3::prelude::*;

#[pymodule]
fn _lmech(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LmechError", m.py().get_type::<errors::LmechError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(runs::train, m)?)?;
    m.add_function(wrap_pyfunction!(runs::sweep, m)?)?;
    m.add_function(wrap_pyfunction!(runs::write_report, m)?)?;
    m.add_function(wrap_pyfunction!(runs::measure, m)?)?;
    m.add_class::<model::Model>()?;
    Ok(())
}
