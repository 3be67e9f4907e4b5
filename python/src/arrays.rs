//! Arrays across the boundary: numpy arrays come in through the buffer
//! protocol as contiguous float64 (the Python half makes them so), and
//! results go out as writable `bytearray`s plus a shape, which the Python
//! half views with `numpy.frombuffer` without a copy.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyByteArray;

/// A host array: row-major values and their shape.
pub struct HostArray {
    pub values: Vec<f64>,
    pub shape: Vec<usize>,
}

/// Reads a C-contiguous float64 buffer (a numpy array).
pub fn read(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<HostArray> {
    let buf = PyBuffer::<f64>::get(obj).map_err(|e| {
        pyo3::exceptions::PyTypeError::new_err(format!("{what}: expected a float64 array ({e})"))
    })?;
    if !buf.is_c_contiguous() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{what}: expected a C-contiguous array"
        )));
    }
    Ok(HostArray {
        values: buf.to_vec(obj.py())?,
        shape: buf.shape().to_vec(),
    })
}

/// `values` as a writable bytearray of native-endian f64, with `shape`.
pub fn write<'py>(
    py: Python<'py>,
    values: &[f64],
    shape: Vec<usize>,
) -> (Bound<'py, PyByteArray>, Vec<usize>) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    (PyByteArray::new(py, &bytes), shape)
}
