//! Tiny origin servers for `inverso demo`, so the proxy can be tried
//! with nothing else installed.
//!
//! Each answers on loopback, names itself in every response body and in an
//! `X-Origin` header, and serves a few paths that show off the proxy:
//! `/` (not cacheable), `/cached` (cacheable for 30 s), `/edge` (kept by
//! the proxy's cache for 30 s, `Surrogate-Control`, while browsers are told
//! `no-store`), `/page` (an HTML page of a few KiB, cacheable, which the
//! demo's proxy compresses for clients that take gzip), `/slow` (answers
//! after a second), `/echo` (returns the request it saw, forwarding
//! headers included).

use crate::http::head::{find_head_end, parse_request, RequestLimits};
use crate::http::{BodyKind, BodyReader, BufConn};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running demo origin.
pub struct Origin {
    pub name: String,
    pub addr: SocketAddr,
}

/// Starts an origin called `name` on an ephemeral loopback port. It runs
/// for the life of the process.
pub fn start_origin(name: &str) -> io::Result<Origin> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let served = Arc::new(AtomicU64::new(0));
    let origin_name = name.to_string();
    std::thread::Builder::new()
        .name(format!("demo-{name}"))
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let name = origin_name.clone();
                let served = served.clone();
                let _ = std::thread::Builder::new().spawn(move || serve(stream, &name, &served));
            }
        })?;
    Ok(Origin {
        name: name.to_string(),
        addr,
    })
}

fn serve(stream: TcpStream, name: &str, served: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut conn = BufConn::new(stream, 8192);
    loop {
        let mut scanned = 0;
        let len = loop {
            match find_head_end(conn.buffered(), &mut scanned) {
                Ok(Some(len)) => break len,
                Ok(None) if conn.buffered().len() < 65536 => {}
                _ => return,
            }
            match conn.fill() {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        };
        let Ok(head) = parse_request(&conn.buffered()[..len], &RequestLimits::default()) else {
            return;
        };
        conn.consume(len);
        let Ok(kind) = BodyKind::for_request(&head) else {
            return;
        };
        if BodyReader::new(kind).skip_rest(&mut conn).is_err() {
            return;
        }
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        let path = head.path_and_query().into_owned();
        let mut edge = "";
        let mut content_type = "text/plain";
        let (status, cache_control, body) = match path.split('?').next().unwrap_or("/") {
            "/" => (
                200,
                "no-store",
                format!("Hello from {name} (request #{n} it served)\n"),
            ),
            "/cached" => (
                200,
                "public, max-age=30",
                format!("Cacheable answer from {name}, made at request #{n}\n"),
            ),
            "/edge" => {
                edge = "Surrogate-Control: max-age=30\r\n";
                (
                    200,
                    "no-store",
                    format!("Kept by the proxy, not by browsers: from {name}, request #{n}\n"),
                )
            }
            "/page" => {
                content_type = "text/html; charset=utf-8";
                (200, "public, max-age=30", page(name, n))
            }
            "/slow" => {
                std::thread::sleep(Duration::from_secs(1));
                (200, "no-store", format!("Slow answer from {name}\n"))
            }
            "/echo" => {
                let mut text = format!("{name} saw: {} {} {}\n", head.method, path, head.version);
                for (k, v) in head.headers.iter() {
                    text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v)));
                }
                (200, "no-store", text)
            }
            _ => (404, "no-store", format!("{name}: no such page\n")),
        };
        let reason = if status == 200 { "OK" } else { "Not Found" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nCache-Control: {cache_control}\r\n{edge}X-Origin: {name}\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            if head.is_head() { "" } else { &body }
        );
        if conn.get_mut().write_all(response.as_bytes()).is_err() || !head.wants_keep_alive() {
            return;
        }
    }
}

/// A page of some size, as a web application would render it.
fn page(name: &str, n: u64) -> String {
    let mut html = format!(
        "<!doctype html>\n<html><head><title>inverso demo</title></head><body>\n\
         <h1>A page from {name}, made at request #{n}</h1>\n"
    );
    for i in 1..=40 {
        html.push_str(&format!(
            "<p>Paragraph {i}: text compresses well, so the proxy sends this page \
             gzipped to a client that asks for it, and from its cache once stored.</p>\n"
        ));
    }
    html.push_str("</body></html>\n");
    html
}

/// The demo's own directory, removed when dropped: the `www` its `files`
/// route serves, and beside it (out of the route's reach) its certificate.
pub struct Site(PathBuf);

impl Site {
    /// Removes the directory when called: for an exit that drops nothing.
    pub fn remover(&self) -> impl Fn() + Send + 'static {
        let dir = self.0.clone();
        move || {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// What the `files` route serves.
    pub fn path(&self) -> PathBuf {
        self.0.join("www")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a small site for the demo's `files` route into a directory of
/// its own under the system's temporary directory: made anew, the
/// process's alone (one another user made there first, with files of his
/// own or a link elsewhere, is not taken).
pub fn write_site() -> io::Result<Site> {
    use std::os::unix::fs::DirBuilderExt;
    let made = |attempt: u32| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("inverso-demo-{}-{nanos}-{attempt}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map(|()| dir)
    };
    let dir = (0..8)
        .map(made)
        .find(|tried| !matches!(tried, Err(e) if e.kind() == io::ErrorKind::AlreadyExists))
        .unwrap_or_else(|| made(8))?;
    let site = Site(dir);
    std::fs::create_dir(site.path())?;
    std::fs::write(
        site.path().join("index.html"),
        "<!doctype html>\n<title>inverso demo</title>\n<link rel=stylesheet href=style.css>\n\
         <h1>Served from a directory</h1>\n\
         <p>This page and its style sheet come from the disk, not from an origin.</p>\n",
    )?;
    std::fs::write(site.path().join("style.css"), "h1 { color: #264d73; }\n")?;
    Ok(site)
}

/// Writes a certificate for `localhost` and `127.0.0.1`, made now and
/// signed by its own key, with the key in the same file (readable by its
/// owner alone), into the demo's directory, out of its `files` route's
/// reach: what its HTTPS port serves (clients are told to trust it with
/// `curl -k`). Returns the file.
pub fn write_certificate(site: &Site) -> io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let made = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    let path = site.0.join("demo-certificate.pem");
    let pem = made.cert.pem() + &made.signing_key.serialize_pem();
    // One left by a demo of the same process ID that was killed.
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(pem.as_bytes())?;
    Ok(path)
}
