//! How the world reaches the flows: the HTTP API ([`http`]: one route
//! table, thin handlers, the one error mapping, views, identity) and the
//! Lambda glue of the queue, schedule and S3 functions ([`lambda`]).

pub mod http;
pub mod lambda;
