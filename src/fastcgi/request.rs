//! The HTTP request the proxy writes for a backend, turned into FastCGI
//! records as it is written: its head into `FCGI_BEGIN_REQUEST` and the
//! `FCGI_PARAMS` stream, its body into `FCGI_STDIN`.

use super::params::{params, ParamsError, Request};
use super::record::{push_begin, push_end, push_stream, PARAMS, STDIN};
use super::{App, Exchange};

/// The most a head may take here: far past what the proxy sends a
/// backend, whose own limit on a client's head is lower.
const MAX_HEAD: usize = 1 << 20;

/// Where the request being written is.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The head so far; empty between requests.
    head: Vec<u8>,
    /// Bytes of the body still to come.
    body_left: u64,
}

/// Why the proxy's request cannot go as FastCGI.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("a chunked request body has no length to send as CONTENT_LENGTH")]
    Chunked,
    #[error("the request head cannot be read: {0}")]
    Head(String),
    #[error("the request head is over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("the request cannot be sent: {0}")]
    Params(#[from] ParamsError),
}

/// A request whose head was turned into records: what its answer is
/// read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Begun {
    /// A `HEAD` request: its answer has no body, whatever comes.
    pub head_only: bool,
    /// The server was asked to keep the connection (see
    /// [`App::keep_conn`]).
    pub keep_conn: bool,
}

impl Encoder {
    /// Turns `input`, the next bytes of the HTTP request, into records
    /// appended to `out`. A request whose head is complete in it is said
    /// (the answer is read for it from then on), and takes `exchange`,
    /// which is that request's alone.
    pub fn encode(
        &mut self,
        mut input: &[u8],
        app: &App,
        exchange: &mut Option<Exchange>,
        out: &mut Vec<u8>,
    ) -> Result<Option<Begun>, EncodeError> {
        let mut begun = None;
        while !input.is_empty() {
            if self.body_left > 0 {
                let take = input
                    .len()
                    .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
                push_stream(out, STDIN, &input[..take]);
                self.body_left -= take as u64;
                if self.body_left == 0 {
                    push_end(out, STDIN);
                }
                input = &input[take..];
                continue;
            }
            // A head that ends in `input` ends within its first bytes
            // past what came before, less the 3 of its end already here.
            let searched_from = self.head.len().saturating_sub(3);
            let kept = self.head.len();
            self.head.extend_from_slice(input);
            let Some(end) = memchr::memmem::find(&self.head[searched_from..], b"\r\n\r\n") else {
                if self.head.len() > MAX_HEAD {
                    return Err(EncodeError::HeadTooLarge);
                }
                return Ok(begun);
            };
            let head_len = searched_from + end + 4;
            input = &input[head_len - kept..];
            self.head.truncate(head_len);
            let head = std::mem::take(&mut self.head);
            let (request_params, body_len, head_only) =
                read_head(&head, app, exchange.take().as_ref())?;
            push_begin(out, app.keep_conn);
            push_stream(out, PARAMS, &request_params);
            push_end(out, PARAMS);
            if body_len == 0 {
                push_end(out, STDIN);
            }
            self.body_left = body_len;
            begun = Some(Begun {
                head_only,
                keep_conn: app.keep_conn,
            });
        }
        Ok(begun)
    }
}

/// The CGI variables of a whole head, its body's length, and whether it
/// is a `HEAD`.
fn read_head(
    head: &[u8],
    app: &App,
    exchange: Option<&Exchange>,
) -> Result<(Vec<u8>, u64, bool), EncodeError> {
    // Each field is a line: no more fields than line ends.
    let lines = memchr::memmem::find_iter(head, b"\r\n").count();
    let mut fields = vec![httparse::EMPTY_HEADER; lines];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(EncodeError::Head("cut short".into())),
        Err(e) => return Err(EncodeError::Head(e.to_string())),
    }
    let headers = &*parsed.headers;
    let named = |name: &'static str| headers.iter().find(|h| h.name.eq_ignore_ascii_case(name));
    if named("transfer-encoding").is_some() {
        return Err(EncodeError::Chunked);
    }
    let body_len = match named("content-length") {
        Some(h) => (std::str::from_utf8(h.value).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| EncodeError::Head("a bad Content-Length".into()))?,
        None => 0,
    };
    let method = parsed.method.unwrap_or_default();
    let request = Request {
        method,
        target: parsed.path.unwrap_or_default(),
        version: parsed.version.unwrap_or(1),
        headers,
    };
    let vars = params(app, &request, exchange)?;
    Ok((vars, body_len, method == "HEAD"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{parse_pairs, Header, BEGIN_REQUEST, HEADER_LEN};

    fn app() -> App {
        App {
            root: "/srv".into(),
            index: None,
            script: None,
            split_path_info: None,
            params: Vec::new(),
            keep_conn: false,
        }
    }

    /// The records in `bytes`: kind and content.
    fn records(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let header = Header::parse(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
            let end = HEADER_LEN + header.content_len as usize;
            out.push((header.kind, bytes[HEADER_LEN..end].to_vec()));
            bytes = &bytes[end + header.padding_len as usize..];
        }
        out
    }

    #[test]
    fn a_post_written_in_pieces_goes_as_params_then_stdin_then_its_end() {
        let request =
            b"POST /form.php?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
        let mut encoder = Encoder::default();
        let mut out = Vec::new();
        let mut begun = Vec::new();
        // Split everywhere, the head's end too.
        for piece in request.chunks(5) {
            begun.extend(encoder.encode(piece, &app(), &mut None, &mut out).unwrap());
        }
        assert_eq!(
            begun,
            [Begun {
                head_only: false,
                keep_conn: false
            }]
        );
        let records = records(&out);
        assert_eq!(records[0].0, BEGIN_REQUEST);
        let params: Vec<u8> = (records.iter())
            .filter(|(kind, _)| *kind == PARAMS)
            .flat_map(|(_, c)| c.clone())
            .collect();
        let pairs = parse_pairs(&params).unwrap();
        assert!(pairs.contains(&(b"SCRIPT_FILENAME".to_vec(), b"/srv/form.php".to_vec())));
        assert!(pairs.contains(&(b"CONTENT_LENGTH".to_vec(), b"11".to_vec())));
        let stdin: Vec<&(u8, Vec<u8>)> = records.iter().filter(|(k, _)| *k == STDIN).collect();
        let body: Vec<u8> = stdin.iter().flat_map(|(_, c)| c.clone()).collect();
        assert_eq!(body, b"hello world");
        assert!(stdin.last().unwrap().1.is_empty(), "the stream ends");
        assert!(records.iter().any(|(k, c)| *k == PARAMS && c.is_empty()));
    }

    #[test]
    fn a_bodiless_request_ends_its_stdin_at_once_and_the_next_follows() {
        let mut encoder = Encoder::default();
        let mut out = Vec::new();
        let two = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let begun = encoder.encode(two, &app(), &mut None, &mut out).unwrap();
        assert_eq!(
            begun,
            Some(Begun {
                head_only: false,
                keep_conn: false
            }),
            "the last one said"
        );
        let records = records(&out);
        let begins = records.iter().filter(|(k, _)| *k == BEGIN_REQUEST).count();
        let stdin_ends = (records.iter())
            .filter(|(k, c)| *k == STDIN && c.is_empty())
            .count();
        assert_eq!((begins, stdin_ends), (2, 2));
        let mut encoder = Encoder::default();
        let head = encoder
            .encode(
                b"HEAD / HTTP/1.1\r\n\r\n",
                &app(),
                &mut None,
                &mut Vec::new(),
            )
            .unwrap();
        assert_eq!(
            head,
            Some(Begun {
                head_only: true,
                keep_conn: false
            })
        );
    }

    #[test]
    fn a_chunked_body_or_a_head_that_never_ends_is_refused() {
        let mut out = Vec::new();
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let e = Encoder::default().encode(chunked, &app(), &mut None, &mut out);
        assert!(matches!(e, Err(EncodeError::Chunked)), "{e:?}");
        let mut encoder = Encoder::default();
        let line = vec![b'a'; 64 * 1024];
        let e = (0..20)
            .map(|_| encoder.encode(&line, &app(), &mut None, &mut out))
            .find(Result::is_err);
        assert!(matches!(e, Some(Err(EncodeError::HeadTooLarge))), "{e:?}");
    }
}
