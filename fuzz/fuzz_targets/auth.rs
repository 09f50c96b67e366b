//! HTTP Basic credentials, as a client sends them, and htpasswd users
//! files: never a panic, and credentials that split where they should.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::auth(data));
