//! The crate's one error: an input or attr a kernel cannot take. The message
//! is complete (it names the op, the input, its shape or value and what was
//! expected); the op library turns it into TensorFlow's InvalidArgument.

use std::fmt;

/// An input the caller can fix; [`Error::message`] says which and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }

    /// The message, complete (it names the op and the input).
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The result of a kernel.
pub type Result<T> = std::result::Result<T, Error>;
