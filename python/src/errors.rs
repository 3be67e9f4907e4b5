//! lmech's errors as Python exceptions: `lmech.LmechError` (a subclass of
//! Exception) carrying the engine's message, so a bad config key or a shape
//! that does not fit raises instead of crashing the interpreter.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    lmech,
    LmechError,
    PyException,
    "An error reported by the lmech engine (bad config, data, shape, device)."
);

/// The engine's error as an `LmechError` with its message.
pub fn to_py(e: lmech::Error) -> PyErr {
    LmechError::new_err(e.to_string())
}

/// `Result` conversion for `?` in the bindings.
pub trait IntoPy<T> {
    fn py_err(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for lmech::Result<T> {
    fn py_err(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
