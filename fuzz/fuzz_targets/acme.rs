//! What the ACME client reads from outside: an ACME server's answers
//! (HTTP, JSON documents, RFC 3339 dates), a DNS server's answer to an
//! update, and the `acme_*` keys' values, the first byte choosing which.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::acme(data));
