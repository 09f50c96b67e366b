//! Byte ranges and conditions a cache hit answers with: a request's
//! `Range`, `If-Range`, `If-None-Match` and `If-Modified-Since` against a
//! stored response's validators, coding and type, and the multipart body
//! cut from it (see `checks::range` for what is checked).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::range(data));
