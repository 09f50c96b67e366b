//! FastCGI backends (a target written with `fastcgi`): PHP-FPM and the
//! like, spoken to as nginx's `fastcgi_pass` and HAProxy's `fcgi-app`
//! do.
//!
//! The rest of the proxy speaks HTTP to them as to any backend: their
//! connection ([`crate::http::fastcgi::FcgiStream`]) turns the request
//! written on it into records as it goes, and the records read from it
//! back into an HTTP response. Pooling, retries, timeouts, the cache and
//! health checks are then theirs as they are every target's.
//!
//! - `record`: the records and the name-value pairs of `FCGI_PARAMS`.
//! - `params`: the CGI variables a request is sent as.
//! - `request`: a request's bytes into records.
//! - `reply`: records into a response's bytes.

pub mod params;
pub mod record;
pub mod reply;
pub mod request;

use std::net::SocketAddr;

/// How a pool's FastCGI targets are asked: where the scripts are, and
/// what more they are told.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// `fastcgi_root`: `DOCUMENT_ROOT`, and what `SCRIPT_FILENAME` is the
    /// script's path under. No `/` at its end.
    pub root: String,
    /// `fastcgi_index`: the script a path ending in `/` names.
    pub index: Option<String>,
    /// `fastcgi_script`: the one script every request runs (a front
    /// controller, `/index.php`), whatever its path.
    pub script: Option<String>,
    /// `fastcgi_split_path_info`: its first group is `SCRIPT_NAME`, its
    /// second `PATH_INFO`.
    pub split_path_info: Option<regex::Regex>,
    /// `fastcgi_params`, in the order written; an empty value
    /// takes the variable of that name out.
    pub params: Vec<(String, String)>,
    /// `fastcgi_keep_conn`: the server is asked to keep each connection
    /// open for the next request (`FCGI_KEEP_CONN`); else it closes it
    /// after the answer, and each request has a connection of its own.
    pub keep_conn: bool,
}

impl PartialEq for App {
    fn eq(&self, other: &App) -> bool {
        let pattern = |a: &App| a.split_path_info.as_ref().map(|r| r.as_str().to_owned());
        self.root == other.root
            && self.index == other.index
            && self.script == other.script
            && pattern(self) == pattern(other)
            && self.params == other.params
            && self.keep_conn == other.keep_conn
    }
}

/// What a request's connection to the client says of it: whom
/// `REMOTE_ADDR` and `SERVER_ADDR` name, and whether it came over TLS
/// (`HTTPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub https: bool,
}
