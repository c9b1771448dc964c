//! The common crate of the connections service.
//!
//! * [`domain`]: the model (workspaces, authorizations, connections, sync runs,
//!   notifications) and the one status state machine, with no I/O.
//! * [`catalog`]: the platform catalog, as data, with deployment overrides.
//! * [`ports`]: the small traits through which the domain talks to the world.
//! * [`adapters`]: an AWS and an embedded implementation of every port.
//! * [`repo`]: typed, workspace-scoped persistence on top of the state store.
//! * [`api`]: HTTP routes, identity, the single error-to-HTTP mapping.
//! * [`jobs`]: queue messages and the queue/schedule handlers.

pub mod adapters;
pub mod alerts;
pub mod api;
pub mod apikey;
pub mod app;
pub mod authorizations;
pub mod catalog;
pub mod config;
pub mod costs;
pub mod domain;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod lifecycle;
pub mod oauth;
pub mod platform;
pub mod ports;
pub mod repo;
pub mod sweep;
pub mod sync;
pub mod telemetry;
pub mod tokens;
pub mod uploads;

pub use app::App;
pub use config::Config;
pub use error::Error;
