//! A MaxMind DB file (`geoip_database`), read and looked up in.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::geoip(data));
