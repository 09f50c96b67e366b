//! The access log: one line per request, written by one thread so request
//! threads never wait on stdout. Records travel over a bounded channel;
//! when it is full, senders wait (a line is never dropped), which only
//! happens if stdout itself cannot keep up.
//!
//! Control messages travel on the same channel, so they take effect in
//! order with the records: a reopen (SIGUSR1, for logrotate) writes every
//! record queued before it to the old file, then opens the path afresh.
//!
//! With `log_syslog`, each line also goes to syslog, one datagram each
//! (see `syslog`), from the same thread; and a request routed to a pool
//! with a file of its own (`pool.<name>.path_to_log`) has its line
//! written there too, reopened with the main file: the same line, or
//! one in the pool's own format (`pool.<name>.log_format`).
//!
//! # Layout
//! - `record`: what is logged about one request ([`Record`]), and its
//!   combined and JSON lines, their fields escaped.
//! - `template`: a `log_format` template and the lines it writes.
//! - `captures`: what a record carries for the formats in use
//!   ([`Captures`]), the main one's and the pools' own.
//! - `channel`: the writer thread's handles: [`AccessLog`] starts and
//!   finishes it, [`LogSender`] queues records and reopens.
//! - `writer`: the writer thread's loop, and its outputs taking each
//!   message in turn.
//! - `pool_files`: each pool's own file (`pool.<name>.path_to_log`), a
//!   copy of the lines of the requests routed to it, in its own format
//!   if it has one.
//! - `sink`: one output, buffered: the log file opened, and writes that
//!   fail counted and said.
//! - `syslog`: each line also as a syslog datagram.
//! - `termination`: why and where an exchange ended (`$termination`).

mod captures;
mod channel;
mod pool_files;
mod record;
mod sink;
mod syslog;
mod template;
mod termination;
mod writer;

pub use captures::Captures;
pub use channel::{AccessLog, LogSender, Outputs};
pub use pool_files::PoolFile;
pub use record::{Heads, Record};
pub use sink::open_log_file;
pub use syslog::{fit_to_datagram, parse_tag, Facility, Syslog, SyslogTarget, MAX_DATAGRAM};
pub use template::{RequestFields, Template};
pub use termination::{By, Stage, Termination};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream_tries::UpstreamTry;
    use std::time::{Duration, UNIX_EPOCH};

    pub(super) fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(784_111_777),
            client: "127.0.0.1".parse().unwrap(),
            peer: Some(([127, 0, 0, 1], 40_000).into()),
            proxied_to: None,
            proxy_tlvs: None,
            server: Some(([127, 0, 0, 1], 8080).into()),
            remote_user: None,
            jwt_claims: None,
            request_line: "GET /a\"b HTTP/1.1".into(),
            made_target: None,
            status: 200,
            bytes: 512,
            referer: None,
            user_agent: Some("curl/8\n".into()),
            cache: Some("MISS"),
            duration: Duration::from_micros(1500),
            connection: Some((7, 2)),
            head_bytes: 180,
            request_length: Some(96),
            upstream_queue: Some(Duration::ZERO),
            last_try: UpstreamTry {
                upstream: Some("127.0.0.1:9001".into()),
                status: Some(200),
                connect: Some(Duration::from_micros(310)),
                wait: Some(Duration::from_micros(1250)),
                response: Some(Duration::from_micros(2_100)),
                bytes_received: Some(1_290),
                response_length: Some(1_024),
                bytes_sent: Some(410),
            },
            earlier_tries: Vec::new(),
            route_host: None,
            gzip_sizes: Some((5_120, 1_536)),
            request_body: None,
            tcp_info: None,
            connection_time: None,
            pipelined: false,
            termination: Default::default(),
            limit_req: None,
            pool: Some("api".into()),
            show_pool: false,
            request_id: None,
            trace: None,
            heads: None,
            fields: None,
            response_head: None,
            upstream_fields: None,
            scheme: "http",
            tls: None,
            server_name: None,
            offered_protocols: None,
            country: None,
            client_certificate: None,
        }
    }
}
