//! The one error type of the encoder.

use std::fmt;

/// What went wrong, in the terms the caller can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The inputs cannot be written: wrong rank or shape, duplicate keys,
    /// a count or length over the Thrift limit. Maps to `InvalidArgumentError`.
    InvalidArgument,
    /// A bug in bpr_ops or in the host (size mismatch, caught panic).
    Internal,
}

/// An error with a message that names the input, the shapes and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An input the caller can fix (maps to `InvalidArgumentError` in TensorFlow).
    pub fn invalid(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidArgument,
            message: message.into(),
        }
    }

    /// A bug, in bpr_ops or in the host calling it.
    pub fn internal(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message: the input, its shape and what was expected.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The encoder's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Formats a shape the way TensorFlow prints it: `[2,3]`, `[]` for a scalar.
pub(crate) struct Shape<'a>(pub &'a [i64]);

impl fmt::Display for Shape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}
