//! `GET /error_limit`: the clients `error_limit` refuses now, as HAProxy's
//! `show table`; `DELETE /error_limit/<address>`: one let in again, its
//! errors forgotten, as `clear table ... key <address>`.

use super::{host_is_an_address, Reply};
use crate::http::RequestHead;
use crate::proxy::Shared;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Instant;

/// The most clients listed: a scan from many addresses would make the
/// page as large as the table (100,000).
const MOST_LISTED: usize = 1000;

/// `{"rate":"30/m","refused":[{"address":"192.0.2.7","admitted_in_s":95}],
/// "truncated":false}`, the longest waits first; `"rate":null` and none
/// without `error_limit`.
pub fn refused_clients(shared: &Shared) -> Reply {
    let Some(errors) = &shared.limiters.errors else {
        return Reply::json(
            200,
            "{\"rate\":null,\"refused\":[],\"truncated\":false}\n".into(),
        );
    };
    let (refused, truncated) = errors.refused_at(Instant::now(), MOST_LISTED);
    let mut out = format!("{{\"rate\":\"{}\",\"refused\":[", errors.rate());
    for (i, (address, wait)) in refused.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Whole seconds, rounded up, as `Retry-After` says them.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let _ = write!(
            out,
            "{{\"address\":\"{address}\",\"admitted_in_s\":{seconds}}}"
        );
    }
    let _ = writeln!(out, "],\"truncated\":{truncated}}}");
    Reply::json(200, out)
}

/// `DELETE /error_limit/<address>`: taken under a `Host` that is an
/// address alone (a page rebound to 127.0.0.1 would let its scanner in).
pub fn forgive(head: &RequestHead, address: &str, shared: &Shared) -> Reply {
    if head.method != "DELETE" {
        return Reply::not_allowed("DELETE");
    }
    if !host_is_an_address(head) {
        return Reply::text(
            403,
            "DELETE /error_limit/<address> takes a Host that is an IP address or localhost\n",
        );
    }
    let Ok(client) = address.parse::<IpAddr>() else {
        return Reply::text(400, "not an IP address: DELETE /error_limit/192.0.2.7\n");
    };
    let Some(errors) = &shared.limiters.errors else {
        return Reply::text(404, "error_limit is off\n");
    };
    let forgiven = errors.forgive(client);
    if forgiven {
        log::info!("admin: {client} let in again, its errors forgotten (error_limit)");
    }
    let status = if forgiven { 200 } else { 404 };
    Reply::json(
        status,
        format!("{{\"address\":\"{client}\",\"forgiven\":{forgiven}}}\n"),
    )
}
