//! Errors: each names the place in the input (file, line, JSON path, key).

/// Something in a map, code system or configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct Error {
    /// Where: `glucose.csv line 4, column equivalence`, `cm.json $.group[0].element[2].code`.
    pub place: String,
    pub message: String,
}

impl Error {
    pub fn at(place: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            place: place.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
