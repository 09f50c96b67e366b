//! The request fields read for features: `X-Forwarded-For` and
//! `X-Forwarded-Proto` (`real_ip_from`), `Cookie`, `Accept-Encoding`, and
//! Structured Field Dictionaries (see `checks::client_fields`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::client_fields(data));
