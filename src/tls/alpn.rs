//! ALPN protocol names (RFC 7301): those a TLS stream offers (`alpn=`,
//! nginx stream's `ssl_alpn`, HAProxy's `bind ... alpn`), checked as
//! written, and the one a handshake agreed as the log and a PROXY
//! header take it.
//!
//! What a handshake agreed is a `&'static str`, as the HTTP port's are
//! (see [`crate::http::tls::Agreed`]): each name a configuration offers is
//! kept for the life of the process, once however often it is loaded
//! again. A configuration names at most [`MAX_NAMES`] per stream.

use parking_lot::Mutex;

/// The most protocols one stream offers.
pub const MAX_NAMES: usize = 16;

/// The longest name ALPN carries: its length is one byte.
const MAX_NAME: usize = 255;

/// The names HTTPS offers, and every one a stream has offered since the
/// process started.
static KEPT: Mutex<Vec<&'static str>> = parking_lot::const_mutex(Vec::new());

/// The name a handshake agreed on, `agreed` as the session says it:
/// `None` for one this process never offered (none can be agreed).
pub fn agreed(agreed: &[u8]) -> Option<&'static str> {
    match agreed {
        b"http/1.1" => Some("http/1.1"),
        b"http/1.0" => Some("http/1.0"),
        other => (KEPT.lock().iter())
            .find(|name| name.as_bytes() == other)
            .copied(),
    }
}

/// `alpn=`'s value, `h2,http/1.1`: the names in the order written, the
/// stream's preference among those a client offers (as nginx's
/// `ssl_alpn` through OpenSSL), each kept for [`agreed`].
pub fn parse_list(value: &str) -> Result<Vec<&'static str>, String> {
    let names: Vec<&str> = value.split(',').collect();
    if names.len() > MAX_NAMES {
        return Err(format!("alpn= names more than {MAX_NAMES} protocols"));
    }
    let mut offered = Vec::with_capacity(names.len());
    for name in names {
        check(name)?;
        if offered.contains(&name) {
            return Err(format!("alpn= names `{name}` twice"));
        }
        offered.push(name);
    }
    Ok(offered.into_iter().map(kept).collect())
}

/// `name` as a key names it (`stream.<name>.alpn:<protocol>`): checked as
/// `alpn=`'s names are, kept as theirs.
pub fn protocol(name: &str) -> Result<&'static str, String> {
    check(name).map_err(|_| {
        format!(
            "`{}` is not a protocol's name (1 to {MAX_NAME} visible ASCII characters, as \
             `alpn:acme-tls/1`)",
            name.escape_debug()
        )
    })?;
    Ok(kept(name))
}

/// A name as ALPN carries it: 1 to 255 bytes, here of visible ASCII
/// (the registered names are, and a config file's text can say no
/// other without ambiguity).
fn check(name: &str) -> Result<(), String> {
    let fits = (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic());
    match fits {
        true => Ok(()),
        false => Err(format!(
            "alpn=: `{}` is not a protocol's name (1 to {MAX_NAME} visible ASCII characters, \
             names separated by commas: `alpn=h2,http/1.1`)",
            name.escape_debug()
        )),
    }
}

/// `name` for the life of the process: the one kept before, or a new one.
fn kept(name: &str) -> &'static str {
    let mut kept = KEPT.lock();
    if let Some(same) = kept.iter().find(|k| **k == name) {
        return same;
    }
    let leaked: &'static str = Box::leak(name.into());
    kept.push(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_its_order_and_each_name_is_agreed_as_itself() {
        let names = parse_list("h2,imap,x-test/7").unwrap();
        assert_eq!(names, ["h2", "imap", "x-test/7"]);
        assert_eq!(agreed(b"imap"), Some("imap"));
        assert_eq!(agreed(b"x-test/7"), Some("x-test/7"));
        assert_eq!(agreed(b"http/1.1"), Some("http/1.1"));
        assert_eq!(agreed(b"never-offered"), None);
    }

    #[test]
    fn a_name_loaded_again_is_the_one_kept_before() {
        let first = parse_list("kept-once").unwrap()[0];
        let again = parse_list("kept-once").unwrap()[0];
        assert!(std::ptr::eq(first, again));
        let count = KEPT.lock().iter().filter(|k| **k == "kept-once").count();
        assert_eq!(count, 1);
    }

    #[test]
    fn names_that_alpn_cannot_carry_or_that_repeat_are_refused() {
        let long = "a".repeat(256);
        for (value, says) in [
            ("", "is not a protocol's name"),
            ("h2,", "is not a protocol's name"),
            ("h2,,http/1.1", "is not a protocol's name"),
            ("h 2", "is not a protocol's name"),
            ("h2é", "is not a protocol's name"),
            (&long, "is not a protocol's name"),
            ("h2,h2", "names `h2` twice"),
        ] {
            let e = parse_list(value).unwrap_err();
            assert!(e.contains(says), "{value}: {e}");
        }
        assert_eq!(parse_list(&"a".repeat(255)).unwrap()[0].len(), 255);
        let most: Vec<String> = (0..MAX_NAMES).map(|i| format!("p{i}")).collect();
        assert_eq!(parse_list(&most.join(",")).unwrap().len(), MAX_NAMES);
        let more = format!("{},p99", most.join(","));
        assert!(parse_list(&more).unwrap_err().contains("more than 16"));
    }
}
