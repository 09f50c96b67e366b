//! Certificate DER as the proxy walks it for `notAfter`, the subject and
//! issuer names and the serial number (see `checks::x509`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::x509(data));
