//! The chunked decoder, reading through a small buffer so every boundary
//! gets hit. A body that decodes must decode again, to the same bytes,
//! from our own re-encoding of it.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::chunked(data));
