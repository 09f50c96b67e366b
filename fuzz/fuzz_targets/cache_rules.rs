//! The fields the cache reads of a response (Cache-Control, Expires,
//! Date, Age, Last-Modified, Vary, the targeted fields) and of a request
//! (Cache-Control, Pragma), through the storing and freshness rules (see
//! `checks::cache_rules` for what is checked).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::cache_rules(data));
