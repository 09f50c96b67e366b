//! `/targets/<id>`: a target's admin state (`ready`, `drain`, `maint`)
//! and its weight, read or set, and saved to `state_file`.

use super::{host_is_an_address, Reply};
use crate::cache::policy;
use crate::config::{escape_controls, weight_from};
use crate::http::RequestHead;
use crate::json;
use crate::proxy::Shared;
use crate::upstream::admin_state::AdminState;
use crate::upstream::{state_file, Upstream};
use std::fmt::Write as _;
use std::time::Instant;

/// `/targets/<id>`: `GET` says the target's state, `PUT` with `ready`,
/// `drain` or `maint` as the body sets it, or with `weight=N` its weight
/// (refused, 409, by a pool whose balancer does not read weights as it
/// picks). `id` is the target's `name`
/// or `address` as `/status` shows them, percent-encoded if need be
/// (`%5B::1%5D:80`), or a name as written in `targets` that gives several
/// addresses (`app:8000`), which stands for each of its targets: a `PUT`
/// sets them all, as the name is what the operator wrote (and an address
/// the name comes to give later starts in the state they share, see
/// `Upstreams::keep_state_of`).
///
/// With `state_file`, a `PUT` writes every target's state and weight
/// there before it is answered, and says whether that worked (`"saved"`).
pub(super) fn target_state(head: &RequestHead, id: &str, body: &[u8], shared: &Shared) -> Reply {
    let method = head.method.as_str();
    let set = match method {
        "GET" | "HEAD" => false,
        "PUT" => true,
        _ => return Reply::not_allowed("GET, HEAD, PUT"),
    };
    // It changes where requests go: under the same guard against DNS
    // rebinding as `DELETE /cache`.
    if set && !host_is_an_address(head) {
        return Reply::text(
            403,
            "PUT /targets/... takes a Host that is an IP address or localhost\n",
        );
    }
    let id = String::from_utf8_lossy(&policy::decode_percent(id.as_bytes())).into_owned();
    let (targets, several) = match shared.pools.find(&id) {
        Some(target) => (vec![target], false),
        None => (shared.pools.written_as(&id), true),
    };
    if targets.is_empty() {
        return Reply::text(404, format!("no target is named {id:?}\n"));
    }
    let change = match std::str::from_utf8(body).map(Change::parse) {
        _ if !set => None,
        Ok(Ok(change)) => Some(change),
        // A client's bytes, going to whoever reads the answer.
        Ok(Err(e)) => return Reply::text(400, format!("{}\n", escape_controls(&e))),
        Err(_) => return Reply::text(400, format!("{BODIES}\n")),
    };
    if let Some(Change::Weight(_)) = change {
        let unweighed = (targets.iter())
            .map(|target| shared.pools.pool_of(target))
            .find(|pool| !pool.balance().weighs_as_it_picks());
        if let Some(pool) = unweighed {
            return Reply::text(
                409,
                format!(
                    "pool {} balances by {}, which does not read a weight as it picks: \
                     change weight= in the configuration and reload\n",
                    pool.name(),
                    pool.balance().name()
                ),
            );
        }
    }
    let each: Vec<String> = (targets.iter())
        .map(|target| {
            let was = change.map(|change| change.apply(target, shared));
            target_json(target, was)
        })
        .collect();
    // Every PUT writes the file, a change or not: one that could not be
    // saved is saved by sending it again.
    let saved = match (change, &shared.config.state_file) {
        (Some(_), Some(path)) => Some(state_file::save_or_warn(path, &shared.pools, "admin")),
        _ => None,
    };
    let mut out = match several {
        false => each.concat(),
        true => {
            let mut out = String::from("{");
            json::push_key(&mut out, "name");
            json::push_str(&mut out, &id);
            out.push_str(",\"targets\":[");
            out.push_str(&each.join(","));
            out.push_str("]}");
            out
        }
    };
    if let Some(saved) = saved {
        out.pop(); // the closing brace
        push_saved(&mut out, &saved);
        out.push('}');
    }
    out.push('\n');
    Reply::json(200, out)
}

/// What a `PUT` body may say.
const BODIES: &str = "the body must be ready, drain, maint or weight=N (1 to 10000)";

/// What a `PUT` sets: the state, or the weight (HAProxy's `set server
/// be/srv weight`), which holds until the configuration gives the target
/// another (see `Upstreams::keep_state_of`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    State(AdminState),
    Weight(u32),
}

/// What a target had before a change: the answer's `previous`.
enum Was {
    State(AdminState),
    Weight(u32),
}

impl Change {
    /// `ready`, `drain`, `maint` or `weight=N`, in any case, with blanks
    /// around (as `curl -d` or `echo` sends it).
    fn parse(body: &str) -> Result<Change, String> {
        let body = body.trim();
        let refused = || format!("{BODIES}, not `{body}` (for no new requests at all: drain)");
        let Some((name, value)) = body.split_once('=') else {
            return body.parse().map(Change::State).map_err(|_| refused());
        };
        let weight = (name.trim().eq_ignore_ascii_case("weight"))
            .then(|| weight_from(value.trim()))
            .flatten();
        weight.map(Change::Weight).ok_or_else(refused)
    }

    fn apply(self, target: &Upstream, shared: &Shared) -> Was {
        match self {
            Change::State(state) => {
                let was = shared.pools.set_admin_state(target, state);
                if was != state {
                    log::info!(
                        "admin: target {} {was} -> {state} ({} request(s) in flight)",
                        target.name,
                        target.in_flight()
                    );
                }
                Was::State(was)
            }
            Change::Weight(weight) => {
                let was = target.weight_now();
                target.health.admin().set_weight(Some(weight));
                if was != weight {
                    log::info!("admin: target {} weight {was} -> {weight}", target.name);
                }
                Was::Weight(was)
            }
        }
    }
}

/// `"saved":true`, or `"saved":false,"save_error":"..."`: whether the
/// states were written to `state_file`. The state is in force either way
/// (200): it is the next start that would not find it.
fn push_saved(out: &mut String, saved: &Result<(), String>) {
    let _ = write!(out, ",\"saved\":{}", saved.is_ok());
    if let Err(e) = saved {
        out.push(',');
        json::push_key(out, "save_error");
        json::push_str(out, e);
    }
}

/// A target's `"name":...,"address":...`, the two ids `/targets/<id>` takes.
pub(super) fn push_name_and_address(out: &mut String, target: &Upstream) {
    json::push_key(out, "name");
    json::push_str(out, &target.name);
    out.push(',');
    json::push_key(out, "address");
    json::push_str(out, &target.addr.to_string());
}

/// A target's state as `/targets/<id>` answers it: what an operator
/// draining it waits on is `in_flight` coming down to 0. A name that
/// stands for several targets is answered `{"name":...,"targets":[...]}`,
/// each of them so.
fn target_json(target: &Upstream, was: Option<Was>) -> String {
    let mut out = String::from("{");
    push_name_and_address(&mut out, target);
    let _ = write!(
        out,
        ",\"admin_state\":\"{}\",\"weight\":{},\"healthy\":{},\"in_flight\":{}",
        target.health.admin_state(),
        target.weight_now(),
        target.health.usable(Instant::now()),
        target.in_flight(),
    );
    match was {
        Some(Was::State(was)) => _ = write!(out, ",\"previous\":\"{was}\""),
        Some(Was::Weight(was)) => _ = write!(out, ",\"previous_weight\":{was}"),
        None => {}
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_a_state_or_a_weight_in_range() {
        assert_eq!(
            Change::parse(" Drain\r\n"),
            Ok(Change::State(AdminState::Drain))
        );
        assert_eq!(Change::parse("weight=3\n"), Ok(Change::Weight(3)));
        assert_eq!(Change::parse("WEIGHT = 10000"), Ok(Change::Weight(10_000)));
        assert_eq!(Change::parse("weight=1"), Ok(Change::Weight(1)));
        for bad in [
            "weight=0",
            "weight=10001",
            "weight=+3",
            "weight=3.5",
            "weight",
            "w=3",
            "up",
        ] {
            let e = Change::parse(bad).unwrap_err();
            assert!(e.contains("weight=N"), "{bad}: {e}");
        }
    }
}
