//! Telemetry: metric names and descriptions in one place ([`metrics`]), named events that
//! log once and count ([`events`]), logging set-up, and the HTTP endpoint for `/metrics`,
//! `/healthz` and `/readyz` ([`http`]). Labels stay bounded: never a customer id.

pub mod events;
pub mod http;
pub mod logging;
pub mod names;

pub use http::Health;
