//! The gzip decoder of `gunzip`, on texts it codes and on any bytes, fed
//! in pieces of every size.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::gunzip(data));
