//! DNS as the proxy speaks it to a server itself, rather than through the
//! system resolver: the pieces every message needs.
//!
//! # Layout
//! - `message`: an SRV query (RFC 1035 §4, RFC 2782) built, and its reply
//!   read, every length and pointer in it checked before use.
//! - `srv`: the query asked of a server over UDP, again over TCP when the
//!   reply is truncated, and its records turned into the addresses of a
//!   target written `srv:NAME` (see `targets`).
//! - here: a name in wire form, and a query's ID.
//!
//! `acme::dns_update` builds UPDATE messages with the same two helpers.

pub mod message;
pub mod srv;

/// `name` in wire form (RFC 1035 §3.1), lower case, without compression.
pub(crate) fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let name = name.trim_end_matches('.');
    let mut wire = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            let length = u8::try_from(label.len())
                .ok()
                .filter(|&l| (1..=63).contains(&l));
            let length =
                length.ok_or_else(|| format!("`{name}`: a label empty or over 63 bytes"))?;
            wire.push(length);
            wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err(format!("`{name}`: over 255 bytes"));
    }
    Ok(wire)
}

/// A query's ID, unpredictable: a reply is taken only with the ID its
/// query went with, so that one who cannot see the query cannot forge
/// its answer without guessing it (RFC 5452 §4.3).
pub(crate) fn random_id() -> u16 {
    use ring::rand::SecureRandom as _;
    let mut id = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut id);
    u16::from_be_bytes(id)
}
