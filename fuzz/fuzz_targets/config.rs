//! proxy.conf text through the loader and the typed build. Inputs that
//! would make `targets` resolve a host name are skipped: DNS is slow and
//! not what is under test.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config(data));
