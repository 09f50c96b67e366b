//! OCSP responses, about a certificate, as the proxy reads them before
//! stapling one (see `checks::ocsp`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ocsp(data));
