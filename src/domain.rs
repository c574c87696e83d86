//! Domain types: identifiers, users, rooms, messages and their validation.
//! Nothing here does I/O; parse constructors are the only way to build
//! values that came from outside. The bottom layer: imports nothing of ours
//! outside `domain/`.

pub mod attachment;
pub mod ids;
pub mod message;
pub mod net;
pub mod room;
pub mod tags;
pub mod text;
pub mod time;
pub mod user;

/// A rejected piece of input: a stable `code` clients match on and a readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
