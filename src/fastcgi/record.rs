//! FastCGI's records (the FastCGI 1.0 specification, §3): an 8-byte
//! header, up to 65,535 bytes of content and some padding; and the
//! name-value pairs a `FCGI_PARAMS` stream carries (§3.4).

/// The one request a connection carries at a time: the proxy never
/// multiplexes (nginx and HAProxy do not either).
pub const REQUEST_ID: u16 = 1;

pub const BEGIN_REQUEST: u8 = 1;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;

/// The most content one record holds.
pub const MAX_CONTENT: usize = 0xffff;
pub const HEADER_LEN: usize = 8;

/// A record's header as read (§3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub request_id: u16,
    pub content_len: u16,
    pub padding_len: u8,
}

impl Header {
    /// The header in `bytes`; `None` when its version is not 1.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
        (bytes[0] == 1).then(|| Header {
            kind: bytes[1],
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_len: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_len: bytes[6],
        })
    }
}

/// The header of a record of `kind` for the request, `len` bytes of
/// content (at most [`MAX_CONTENT`]) and no padding (which §3.3 only
/// recommends).
pub fn header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(len <= MAX_CONTENT);
    let [id_hi, id_lo] = REQUEST_ID.to_be_bytes();
    let [len_hi, len_lo] = (len as u16).to_be_bytes();
    [1, kind, id_hi, id_lo, len_hi, len_lo, 0, 0]
}

/// Appends `content` to `out` as records of `kind`, as many as it takes;
/// nothing for empty content (an empty record ends a stream: see
/// [`push_end`]).
pub fn push_stream(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    for piece in content.chunks(MAX_CONTENT) {
        out.extend_from_slice(&header(kind, piece.len()));
        out.extend_from_slice(piece);
    }
}

/// Appends the empty record that ends a stream of `kind`.
pub fn push_end(out: &mut Vec<u8>, kind: u8) {
    out.extend_from_slice(&header(kind, 0));
}

/// Appends `FCGI_BEGIN_REQUEST` for a responder, which with `keep_conn`
/// keeps the connection open after the request (`FCGI_KEEP_CONN`), so
/// that it can be reused, and else closes it.
pub fn push_begin(out: &mut Vec<u8>, keep_conn: bool) {
    const RESPONDER: u16 = 1;
    out.extend_from_slice(&header(BEGIN_REQUEST, 8));
    out.extend_from_slice(&RESPONDER.to_be_bytes());
    out.extend_from_slice(&[u8::from(keep_conn), 0, 0, 0, 0, 0]);
}

/// Appends one name-value pair (§3.4): each length in one byte below
/// 128, else in four with the high bit set.
pub fn push_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    push_len(out, name.len());
    push_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        // Lengths past 2^31 are not sent: the head they come from is
        // bounded far below it.
        _ => out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes()),
    }
}

/// Why a FastCGI request ended, from its `FCGI_END_REQUEST` (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Complete,
    /// `FCGI_CANT_MPX_CONN`, `FCGI_OVERLOADED`, `FCGI_UNKNOWN_ROLE`, or a
    /// status the specification does not name.
    Refused(u8),
}

impl Ended {
    pub fn parse(body: &[u8; 8]) -> Ended {
        match body[4] {
            0 => Ended::Complete,
            status => Ended::Refused(status),
        }
    }

    /// What the server's refusal means, for the error it becomes.
    pub fn words(status: u8) -> &'static str {
        match status {
            1 => "it takes one request per connection (FCGI_CANT_MPX_CONN)",
            2 => "it is overloaded (FCGI_OVERLOADED)",
            3 => "it is no responder (FCGI_UNKNOWN_ROLE)",
            _ => "with an unknown protocol status",
        }
    }
}

/// Reads the name-value pairs of a `FCGI_PARAMS` stream's content, for
/// tests and the tests' FastCGI servers; `None` where a length runs past
/// the end.
pub fn parse_pairs(mut bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    fn len(bytes: &mut &[u8]) -> Option<usize> {
        let first = *bytes.first()?;
        if first < 0x80 {
            *bytes = &bytes[1..];
            return Some(first as usize);
        }
        let four: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        *bytes = &bytes[4..];
        Some((u32::from_be_bytes(four) & 0x7fff_ffff) as usize)
    }
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let name_len = len(&mut bytes)?;
        let value_len = len(&mut bytes)?;
        let name = bytes.get(..name_len)?.to_vec();
        let value = bytes.get(name_len..name_len + value_len)?.to_vec();
        bytes = &bytes[name_len + value_len..];
        pairs.push((name, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_take_one_byte_lengths_below_128_and_four_from_it() {
        let mut out = Vec::new();
        let long = vec![b'v'; 128];
        push_pair(&mut out, b"SHORT", b"x");
        push_pair(&mut out, b"LONG", &long);
        assert_eq!(&out[..2], &[5, 1]);
        assert_eq!(&out[8..14], &[4, 0x80, 0, 0, 128, b'L']);
        let pairs = parse_pairs(&out).unwrap();
        assert_eq!(pairs[0], (b"SHORT".to_vec(), b"x".to_vec()));
        assert_eq!(pairs[1], (b"LONG".to_vec(), long));
        assert_eq!(parse_pairs(&out[..out.len() - 1]), None, "cut short");
    }

    #[test]
    fn a_stream_goes_in_records_of_at_most_65535_bytes_and_ends_empty() {
        let mut out = Vec::new();
        push_stream(&mut out, STDIN, &vec![7; MAX_CONTENT + 10]);
        push_end(&mut out, STDIN);
        let first = Header::parse(out[..8].try_into().unwrap()).unwrap();
        assert_eq!((first.kind, first.request_id), (STDIN, REQUEST_ID));
        assert_eq!(first.content_len as usize, MAX_CONTENT);
        let at = 8 + MAX_CONTENT;
        let second = Header::parse(out[at..at + 8].try_into().unwrap()).unwrap();
        assert_eq!(second.content_len, 10);
        let end = Header::parse(out[out.len() - 8..].try_into().unwrap()).unwrap();
        assert_eq!(end.content_len, 0);
        assert_eq!(out.len(), 8 + MAX_CONTENT + 8 + 10 + 8);
        assert_eq!(Header::parse(&[2, 6, 0, 1, 0, 0, 0, 0]), None, "version 2");
    }

    #[test]
    fn begin_asks_a_responder_to_keep_the_connection() {
        let mut out = Vec::new();
        push_begin(&mut out, true);
        assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        out.clear();
        push_begin(&mut out, false);
        assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Ended::parse(&[0, 0, 0, 0, 0, 0, 0, 0]), Ended::Complete);
        assert_eq!(Ended::parse(&[0, 0, 0, 0, 2, 0, 0, 0]), Ended::Refused(2));
    }
}
