//! The few HTTP exchanges an ACME client makes: a request on a
//! connection of its own (`Connection: close`), over TLS to an `https`
//! directory, the answer read whole up to [`MAX_BODY`]. A CA's answers
//! are small JSON documents and a certificate chain of a few KiB.

use crate::config::Endpoint;
use crate::http::conn::Socket as _;
use crate::http::head::{find_head_end, parse_response};
use crate::http::{BodyKind, BodyReader, BufConn};
use crate::upstream::BackendTls;
use rustls::ClientConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An answer larger than this is not an ACME server's.
const MAX_BODY: usize = 256 * 1024;
const MAX_HEAD: usize = 16 * 1024;

/// A URL the client may ask: `https://host[:port]/path`, or `http://`
/// to a loopback host (a CA under test on the same machine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// As written: a name, an IPv4 address, or an IPv6 one in brackets.
    pub host: String,
    pub port: u16,
    /// With the query, `/` at least.
    pub path: String,
    /// As given: what a signed request names (RFC 8555 §6.4).
    pub text: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{text}`: not an https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rfind(':') {
            Some(at) if !authority[at..].contains(']') => {
                let port = (authority[at + 1..].parse::<u16>().ok())
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("`{text}`: the port is not a number from 1 to 65535"))?;
                (&authority[..at], port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let bracketed = host.starts_with('[') && host.ends_with(']');
        let well_formed = !host.is_empty()
            && (bracketed
                || host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)))
            && !path
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'#');
        if !well_formed {
            return Err(format!("`{text}`: not a URL of a host"));
        }
        let url = Url {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
            text: text.to_string(),
        };
        if !tls && !url.is_loopback() {
            return Err(format!(
                "`{text}`: plain http:// only to this machine (127.0.0.1, [::1], localhost): \
                 a CA is asked over https://"
            ));
        }
        Ok(url)
    }

    fn is_loopback(&self) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The `Host` field: the port written when it is not the scheme's.
    fn authority(&self) -> String {
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => self.host.clone(),
            (_, port) => format!("{}:{port}", self.host),
        }
    }
}

/// What came back: the status, the fields ACME reads, and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub nonce: Option<String>,
    pub location: Option<String>,
    /// `Retry-After` in seconds (the date form is read as none).
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer `stream` brings to a request (`head_request`: to a
    /// HEAD), read whole within [`MAX_HEAD`] and [`MAX_BODY`];
    /// `before_read` is called before each read (the time left set
    /// on the socket, an error once there is none).
    #[doc(hidden)]
    pub fn read<S: Read>(
        stream: &mut S,
        head_request: bool,
        mut before_read: impl FnMut(&mut S) -> Result<(), String>,
    ) -> Result<Answer, String> {
        let mut got = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        let mut scanned = 0;
        let head_len = loop {
            match find_head_end(&got, &mut scanned) {
                Ok(Some(len)) => break len,
                Ok(None) if got.len() > MAX_HEAD => return Err("a head over 16 KiB".into()),
                Ok(None) => {}
                Err(e) => return Err(format!("a malformed answer: {e}")),
            }
            before_read(stream)?;
            match stream.read(&mut chunk) {
                Ok(0) => return Err("closed before an answer".into()),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        };
        let head =
            parse_response(&got[..head_len]).map_err(|e| format!("a malformed answer: {e}"))?;
        let kind = BodyKind::for_response(head_request, &head)
            .map_err(|e| format!("a malformed answer: {e}"))?;
        got.drain(..head_len);
        // Asked with `Connection: close`: the body ends at its length,
        // or at the close.
        let whole = |got: &[u8]| match kind {
            BodyKind::Empty => true,
            BodyKind::Length(n) => got.len() as u64 >= n,
            BodyKind::Chunked | BodyKind::UntilClose => false,
        };
        while !whole(&got) {
            if got.len() > MAX_BODY + MAX_HEAD {
                return Err("an answer over 256 KiB".into());
            }
            before_read(stream)?;
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut conn = BufConn::holding(got);
        let mut reader = BodyReader::new(kind);
        let mut body = Vec::new();
        loop {
            match reader.next(&mut conn) {
                Ok(Some(piece)) => body.extend_from_slice(piece),
                Ok(None) => break,
                Err(e) => return Err(format!("the answer's body: {e}")),
            }
            if body.len() > MAX_BODY {
                return Err("an answer over 256 KiB".into());
            }
        }
        let field = |name: &str| head.headers.get_str(name).map(|v| v.trim().to_string());
        Ok(Answer {
            status: head.status,
            nonce: field("replay-nonce"),
            location: field("location"),
            retry_after: field("retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs),
            body,
        })
    }
}

/// Asks ACME servers: over TLS with `tls`, every exchange within
/// `timeout`.
pub struct Client {
    pub tls: Arc<ClientConfig>,
    pub timeout: Duration,
}

impl Client {
    /// `method` of `url`, with a JOSE body when `body` is given.
    pub fn ask(&self, method: &str, url: &Url, body: Option<&str>) -> Result<Answer, String> {
        let deadline = Instant::now() + self.timeout;
        let left = || {
            Some(deadline.saturating_duration_since(Instant::now()))
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("no answer within {:?}", self.timeout))
        };
        let mut stream = self.connect(url, left()?)?;
        let mut request = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: inverso/{} (ACME)\r\n\
             Accept: application/json, application/pem-certificate-chain\r\n\
             Connection: close\r\n",
            url.path,
            url.authority(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(body) = body {
            request.push_str("Content-Type: application/jose+json\r\n");
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or(""));
        let failed = |e: std::io::Error| e.to_string();
        stream.set_write_timeout(Some(left()?)).map_err(failed)?;
        stream.write_all(request.as_bytes()).map_err(failed)?;
        Answer::read(&mut stream, method == "HEAD", |stream| {
            stream.set_read_timeout(Some(left()?)).map_err(failed)
        })
    }

    /// A connection to `url`'s host, the first of its addresses that
    /// takes one, its TLS handshake made.
    fn connect(&self, url: &Url, within: Duration) -> Result<crate::http::conn::Stream, String> {
        let bare = url.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (bare, url.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", url.host))?
            .collect();
        let tls = match url.tls {
            true => Some(BackendTls {
                settings: self.tls.clone(),
                name: crate::tls::backends::server_name(bare, None)?,
            }),
            false => None,
        };
        let mut why = format!("{}: no address", url.host);
        let started = Instant::now();
        for addr in addrs {
            let endpoint = Endpoint::Tcp(addr);
            let left = within.saturating_sub(started.elapsed());
            let made = crate::upstream::open(&endpoint, tls.as_ref(), None).and_then(|stream| {
                crate::upstream::connect(&stream, &endpoint, left)?;
                crate::upstream::handshake(&stream, within.saturating_sub(started.elapsed()))?;
                Ok(stream)
            });
            match made {
                Ok(stream) => return Ok(stream),
                Err(e) => why = format!("{addr}: {e}"),
            }
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_are_read_as_an_acme_client_needs_them() {
        let url = Url::parse("https://acme-v02.api.letsencrypt.org/directory").unwrap();
        assert_eq!(
            url,
            Url {
                tls: true,
                host: "acme-v02.api.letsencrypt.org".into(),
                port: 443,
                path: "/directory".into(),
                text: "https://acme-v02.api.letsencrypt.org/directory".into(),
            }
        );
        assert_eq!(url.authority(), "acme-v02.api.letsencrypt.org");
        let url = Url::parse("https://ca.internal:9000/acme/dir?x=1").unwrap();
        assert_eq!((url.port, url.path.as_str()), (9000, "/acme/dir?x=1"));
        assert_eq!(url.authority(), "ca.internal:9000");
        let url = Url::parse("http://[::1]:14000").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("[::1]", 14000, "/")
        );
        assert!(Url::parse("http://127.0.0.1:1/dir").is_ok());
        assert!(Url::parse("http://localhost/dir").is_ok());
        for refused in [
            "http://ca.example/dir",
            "http://10.0.0.1/dir",
            "ftp://ca.example/",
            "https://",
            "https://ca.example:0/",
            "https://ca.example:99999/",
            "https://ca example/",
            "https://ca.example/a b",
            "ca.example/dir",
        ] {
            assert!(Url::parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_bracketed_host_takes_the_default_port_and_a_path_no_fragment() {
        let url = Url::parse("https://[::1]/dir").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("[::1]", 443));
        for refused in [
            "https://[::1/dir",
            "https://ca.example/a#b",
            "https://ca.example/a\u{1}b",
        ] {
            assert!(Url::parse(refused).is_err(), "{refused:?}");
        }
    }

    /// What a server answering `reply` to one request made of it gave
    /// back; with `keep_open`, the server closes the connection only
    /// once the client is done, as one that ignores `Connection: close`.
    fn held(reply: Vec<u8>, keep_open: bool) -> Result<Answer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut chunk).unwrap();
                got.extend_from_slice(&chunk[..n]);
            }
            // The client may stop reading before the end: not an error here.
            let _ = socket.write_all(&reply);
            if keep_open {
                let _ = wait.recv_timeout(Duration::from_secs(30));
            }
        });
        let client = Client {
            tls: crate::tls::backends::default_client_config(),
            timeout: Duration::from_secs(3),
        };
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
        let answer = client.ask("GET", &url, None);
        drop(done);
        server.join().unwrap();
        answer
    }

    #[test]
    fn an_answer_is_read_to_its_length_without_waiting_for_the_close() {
        let answer = held(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            true,
        );
        assert_eq!(answer.unwrap().body, b"hello");
    }

    #[test]
    fn a_body_of_256_kib_is_taken_and_an_endless_one_cut_there() {
        let mut reply =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY}\r\n\r\n").into_bytes();
        reply.resize(reply.len() + MAX_BODY, b'x');
        let answer = held(reply, false).unwrap();
        assert_eq!(answer.body.len(), 256 * 1024);
        // No length, no close: the client stops at its limit.
        let mut reply = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        reply.resize(reply.len() + 300 * 1024, b'x');
        let e = held(reply, true).unwrap_err();
        assert!(e.contains("over 256 KiB"), "{e}");
    }

    #[test]
    fn a_head_of_12_kib_is_taken_and_an_endless_one_cut_at_16() {
        let mut reply = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        reply.resize(reply.len() + 12 * 1024, b'p');
        reply.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(held(reply, false).unwrap().body, b"ok");
        let mut reply = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        reply.resize(reply.len() + 20 * 1024 + 7, b'p');
        let e = held(reply, true).unwrap_err();
        assert!(e.contains("head over 16 KiB"), "{e}");
    }

    /// One exchange with a server that answers `reply` to whatever comes,
    /// and what it was sent.
    fn asked(
        reply: &'static [u8],
        method: &str,
        body: Option<&str>,
    ) -> (Result<Answer, String>, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut chunk).unwrap();
                got.extend_from_slice(&chunk[..n]);
            }
            socket.write_all(reply).unwrap();
            String::from_utf8(got).unwrap()
        });
        let client = Client {
            tls: crate::tls::backends::default_client_config(),
            timeout: Duration::from_secs(5),
        };
        let url = Url::parse(&format!("http://127.0.0.1:{port}/new-order")).unwrap();
        let answer = client.ask(method, &url, body);
        (answer, server.join().unwrap())
    }

    #[test]
    fn an_answer_gives_its_nonce_location_and_body() {
        let reply = b"HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nLocation: http://127.0.0.1/o/1\r\n\
                      Retry-After: 3\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let (answer, sent) = asked(reply, "POST", Some("{\"p\":1}"));
        let answer = answer.unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(answer.nonce.as_deref(), Some("abc"));
        assert_eq!(answer.location.as_deref(), Some("http://127.0.0.1/o/1"));
        assert_eq!(answer.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(answer.body, b"{}");
        assert!(sent.starts_with("POST /new-order HTTP/1.1\r\n"), "{sent}");
        assert!(
            sent.contains("Content-Type: application/jose+json\r\n"),
            "{sent}"
        );
        assert!(sent.contains("Content-Length: 7\r\n"), "{sent}");
    }

    #[test]
    fn a_chunked_answer_is_decoded_and_a_head_answer_has_no_body() {
        let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (answer, _) = asked(reply, "GET", None);
        assert_eq!(answer.unwrap().body, b"abcde");
        let reply = b"HTTP/1.1 200 OK\r\nReplay-Nonce: n1\r\nContent-Length: 10\r\n\r\n";
        let (answer, sent) = asked(reply, "HEAD", None);
        let answer = answer.unwrap();
        assert_eq!(
            (answer.nonce.as_deref(), answer.body.len()),
            (Some("n1"), 0)
        );
        assert!(sent.starts_with("HEAD "));
    }

    #[test]
    fn an_answer_is_read_from_any_reader_and_one_cut_short_is_an_error() {
        let read = |wire: &[u8]| Answer::read(&mut std::io::Cursor::new(wire), false, |_| Ok(()));
        let answer = read(b"HTTP/1.1 200 OK\r\nRetry-After: 7\r\nContent-Length: 2\r\n\r\nok");
        let answer = answer.unwrap();
        assert_eq!(answer.body, b"ok");
        assert_eq!(answer.retry_after, Some(Duration::from_secs(7)));
        for cut in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            assert!(read(cut).is_err(), "{:?}", String::from_utf8_lossy(cut));
        }
        // Out of time (the socket's deadline passed): said as it is.
        let mut reads = 0;
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
        let timed = Answer::read(&mut std::io::Cursor::new(&wire[..]), false, |_| {
            reads += 1;
            match reads {
                1 => Ok(()),
                _ => Err("no answer within 1s".to_string()),
            }
        });
        assert_eq!(timed.unwrap_err(), "no answer within 1s");
    }

    #[test]
    fn a_garbled_or_cut_answer_is_an_error() {
        let (answer, _) = asked(b"SMTP ready\r\n\r\n", "GET", None);
        assert!(answer.unwrap_err().contains("malformed"));
        let (answer, _) = asked(b"HTTP/1.1 200 OK\r\nContent", "GET", None);
        assert!(answer.is_err());
        let (answer, _) = asked(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "GET",
            None,
        );
        assert!(answer.is_err());
    }
}
