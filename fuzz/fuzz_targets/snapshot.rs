//! The cache snapshot loader on arbitrary bytes: it must never panic and
//! never allocate past what the input holds or the limits allow.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::snapshot(data));
