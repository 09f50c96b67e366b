//! What a DNS server says to an SRV query (`srv:` targets), and the
//! text of an `/etc/resolv.conf`, the first byte choosing which.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dns(data));
