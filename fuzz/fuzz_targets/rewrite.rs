//! `rewrite.<name>` rules and `auth_request_redirect` URLs, through the
//! configuration loader, and the requests they are applied to.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::rewrite(data));
