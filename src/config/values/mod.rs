//! Parsers for configuration values: numbers, durations, sizes, booleans,
//! paths, address blocks and targets. Each says what is wrong in words;
//! the loader adds where (`proxy.conf:7: ...`).
//!
//! # Layout
//! - `scalars`: numbers, durations, sizes, rates, booleans, paths, ports,
//!   address blocks, and a health probe's statuses and body.
//! - `targets`: `targets` as written, the addresses a name stands for,
//!   and `check`'s account of them.
//! - `header_fields`: what the proxy writes in header fields: the
//!   `request_header.*` and `response_header.*` edits, and the tokens,
//!   cache names, Host values and targeted fields it sends.
//! - `auth`: `auth_request` and its redirect and fields, and
//!   `auth_basic`'s realm and users.
//! - `blocks`: lists of address blocks, written or read from files.
//! - `certificates`: `tls_certificates` and `backend_tls_certificate`.
//! - `escaped`: what a health probe sends and looks for, written as text.
//! - `conversation`: a probe's exchange in steps of those.

mod auth;
mod blocks;
mod certificates;
pub(super) mod conversation;
pub(super) mod escaped;
mod fastcgi;
mod header_fields;
mod scalars;
mod targets;

// Named as `super::DEFAULT_POOL` by `parse_auth_request`, from when the
// values were one file in `config`.
use super::DEFAULT_POOL;
pub use auth::{is_origin_path, PoolRequest};
pub(super) use auth::{
    optional_jwks, optional_users, parse_auth_fields, parse_auth_redirect, parse_auth_request,
    parse_realm,
};
pub(super) use blocks::parse_cidrs;
pub use blocks::{address_blocks, ADDRESS_LISTS};
pub(super) use certificates::{backend_certificate, parse_certificates};
pub use conversation::ProbeStep;
pub(super) use fastcgi::{
    parse_fastcgi_index, parse_fastcgi_params, parse_fastcgi_root, parse_fastcgi_script,
    parse_split_path_info,
};
pub(super) use header_fields::{
    parse_cache_name, parse_cookie_attributes, parse_cookie_name, parse_device_token,
    parse_field_edit, parse_field_name, parse_host, parse_targeted_fields, MAX_FIELD_EDITS,
};
pub(super) use scalars::{
    optional, optional_path, optional_port, parse_bool, parse_expected_body, parse_fail_timeout,
    parse_max_fails, parse_number, parse_positive_duration, parse_size_in, parse_status_ranges,
};
pub use scalars::{parse_duration, parse_rate, parse_size};
pub(super) use targets::{parse_resolver, parse_targets};
// For `config`'s tests, which write a socket path one byte too long.
#[cfg(test)]
pub(super) use targets::max_unix_path;
pub use targets::{
    addresses_of, does_not_resolve, listed, lookup, service_domain, target_lines, written,
    Addresses, Found, LastAddresses, Written, MAX_ADDRESSES_PER_NAME,
};
