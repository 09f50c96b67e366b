//! A backend's response head: find its end, parse it, decide the framing
//! (for a GET and for a HEAD request).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::response_head(data));
