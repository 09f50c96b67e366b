//! FastCGI targets (`fastcgi`): requests reach a FastCGI responder as
//! nginx's `fastcgi_pass` sends them, its CGI output comes back as HTTP,
//! and everything the proxy does for an HTTP backend (pooled connections,
//! the cache, health checks, failing over) it does for one.
//!
//! The responder here is written from the FastCGI specification, apart
//! from the proxy's own code: what it reads and writes checks the proxy's
//! records, not the proxy's idea of them.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::*;

/// One request as the responder read it.
#[derive(Clone, Debug, Default)]
struct Asked {
    params: BTreeMap<String, String>,
    stdin: Vec<u8>,
    keep_conn: bool,
}

/// A FastCGI responder: each request's `SCRIPT_NAME` says what it
/// answers (see [`answer`]).
struct Responder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl Responder {
    fn start() -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let responder = Responder {
            addr,
            connections: Arc::default(),
            asked: Arc::default(),
        };
        let (connections, asked) = (responder.connections.clone(), responder.asked.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                connections.fetch_add(1, Ordering::SeqCst);
                let asked = asked.clone();
                std::thread::spawn(move || serve(stream, &asked));
            }
        });
        responder
    }

    /// The same, on a Unix socket at `path`.
    fn start_unix(path: &std::path::Path) -> Arc<Mutex<Vec<Asked>>> {
        let listener = UnixListener::bind(path).unwrap();
        let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
        let kept = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let asked = kept.clone();
                std::thread::spawn(move || serve(stream, &asked));
            }
        });
        asked
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    fn last(&self) -> Asked {
        self.asked()
            .pop()
            .expect("no request reached the responder")
    }
}

/// Reads one record: its type, request id and content (padding skipped).
fn read_record(stream: &mut impl Read) -> Option<(u8, u16, Vec<u8>)> {
    let mut header = [0; 8];
    stream.read_exact(&mut header).ok()?;
    assert_eq!(header[0], 1, "FastCGI version 1");
    let id = u16::from_be_bytes([header[2], header[3]]);
    let len = u16::from_be_bytes([header[4], header[5]]) as usize;
    let mut content = vec![0; len + header[6] as usize];
    stream.read_exact(&mut content).ok()?;
    content.truncate(len);
    Some((header[1], id, content))
}

fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len() as u16;
    let mut out = vec![1, kind, 0, 1, (len >> 8) as u8, len as u8, 0, 0];
    out.extend_from_slice(content);
    out
}

fn stdout(content: &[u8]) -> Vec<u8> {
    content.chunks(8192).flat_map(|c| record(6, c)).collect()
}

fn end_request(protocol_status: u8) -> Vec<u8> {
    record(3, &[0, 0, 0, 0, protocol_status, 0, 0, 0])
}

/// Name-value pairs (FastCGI §3.4).
fn pairs(mut bytes: &[u8]) -> BTreeMap<String, String> {
    fn len(bytes: &mut &[u8]) -> usize {
        if bytes[0] < 0x80 {
            let n = bytes[0] as usize;
            *bytes = &bytes[1..];
            return n;
        }
        let n = u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]) as usize;
        *bytes = &bytes[4..];
        n
    }
    let mut out = BTreeMap::new();
    while !bytes.is_empty() {
        let (n, v) = (len(&mut bytes), len(&mut bytes));
        let name = String::from_utf8(bytes[..n].to_vec()).unwrap();
        let value = String::from_utf8_lossy(&bytes[n..n + v]).into_owned();
        assert!(out.insert(name.clone(), value).is_none(), "{name} twice");
        bytes = &bytes[n + v..];
    }
    out
}

/// Serves requests on `stream` one after another while the proxy asks
/// to keep it.
fn serve(mut stream: impl Read + Write, asked: &Mutex<Vec<Asked>>) {
    loop {
        let Some((kind, id, begin)) = read_record(&mut stream) else {
            return;
        };
        assert_eq!((kind, id), (1, 1), "FCGI_BEGIN_REQUEST for request 1");
        assert_eq!(&begin[..2], &[0, 1], "the responder role");
        let mut request = Asked {
            keep_conn: begin[2] & 1 == 1,
            ..Asked::default()
        };
        let mut params = Vec::new();
        loop {
            let (kind, _, content) = read_record(&mut stream).unwrap();
            assert_eq!(kind, 4, "FCGI_PARAMS until its end");
            if content.is_empty() {
                break;
            }
            params.extend(content);
        }
        request.params = pairs(&params);
        loop {
            let (kind, _, content) = read_record(&mut stream).unwrap();
            assert_eq!(kind, 5, "FCGI_STDIN until its end");
            if content.is_empty() {
                break;
            }
            request.stdin.extend(content);
        }
        asked.lock().unwrap().push(request.clone());
        if stream.write_all(&answer(&request)).is_err() || !request.keep_conn {
            return;
        }
    }
}

/// What the script `SCRIPT_NAME` names prints, as records.
fn answer(request: &Asked) -> Vec<u8> {
    let script = request.params["SCRIPT_NAME"].as_str();
    let plain = |body: &str| stdout(format!("Content-Type: text/plain\r\n\r\n{body}").as_bytes());
    let mut out = match script {
        "/missing.php" => stdout(b"Status: 404 Not Found\nContent-Type: text/html\n\nNo such page"),
        "/moved.php" => stdout(b"Location: /elsewhere\r\n\r\n"),
        "/sized.php" => stdout(b"Content-Length: 5\r\nX-Script: sized\r\n\r\nsized"),
        "/cached.php" => {
            let n = &request.params["QUERY_STRING"];
            stdout(format!("Cache-Control: max-age=60\r\n\r\nversion {n}").as_bytes())
        }
        "/big.php" => {
            let mut out = stdout(b"Content-Type: application/octet-stream\r\n\r\n");
            out.extend(stdout(&pattern(1024 * 1024)));
            out
        }
        "/warns.php" => {
            let mut out = record(7, b"PHP Notice: something\n");
            out.extend(plain("warned"));
            out
        }
        "/overloaded.php" => return end_request(2),
        "/garbage.php" => return b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        _ => {
            let mut body = String::new();
            for (name, value) in &request.params {
                body.push_str(&format!("{name}={value}\n"));
            }
            body.push_str(&format!(
                "stdin len={} fnv={:016x}\n",
                request.stdin.len(),
                fnv(&request.stdin)
            ));
            plain(&body)
        }
    };
    out.extend(record(6, b""));
    out.extend(end_request(0));
    out
}

/// A proxy in front of `targets` (written as `targets` is) with
/// `fastcgi_root = /srv/www` and `more` lines of proxy.conf.
fn proxy(targets: &str, more: &str) -> Proxy {
    let text = format!(
        "targets = {targets}\nfastcgi_root = /srv/www\nfastcgi_index = index.php\n\
         fastcgi_split_path_info = ^(.+\\.php)(/.*)$\n{more}"
    );
    start_proxy(&[], from_file(&text))
}

/// The variables the default script printed.
fn printed(response: &Response) -> BTreeMap<String, String> {
    (response.body_str().lines())
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_request_reaches_the_responder_as_cgi_variables_and_its_output_comes_back_as_http() {
    let php = Responder::start();
    let proxy = proxy(
        &format!("{} fastcgi", php.addr),
        "fastcgi_params = APP_ENV=test, SERVER_SOFTWARE=\n",
    );
    let mut client = proxy.connect();
    let response = client.get_with(
        "/shop/cart.php/items/7?sort=price",
        &[("Cookie", "a=1"), ("X_Evil", "1")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/plain"));
    // The script gave no length; the proxy, reading so small an answer
    // whole, gives it one.
    assert_eq!(
        response.header("content-length"),
        Some(&*response.body.len().to_string())
    );
    let vars = printed(&response);
    let port = proxy.addr.port().to_string();
    let want = [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", "/shop/cart.php"),
        ("SCRIPT_FILENAME", "/srv/www/shop/cart.php"),
        ("PATH_INFO", "/items/7"),
        ("QUERY_STRING", "sort=price"),
        ("REQUEST_URI", "/shop/cart.php/items/7?sort=price"),
        ("DOCUMENT_ROOT", "/srv/www"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", &port),
        ("SERVER_NAME", "test.example"),
        ("HTTP_HOST", "test.example"),
        ("HTTP_COOKIE", "a=1"),
        ("REQUEST_SCHEME", "http"),
        ("APP_ENV", "test"),
    ];
    for (name, value) in want {
        assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert!(vars.contains_key("REMOTE_PORT"));
    assert!(
        vars.contains_key("HTTP_X_FORWARDED_FOR"),
        "the proxy's fields go too"
    );
    assert!(
        !vars.keys().any(|k| k.contains("EVIL")),
        "an underscored field is dropped"
    );
    assert!(
        !vars.contains_key("SERVER_SOFTWARE"),
        "taken out by fastcgi_params"
    );
    assert!(!php.last().keep_conn, "not asked to keep the connection");
    // A directory gets the index.
    let response = client.get("/blog/");
    assert_eq!(
        printed(&response)["SCRIPT_FILENAME"],
        "/srv/www/blog/index.php"
    );
}

#[test]
fn by_default_each_request_has_a_connection_of_its_own_which_the_responder_closes() {
    let php = Responder::start();
    let proxy = proxy(&format!("{} fastcgi", php.addr), "");
    let mut client = proxy.connect();
    for path in ["/a.php", "/sized.php", "/missing.php", "/b.php"] {
        let response = client.get(path);
        assert!(matches!(response.status, 200 | 404), "{path}");
        assert_eq!(
            response.header("connection"),
            None,
            "the client's stays open"
        );
    }
    assert_eq!(php.asked().len(), 4);
    assert!(php.asked().iter().all(|a| !a.keep_conn));
    assert_eq!(php.connections.load(Ordering::SeqCst), 4);
}

#[test]
fn connections_to_the_responder_are_kept_and_reused_across_requests_and_clients() {
    let php = Responder::start();
    let proxy = proxy(
        &format!("{} fastcgi", php.addr),
        "fastcgi_keep_conn = true\n",
    );
    for _ in 0..3 {
        let mut client = proxy.connect();
        for path in ["/a.php", "/sized.php", "/missing.php"] {
            let response = client.get(path);
            assert!(matches!(response.status, 200 | 404), "{path}");
        }
        let response = client.head("/sized.php");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-length"), Some("5"));
    }
    assert_eq!(php.asked().len(), 12);
    assert_eq!(
        php.connections.load(Ordering::SeqCst),
        1,
        "one connection carried every request"
    );
}

#[test]
fn status_location_and_content_length_are_read_as_cgi_says() {
    let php = Responder::start();
    let proxy = proxy(&format!("{} fastcgi", php.addr), "");
    let mut client = proxy.connect();
    let missing = client.get("/missing.php");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body_str(), "No such page");
    let moved = client.get("/moved.php");
    assert_eq!(moved.status, 302);
    assert_eq!(moved.header("location"), Some("/elsewhere"));
    let sized = client.get("/sized.php");
    assert_eq!(sized.header("content-length"), Some("5"));
    assert_eq!(sized.header("transfer-encoding"), None);
    assert_eq!(sized.header("x-script"), Some("sized"));
    assert_eq!(sized.body_str(), "sized");
    // A HEAD gets the fields and no body, and the connection goes on.
    let head = client.head("/a.php");
    assert_eq!((head.status, head.body.len()), (200, 0));
    let big = client.get("/big.php");
    assert_eq!(big.body.len(), 1024 * 1024);
    assert_eq!(fnv(&big.body), fnv(&pattern(1024 * 1024)));
    assert_eq!(php.last().params["REQUEST_METHOD"], "GET");
}

#[test]
fn request_bodies_go_as_stdin_with_their_length_and_a_long_chunked_one_is_refused() {
    let php = Responder::start();
    let proxy = proxy(&format!("{} fastcgi", php.addr), "");
    let mut client = proxy.connect();
    let body = pattern(300 * 1024);
    let response = client.request(
        "POST",
        "/upload.php",
        &[("Content-Type", "application/octet-stream")],
        &body,
    );
    let vars = printed(&response);
    assert_eq!(vars["CONTENT_LENGTH"], body.len().to_string());
    assert_eq!(vars["CONTENT_TYPE"], "application/octet-stream");
    let stdin = format!("len={} fnv={:016x}", body.len(), fnv(&body));
    assert!(
        response.body_str().contains(&stdin),
        "{}",
        response.body_str()
    );
    // A chunked body that fits request_buffer_size goes with its length.
    let small = pattern(3000);
    let mut request =
        b"POST /form.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend(chunked(&small, 1000, ""));
    client.send(&request);
    let response = client.response();
    assert_eq!(printed(&response)["CONTENT_LENGTH"], "3000");
    assert_eq!(php.last().stdin, small);
    // One past it, with nowhere to read it whole, has no length to send.
    let proxy = self::proxy(
        &format!("{} fastcgi", php.addr),
        "request_buffer_size = 1KiB\n",
    );
    let asked = php.asked().len();
    let mut client = proxy.connect();
    client.send(&request);
    assert_eq!(client.response().status, 411);
    assert_eq!(php.asked().len(), asked, "nothing reached the responder");
}

#[test]
fn what_the_responder_cannot_serve_is_a_502_and_its_stderr_is_no_answer() {
    let php = Responder::start();
    let proxy = proxy(&format!("{} fastcgi", php.addr), "");
    let mut client = proxy.connect();
    assert_eq!(client.get("/overloaded.php").status, 502);
    let mut client = proxy.connect();
    assert_eq!(client.get("/garbage.php").status, 502);
    let mut client = proxy.connect();
    let warned = client.get("/warns.php");
    assert_eq!((warned.status, warned.body_str().as_str()), (200, "warned"));
    // A responder that is not there: 502, as for any backend.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let proxy = self::proxy(&format!("{addr} fastcgi"), "");
    assert_eq!(proxy.connect().get("/a.php").status, 502);
}

#[test]
fn the_cache_stores_a_scripts_answer_as_any_backends() {
    let php = Responder::start();
    let text = format!("targets = {} fastcgi\nfastcgi_root = /srv/www\n", php.addr);
    let proxy = start_proxy(&[], |c| {
        from_file(&text)(c);
        c.cache_size = 1024 * 1024;
    });
    let first = proxy.get_on("shop.example", "/cached.php?1", &[]);
    let second = proxy.get_on("shop.example", "/cached.php?1", &[]);
    assert_eq!(first.body_str(), "version 1");
    assert_eq!(second.body_str(), "version 1");
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(php.asked().len(), 1);
}

#[test]
fn a_responder_on_a_unix_socket_and_health_checks_that_ask_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("php-fpm.sock");
    let asked = Responder::start_unix(&path);
    let proxy = proxy(
        &format!("unix:{} fastcgi", path.display()),
        "health_check_path = /ping.php\nhealth_check_interval = 100ms\n",
    );
    let response = proxy.connect().get("/info.php");
    assert_eq!(printed(&response)["SCRIPT_FILENAME"], "/srv/www/info.php");
    // The checker's probes are FastCGI requests too.
    assert!(wait_until(WAIT_LIMIT, || {
        (asked.lock().unwrap().iter()).any(|a| a.params["SCRIPT_NAME"] == "/ping.php")
    }));
}

#[test]
fn kept_connections_are_no_more_than_max_conns_however_many_clients_wait() {
    // PHP-FPM gives each kept connection a child: one more connection
    // than it has children waits in its listen queue, unanswered.
    let php = Responder::start();
    let proxy = proxy(
        &format!("{} fastcgi max_conns=2", php.addr),
        "fastcgi_keep_conn = true\nqueue_timeout = 30s\n",
    );
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let addr = proxy.addr;
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                (0..30).all(|i| client.get(&format!("/n.php?{i}")).status == 200)
            })
        })
        .collect();
    for client in clients {
        assert!(client.join().unwrap());
    }
    assert_eq!(php.asked().len(), 180);
    assert!(php.asked().iter().all(|a| a.keep_conn));
    assert_eq!(php.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn a_files_route_serves_files_and_sends_the_rest_to_a_front_controller() {
    let php = Responder::start();
    let public = tempfile::tempdir().unwrap();
    std::fs::write(public.path().join("site.css"), "body {}").unwrap();
    let text = format!(
        "targets = 127.0.0.1:1\n\
         route./ = files {} fallback=php\n\
         pool.php = {} fastcgi\n\
         pool.php.fastcgi_root = /var/www/public\n\
         pool.php.fastcgi_script = /index.php\n",
        public.path().display(),
        php.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    let css = client.get("/site.css");
    assert_eq!((css.status, css.body_str().as_str()), (200, "body {}"));
    assert!(
        php.asked().is_empty(),
        "a file is served from the directory"
    );
    let page = client.get("/blog/hello?page=2");
    let vars = printed(&page);
    assert_eq!(vars["SCRIPT_FILENAME"], "/var/www/public/index.php");
    assert_eq!(vars["SCRIPT_NAME"], "/index.php");
    assert_eq!(vars["REQUEST_URI"], "/blog/hello?page=2");
    assert_eq!(vars["QUERY_STRING"], "page=2");
}
