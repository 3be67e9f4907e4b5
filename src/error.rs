//! The one error type of lmech: every fallible path returns `Result<T>`, and
//! each variant carries what a user needs to fix the problem (the config key,
//! the file and what was expected, the shapes that disagreed).

use std::fmt;
use std::path::Path;

#[derive(Debug)]
pub enum Error {
    /// A config key is unknown, has the wrong type or an impossible value.
    Config { key: String, msg: String },
    /// A data file is missing, truncated, or not what was expected.
    Data { path: String, msg: String },
    /// Operand shapes disagree.
    Shape(String),
    /// Reading or writing a file failed.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A requested device or backend is not available.
    Device(String),
    /// Anything else, said in words.
    Msg(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn config(key: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            msg: msg.into(),
        }
    }
    pub fn data(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
    pub fn shape(msg: impl Into<String>) -> Self {
        Error::Shape(msg.into())
    }
    pub fn msg(msg: impl Into<String>) -> Self {
        Error::Msg(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { key, msg } => write!(f, "config key `{key}`: {msg}"),
            Error::Data { path, msg } => write!(f, "data file {path}: {msg}"),
            Error::Shape(msg) => write!(f, "shape mismatch: {msg}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Device(msg) => write!(f, "device: {msg}"),
            Error::Msg(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
