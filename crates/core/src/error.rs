//! One error type for the whole engine. Every variant says where (layer, argument, file) and
//! what was expected, so the binding can show it to a JS user unchanged.
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A tensor reached a layer (or argument) with a shape it cannot take.
    Shape { at: String, expected: String, got: Vec<usize> },
    /// A value outside its allowed range (labels, hyper-parameters, ...).
    Value { at: String, expected: String, got: String },
    /// NaN or Infinity found in an input or a parameter.
    NonFinite { at: String, index: usize, value: f32 },
    /// The model spec (JSON) is malformed or inconsistent.
    Spec { at: String, message: String },
    /// An operation that needs state that is not there (backward before forward, ...).
    State { at: String, message: String },
    /// Reading or writing a file.
    Io { path: String, message: String },
    /// A file whose bytes do not follow its format: `at` is the byte offset or row.
    Format { path: String, at: String, expected: String },
}

impl Error {
    /// A stable machine-readable code, mirrored as `error.code` in JavaScript.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Shape { .. } => "ERR_SHAPE",
            Error::Value { .. } => "ERR_VALUE",
            Error::NonFinite { .. } => "ERR_NON_FINITE",
            Error::Spec { .. } => "ERR_SPEC",
            Error::State { .. } => "ERR_STATE",
            Error::Io { .. } => "ERR_IO",
            Error::Format { .. } => "ERR_FORMAT",
        }
    }

    pub fn shape(at: impl Into<String>, expected: impl Into<String>, got: &[usize]) -> Self {
        Error::Shape { at: at.into(), expected: expected.into(), got: got.to_vec() }
    }
    pub fn value(
        at: impl Into<String>,
        expected: impl Into<String>,
        got: impl fmt::Display,
    ) -> Self {
        Error::Value { at: at.into(), expected: expected.into(), got: got.to_string() }
    }
    pub fn spec(at: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec { at: at.into(), message: message.into() }
    }
    pub fn format(
        path: impl Into<String>,
        at: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::Format { path: path.into(), at: at.into(), expected: expected.into() }
    }
    pub fn io(path: impl Into<String>, err: impl fmt::Display) -> Self {
        Error::Io { path: path.into(), message: err.to_string() }
    }
    pub fn state(at: impl Into<String>, message: impl Into<String>) -> Self {
        Error::State { at: at.into(), message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { at, expected, got } => {
                write!(f, "{at}: expected shape {expected}, got {got:?}")
            }
            Error::Value { at, expected, got } => write!(f, "{at}: expected {expected}, got {got}"),
            Error::NonFinite { at, index, value } => {
                write!(f, "{at}: expected finite values, found {value} at flat index {index}")
            }
            Error::Spec { at, message } => write!(f, "model spec, {at}: {message}"),
            Error::State { at, message } => write!(f, "{at}: {message}"),
            Error::Io { path, message } => write!(f, "{path}: {message}"),
            Error::Format { path, at, expected } => write!(f, "{path}, {at}: expected {expected}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Fails with `NonFinite` at the first NaN or infinity.
pub fn check_finite(at: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite { at: at.to_string(), index, value: data[index] }),
    }
}
