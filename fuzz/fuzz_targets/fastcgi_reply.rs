//! A FastCGI server's records read back as an HTTP response, fed in
//! pieces of every size.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::fastcgi_reply(data));
