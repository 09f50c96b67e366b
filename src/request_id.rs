//! Request IDs (`request_id_header`): one per request, sent to the backend,
//! returned to the client and logged, so that a request can be followed
//! through every log it touches (nginx's `$request_id`, HAProxy's
//! `unique-id-header`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The longest ID taken from a trusted proxy in front.
const MAX_LEN: usize = 128;

/// Whether an ID given by a trusted proxy in front can be kept (a client's
/// own never is: it could make many requests share one ID, or pass for
/// another's): printable ASCII without spaces or quotes, as it goes
/// unquoted in the combined log line and must not be able to break it.
pub fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// 128 bits as 32 hex digits, as nginx's `$request_id`: a counter through
/// a keyed hash, so unique within the process, and a key drawn at random
/// by each process, so unique across restarts and instances. Also the
/// boundary of a multipart answer from the cache, which no body may hold.
pub fn generate() -> String {
    format!("{:032x}", random_u128())
}

/// 128 bits that do not repeat within the process and are not foreseen
/// from outside it (see [`generate`]): request IDs, and a trace's IDs.
pub fn random_u128() -> u128 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let key = KEY.get_or_init(RandomState::new);
    let half = |salt: u64| {
        let mut hasher = key.build_hasher();
        hasher.write_u64(n);
        hasher.write_u64(salt);
        hasher.finish()
    };
    u128::from(half(0)) << 64 | u128::from(half(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_32_hex_digits_and_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[test]
    fn a_well_formed_id_is_printable_ascii_without_spaces_or_quotes() {
        assert!(is_well_formed("abc-123"));
        assert!(is_well_formed(&"a".repeat(MAX_LEN)));
        let long = "a".repeat(MAX_LEN + 1);
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb", long.as_str()] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }
}
