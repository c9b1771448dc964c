//! The common crate of the connections service, in layers; each imports
//! only the layers below it (`tests/architecture.rs` enforces it):
//!
//! 1. [`domain`], [`catalog`], [`costs`]: the model, the status machine,
//!    the token policy, input rules, queue messages; the platform catalog
//!    as data; the costs CSV rules. Pure: no I/O.
//! 2. [`ports`], [`config`]: the traits through which the service talks to
//!    the world, and its settings.
//! 3. [`adapters`] (AWS and embedded implementations of the ports),
//!    [`store`] (the typed repository: every table key in one place) and
//!    [`platform`] (HTTP to platforms from catalog data; one token client).
//! 4. [`flows`]: one journey per file.
//! 5. [`entry`]: the HTTP routes and thin handlers, and the Lambda glue.
//! 6. [`wiring`]: environment → configuration → adapters → [`App`], for
//!    `functions/`, the local stack and the tests.

pub mod adapters;
pub mod catalog;
pub mod config;
pub mod costs;
pub mod domain;
pub mod entry;
pub mod flows;
pub mod platform;
pub mod ports;
pub mod store;
pub mod wiring;

pub use config::Config;
pub use domain::error::Error;
pub use flows::App;
