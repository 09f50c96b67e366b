//! Access-log lines of what clients and backends send, in every format
//! and templates of any text (see `checks::log_line`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::log_line(data));
