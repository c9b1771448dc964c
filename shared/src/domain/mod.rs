//! The model of the product, with no I/O.

pub mod model;
pub mod status;

pub use model::*;
pub use status::{DisconnectReason, Event, FailureReason, Status, Subject};
