//! The integration tests: one binary.
//!
//! * `ports`: the same behaviour cases against the embedded adapters and
//!   against the AWS adapters on a `moto_server` the harness starts.
//! * `api`: the HTTP API through the local gateway, on a port of its own.
//! * `events`: every function's handler fed the JSON events in `events/`.
//! * `accounts`: discovery of what a grant reaches, and sub-account choice.
//! * `alerts`: incidents, notifications, emails and digests.
//! * `apikey`: API-key connect, every outcome, duplicates, replacement.
//! * `oauth`: connect start and callback, every catalog pattern and failure.
//! * `local_stack`: the stack as `cargo run -p local-stack` boots it.
//! * `uploads`: custom costs files, direct, presigned and automated.
//! * `sync`: the sync engine, every pagination style and failure.
//! * `lifecycle`: refresh, rotation, revocation, the sweep's policies.
//! * `service`: the service routes (proxy, credentials) and the audit log.
//! * `reports`: report streams (date windows, restated days) and the daily spend table.
//! * `reconnect`: reconnect, shared and named authorizations.
//! * `listing`: `GET /v1/connections` paged from the list index, and the
//!   connections stored before it put into it.
//! * `published`: events for the deployer's backend, on the bus and the
//!   signed webhook, held to `docs/events.schema.json`.
//! * `logs`: secrets that pass through handlers reach no log line.
//! * `architecture`: the layers of `shared/src` import only downwards, and
//!   only the store builds table keys.
//! * `iam`: each function's IAM policy is exactly what its code needs.
//! * `iam_calls`: journeys through the functions, each call held to its
//!   function's policy.
//! * `conformance`: every catalog request held to the vendor's published
//!   API description (tests/conformance/facts.json).
//! * `contract`: the route table, `docs/openapi.json` and `template.yaml` agree.

/// One behaviour case run on both backends: `mod embedded` and `mod moto`
/// tests that call `case(Backend::Embedded)` and `case(Backend::Moto)`
/// (the module using it imports `Backend`).
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod embedded { $( #[tokio::test] async fn $case() { super::$case(super::Backend::Embedded).await } )* }
        mod moto { $( #[tokio::test] async fn $case() { super::$case(super::Backend::Moto).await } )* }
    };
}

mod accounts;
mod alerts;
mod api;
mod apikey;
mod architecture;
mod conformance;
mod contract;
mod events;
mod faults;
mod harness;
mod iam;
mod iam_calls;
mod lifecycle;
mod listing;
mod local_stack;
mod logs;
mod oauth;
mod ports;
mod properties;
mod published;
mod reconnect;
mod report_streams;
mod reports;
mod service;
mod sync;
mod template;
mod uploads;
