//! inverso: an HTTP/1.1 reverse proxy and load balancer with a persistent
//! response cache.
//!
//! # Layout
//! - `http`: bytes on the wire — heads, framing, dates, forwarding headers.
pub mod http;
pub mod config;
