//! Route keys and request targets through routing: matching, the
//! refusal of paths backends read in different ways, `rewrite=` and
//! redirects.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::routes(data));
