//! `sub_filter` rules and the bodies they rewrite, fed in pieces of
//! every size.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sub_filter(data));
