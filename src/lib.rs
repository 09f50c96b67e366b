//! inverso: an HTTP/1.1 reverse proxy and load balancer with a persistent response cache.

pub mod cache;
