//! The bytes a connection begins with, read for a TLS hello's host name
//! (`stream.<name>.<host>`), in records of every size.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::client_hello(data));
