//! The model of the product, with no I/O: ids, entities, the one status
//! state machine, the token policy, the rules for what people type, the
//! queue messages, and the errors every layer speaks.

pub mod audit;
pub mod email;
pub mod error;
pub mod events;
pub mod ids;
pub mod input;
pub mod install;
pub mod messages;
pub mod model;
pub mod network;
pub mod paging;
pub mod policy;
pub mod sealed;
pub mod status;
pub mod tokens;
pub mod upload;

pub use model::*;
pub use status::{DisconnectReason, Event, FailureReason, Status, Subject};
