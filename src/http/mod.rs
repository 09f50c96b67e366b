//! HTTP/1.1 on the wire: heads, header lists, body framing, dates, the
//! header rewriting a proxy owes both sides, and the response fields an
//! operator sets or removes. This module knows bytes, never
//! policy: it does not know about backends, caches or configuration.

pub mod body;
pub mod conn;
pub mod date;
pub mod edits;
pub mod fastcgi;
pub mod forward;
pub mod head;
pub mod headers;
pub mod proxy_protocol;
pub mod proxy_tlv;
pub mod range;
pub mod send_proxy;
pub mod status_rule;
pub mod structured;
pub mod tls;

pub use body::{BodyError, BodyKind, BodyReader};
pub use conn::BufConn;
pub use head::{HeadError, RequestHead, ResponseHead, Version};
pub use headers::Headers;
