//! Error type of the core. Every message names the offending argument or quantity so the
//! binding can turn it into a Python exception that a user can act on.
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum AkError {
    /// A bad argument value (maps to `ValueError`).
    #[error("{name}: {msg}")]
    InvalidArgument { name: &'static str, msg: String },
    /// Incompatible array shapes (maps to `ValueError`).
    #[error("{name}: {msg}")]
    Shape { name: &'static str, msg: String },
    /// A matrix that must be positive definite is not, even after jitter escalation
    /// (maps to `NotPositiveDefiniteError`, a `numpy.linalg.LinAlgError`).
    #[error("{name} is not positive definite: {msg}")]
    NotPositiveDefinite { name: &'static str, msg: String },
    /// An eigen/linear-algebra routine failed to converge (maps to `LinAlgError`).
    #[error("{name}: {msg}")]
    LinAlg { name: &'static str, msg: String },
    /// A user callback (e.g. a custom activation) raised or returned bad values.
    #[error("{0}")]
    Callback(String),
    /// The computation was cancelled (Ctrl-C) through [`crate::control::Control`].
    #[error("interrupted")]
    Interrupted,
    /// A non-finite value appeared in a result (maps to `FloatingPointError`).
    #[error("{name}: {msg}")]
    NonFinite { name: &'static str, msg: String },
    /// The problem needs more memory than is available (maps to
    /// `InsufficientMemoryError`, a `MemoryError`); refused before allocating.
    #[error("{name}: {what} needs about {needed}, but only {available} is available; {hint}")]
    OutOfMemory {
        name: &'static str,
        what: String,
        needed: String,
        available: String,
        hint: String,
    },
}

pub type Result<T> = std::result::Result<T, AkError>;

pub(crate) fn invalid(name: &'static str, msg: impl Into<String>) -> AkError {
    AkError::InvalidArgument {
        name,
        msg: msg.into(),
    }
}

pub(crate) fn shape(name: &'static str, msg: impl Into<String>) -> AkError {
    AkError::Shape {
        name,
        msg: msg.into(),
    }
}
