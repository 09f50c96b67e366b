//! The request-head path a client's bytes take: find the end of the head
//! (fed whole, and again in two pieces, which must agree), parse and
//! validate it, then decide the body framing.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::request_head(data));
