//! A route's condition (`route./api/ if cookie canary 1 = canary`): what
//! a request must carry besides its host and path for the route to take
//! it, HAProxy's `use_backend ... if { req.cook(canary) -m str 1 }` and
//! nginx's `map $cookie_canary $pool`; or what its path begins with,
//! ends in, holds or matches (`if path_end .jpg,.png`), HAProxy's
//! `path_beg`, `path_end`, `path_sub` and `path_reg`, nginx's
//! `location ~`; or whether it came over HTTPS (`if https`), HAProxy's
//! `ssl_fc`, nginx's `$scheme`; or in which country its client is (`if
//! country DE,AT`, with `geoip_database`), nginx's `geoip2` and `map`.
//! Each may be negated (`if not
//! client 10.0.0.0/8`): HAProxy's `!` before an ACL, nginx's `if
//! ($cookie_beta = "")`.

use crate::geoip::{Country, Geo};
use crate::http::Headers;
use crate::realip::Cidr;
use crate::rewrite::Pattern;
use crate::upstream::balancer::stable_hash;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Longest value a condition compares with.
const MAX_VALUE_LEN: usize = 256;

/// Most conditions one route joins with `and` (`not x` is one).
const MAX_PARTS: usize = 8;

/// Most texts one `path_beg`, `path_end` or `path_sub` lists.
const MAX_TEXTS: usize = 32;

/// Most countries one `country` lists: the world's 249 codes.
const MAX_COUNTRIES: usize = 256;

/// What of a request a condition reads.
pub struct Asked<'a> {
    pub method: &'a str,
    /// Its path and query, as sent.
    pub target: &'a str,
    pub headers: &'a Headers,
    /// The client's address as the access lists see it (after
    /// `proxy_protocol` and `real_ip_from`).
    pub client: IpAddr,
    /// The listener the connection came to (`port`, `tls_port` or one of
    /// `listen`), as bound: never what a PROXY header says.
    pub listener: SocketAddr,
    /// Whether it is `https` as `X-Forwarded-Proto` tells the backend and
    /// `redirect_to_https` reads it (see [`crate::realip::client_scheme`]).
    pub https: bool,
    /// `geoip_database`, for a `country` condition: looked up only by one
    /// that reads it, a walk of at most 128 steps.
    pub geoip: Geo<'a>,
}

impl Asked<'_> {
    /// The client's country, when the database knows it.
    pub fn country(&self) -> Option<Country> {
        self.geoip.country(self.client)
    }
}

/// Whom a route is looked up for, as its condition sees it.
#[derive(Clone, Copy)]
pub enum Lookup<'a> {
    /// Only a host and a path: no condition is met, a negated one
    /// neither (there is no request to lack the cookie), so only a route
    /// without one is taken; but for a condition on the path alone
    /// (`path_beg`, `path_end`, `path_sub`, `path_reg`), met as the path
    /// meets it.
    Bare,
    /// A request: a condition is met as the request meets it.
    Request(&'a Asked<'a>),
    /// What the cache stored for a `GET` of the URL (a snapshot's), under
    /// a key for `https` or not: met by a condition on the method alone
    /// that takes `GET` (`method GET,HEAD`, `not method POST`) and by
    /// one on the scheme as the key's scheme meets it (`https`, `not
    /// https`), by no other, negated or not: a route that reads past the
    /// cache's key sends its requests around the cache, so nothing
    /// stored came through it. A condition on the path alone is met as
    /// the URL's path meets it.
    StoredGet { https: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// A field of that name (lower case), with that value (lower case,
    /// compared without case, as most field values are tokens:
    /// `websocket`) as the whole value of one field, or any.
    Header {
        name: Box<str>,
        value: Option<Box<str>>,
    },
    /// A field of that name (lower case) with a value (each field's
    /// whole value, trimmed) that this pattern matches somewhere:
    /// HAProxy's `hdr_reg`, nginx's `if ($http_user_agent ~* bot)`.
    HeaderReg { name: Box<str>, pattern: Pattern },
    /// A cookie of that name, with that value (compared as sent) or any.
    Cookie {
        name: Box<str>,
        value: Option<Box<str>>,
    },
    /// A query parameter of that name, with that value (both compared as
    /// sent) or any.
    Query {
        name: Box<str>,
        value: Option<Box<str>>,
    },
    /// One of these methods, sorted, each once.
    Method(Box<[Box<str>]>),
    /// A path (as routes read it: decoded, without its query) that
    /// begins with, ends in or holds one of these texts, sorted, each
    /// once: HAProxy's `path_beg`, `path_end -i` and `path_sub`. An
    /// ending is compared without case (`.jpg` takes `/a.JPG`); a
    /// beginning or a piece as written, as paths are, unless `-i` says
    /// any case (the flag). Texts compared without case are kept in
    /// lower case.
    PathText(PathMatch, bool, Box<[Box<str>]>),
    /// A path (as routes read it) this pattern matches somewhere, as
    /// written (`(?i)` for any case): HAProxy's `path_reg`, nginx's
    /// `location ~`.
    PathReg(Pattern),
    /// A client address in one of these blocks.
    Client(Box<[Cidr]>),
    /// A client in one of these countries, sorted, each once, as
    /// `geoip_database` names it (nginx's `geoip2` and `map`, HAProxy's
    /// `src,map_ip(country.map)`); one it names none for is in none.
    Country(Box<[Country]>),
    /// A connection to one of these listeners: HAProxy's frontends, each
    /// with its own `bind` lines and rules; nginx's `server` blocks, each
    /// with its own `listen`.
    Listener(Box<[ListenerAt]>),
    /// The clients whose address hashes into the first this many
    /// hundredths (nginx's `split_clients`): a client stays in its share.
    Share(u8),
    /// A request that is `https` (see [`Asked::https`]): HAProxy's
    /// `ssl_fc`, nginx's `$scheme = https`.
    Https,
    /// The requests that do not meet this one (`if not cookie beta`),
    /// itself neither a negation nor a conjunction.
    Not(Box<Condition>),
    /// Each of these (`if cookie canary 1 and not method POST`); none is
    /// itself a conjunction.
    All(Box<[Condition]>),
}

/// A listener a `listen` condition names: a port on whichever address,
/// or one address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListenerAt {
    Port(u16),
    Addr(SocketAddr),
}

impl ListenerAt {
    fn parse(at: &str) -> Result<ListenerAt, String> {
        if let Ok(port) = at.parse::<u16>() {
            return Ok(ListenerAt::Port(port));
        }
        match at.parse::<SocketAddr>() {
            Ok(addr) => Ok(ListenerAt::Addr(crate::proxy::canonical(addr))),
            Err(_) => Err(format!(
                "`listen {}`: a listener is a PORT (on any address), ADDR:PORT or [IPv6]:PORT, \
                 comma separated (`listen 8081`, `listen 10.0.0.5:80`)",
                at.escape_debug()
            )),
        }
    }

    fn takes(self, listener: SocketAddr) -> bool {
        match self {
            ListenerAt::Port(port) => listener.port() == port,
            ListenerAt::Addr(addr) => crate::proxy::canonical(listener) == addr,
        }
    }
}

impl fmt::Display for ListenerAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenerAt::Port(port) => write!(f, "{port}"),
            ListenerAt::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

/// Where a `path_beg`, `path_end` or `path_sub` text is looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Begins,
    Ends,
    Holds,
}

impl PathMatch {
    fn keyword(self) -> &'static str {
        match self {
            PathMatch::Begins => "path_beg",
            PathMatch::Ends => "path_end",
            PathMatch::Holds => "path_sub",
        }
    }

    fn example(self) -> &'static str {
        match self {
            PathMatch::Begins => "/api,/v2/api",
            PathMatch::Ends => ".jpg,.png",
            PathMatch::Holds => "/wp-,/.git",
        }
    }

    /// Whether `path` begins with, ends in or holds `text`, in any case
    /// when `any_case` says so (an ending always), as
    /// [`Condition::PathText`] compares.
    fn found(self, path: &str, text: &str, any_case: bool) -> bool {
        let (path, text) = (path.as_bytes(), text.as_bytes());
        let same = |piece: &[u8]| match any_case {
            true => piece.eq_ignore_ascii_case(text),
            false => piece == text,
        };
        match self {
            PathMatch::Begins => path.get(..text.len()).is_some_and(same),
            PathMatch::Ends => path.len() >= text.len() && same(&path[path.len() - text.len()..]),
            PathMatch::Holds => text.is_empty() || path.windows(text.len()).any(same),
        }
    }
}

impl Condition {
    /// Reads what follows `if ` in a route's key: `header <Name>
    /// [<value>]`, `header_reg <Name> <pattern>`, `cookie <name>
    /// [<value>]`, `query <name> [<value>]`, `method <M>[,<M>...]`,
    /// `client <block>[,<block>...]`, `share <N>%`, `https`, `path_beg`,
    /// `path_end` or `path_sub <text>[,<text>...]`, or `path_reg
    /// <pattern>`, each may be
    /// negated by a `not` before it, or several joined by `and`.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let parts: Vec<&[&str]> = words.split(|w| *w == "and").collect();
        if parts.len() > 1 {
            if parts.len() > MAX_PARTS {
                return Err(format!(
                    "`if {text}`: at most {MAX_PARTS} conditions joined by `and`"
                ));
            }
            if parts.iter().any(|part| part.is_empty()) {
                return Err(format!("`if {text}`: `and` needs a condition on each side"));
            }
            let each = parts
                .iter()
                .map(|part| Condition::parse_one(&part.join(" ")));
            let mut each: Vec<Condition> = each.collect::<Result<_, _>>()?;
            // In one order whatever order they were written in (all must
            // hold either way), so that the same conditions written
            // another way are seen as the same route's.
            each.sort_by_cached_key(Condition::to_string);
            return Ok(Condition::All(each.into()));
        }
        Condition::parse_one(text)
    }

    /// One condition, not joined by `and`, negated or not.
    fn parse_one(text: &str) -> Result<Condition, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["not"] => Err(format!(
                "`if {}`: `not` needs the condition it negates after it (`not cookie beta`)",
                text.escape_debug()
            )),
            ["not", "not", ..] => Err(format!(
                "`if {}`: `not` is written once, before one condition (`not not x` is `x`)",
                text.escape_debug()
            )),
            ["not", rest @ ..] => Ok(Condition::Not(Box::new(Condition::parse_positive(
                rest, text,
            )?))),
            _ => Condition::parse_positive(&words, text),
        }
    }

    /// One condition without `not`, of `words`; `text` is as written.
    fn parse_positive(words: &[&str], text: &str) -> Result<Condition, String> {
        let usage = "a condition is `if header <Name> [<value>]`, \
                     `if header_reg <Name> <pattern>`, `if cookie <name> [<value>]`, \
                     `if query <name> [<value>]`, `if method <METHOD>[,<METHOD>...]`, \
                     `if client <address or block>[,...]`, `if country <CC>[,...]`, \
                     `if share <N>%`, \
                     `if listen [<address>:]<port>[,...]`, `if https`, \
                     `if path_beg [-i] <beginning>[,...]`, `if path_end <ending>[,...]`, \
                     `if path_sub [-i] <text>[,...]` or `if path_reg <pattern>`, or one of \
                     these negated (`if not cookie beta`)";
        let value = |word: Option<&&str>| -> Result<Option<Box<str>>, String> {
            match word {
                Some(v) if v.len() > MAX_VALUE_LEN || !v.bytes().all(|b| b.is_ascii_graphic()) => {
                    Err(format!(
                        "`{}`: a value is at most {MAX_VALUE_LEN} printable ASCII characters, \
                         without spaces",
                        v.escape_debug()
                    ))
                }
                Some(v) => Ok(Some((*v).into())),
                None => Ok(None),
            }
        };
        let token = |name: &str| !name.is_empty() && name.bytes().all(is_tchar);
        match words {
            ["header", name] | ["header", name, _] if token(name) => Ok(Condition::Header {
                name: name.to_ascii_lowercase().into(),
                value: value(words.get(2))?.map(|v| v.to_ascii_lowercase().into()),
            }),
            ["header_reg", name, pattern] if token(name) => {
                value(Some(pattern))?;
                Ok(Condition::HeaderReg {
                    name: name.to_ascii_lowercase().into(),
                    pattern: Pattern::compile(pattern)?,
                })
            }
            ["cookie", name] | ["cookie", name, _] if token(name) => Ok(Condition::Cookie {
                name: (*name).into(),
                value: value(words.get(2))?,
            }),
            ["query", name] | ["query", name, _] if !name.contains(['&', '#']) => {
                Ok(Condition::Query {
                    name: value(Some(name))?.unwrap_or_default(),
                    value: value(words.get(2))?,
                })
            }
            ["method", list] => {
                let mut methods: Vec<Box<str>> = list.split(',').map(Box::from).collect();
                methods.sort();
                methods.dedup();
                let upper = |m: &str| token(m) && m.bytes().all(|b| !b.is_ascii_lowercase());
                if !methods.iter().all(|m| upper(m)) {
                    return Err(format!(
                        "`{list}`: methods are written in capitals, comma separated \
                         (`GET,HEAD`)"
                    ));
                }
                // A HEAD is answered from what a GET stored: the two go
                // to one pool, or a pool's answers would be another's.
                let has = |m: &str| methods.iter().any(|x| **x == *m);
                if has("GET") != has("HEAD") {
                    return Err(format!(
                        "`{list}`: GET and HEAD go together (a HEAD is answered from what a GET \
                         stored)"
                    ));
                }
                Ok(Condition::Method(methods.into()))
            }
            ["https"] => Ok(Condition::Https),
            ["status", ..] => Err(format!(
                "`if {}`: a request is routed, or refused, before there is a status to \
                 read: only a response_header key's condition may name one",
                text.escape_debug()
            )),
            ["share", percent] => {
                let share = (percent.strip_suffix('%'))
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=99).contains(n));
                match share {
                    Some(n) => Ok(Condition::Share(n)),
                    None => Err(format!(
                        "`share {percent}`: a share of the clients is 1% to 99% (`share 10%`)"
                    )),
                }
            }
            ["client", list] => {
                let blocks = (list.split(','))
                    .map(Cidr::parse)
                    .collect::<Result<Vec<Cidr>, String>>()?;
                Ok(Condition::Client(blocks.into()))
            }
            ["country", list] => {
                let mut countries = (list.split(','))
                    .map(|cc| Country::parse(cc).ok_or(cc))
                    .collect::<Result<Vec<Country>, &str>>()
                    .map_err(|cc| {
                        format!(
                            "`country {}`: `{}` is not a country's code: two capital letters \
                             (ISO 3166-1, as `DE`, `US`), comma separated",
                            list.escape_debug(),
                            cc.escape_debug()
                        )
                    })?;
                countries.sort();
                countries.dedup();
                if countries.len() > MAX_COUNTRIES {
                    return Err(format!("`country {list}`: up to {MAX_COUNTRIES} countries"));
                }
                Ok(Condition::Country(countries.into()))
            }
            ["listen", list] => {
                let mut listeners = (list.split(','))
                    .map(ListenerAt::parse)
                    .collect::<Result<Vec<_>, String>>()?;
                listeners.sort();
                listeners.dedup();
                if listeners.len() > MAX_TEXTS {
                    return Err(format!("`listen {list}`: up to {MAX_TEXTS} listeners"));
                }
                Ok(Condition::Listener(listeners.into()))
            }
            [keyword @ ("path_beg" | "path_end" | "path_sub"), list]
            | [keyword @ ("path_beg" | "path_end" | "path_sub"), "-i", list] => {
                let how = match *keyword {
                    "path_beg" => PathMatch::Begins,
                    "path_end" => PathMatch::Ends,
                    _ => PathMatch::Holds,
                };
                // HAProxy's `-i`; an ending is compared without case anyway.
                let any_case = words.len() == 3 || how == PathMatch::Ends;
                value(Some(list))?;
                let mut texts: Vec<Box<str>> = (list.split(','))
                    .map(|t| match any_case {
                        true => t.to_ascii_lowercase().into(),
                        false => t.into(),
                    })
                    .collect();
                texts.sort();
                texts.dedup();
                if texts.iter().any(|t| t.is_empty()) || texts.len() > MAX_TEXTS {
                    return Err(format!(
                        "`{keyword} {list}`: up to {MAX_TEXTS} texts, comma separated, none \
                         empty (`{}`)",
                        how.example()
                    ));
                }
                Ok(Condition::PathText(how, any_case, texts.into()))
            }
            ["path_reg", pattern] => {
                value(Some(pattern))?;
                Ok(Condition::PathReg(Pattern::compile(pattern)?))
            }
            _ => Err(format!("`if {}`: {usage}", text.escape_debug())),
        }
    }

    /// Whether the condition is met for `lookup` at `path` (as routes
    /// read it, without the query).
    pub fn met(&self, lookup: Lookup<'_>, path: &str) -> bool {
        match (self, lookup) {
            (_, Lookup::Request(asked)) => self.holds(asked, path),
            // Without a request, what reads the path alone still can.
            (Condition::PathText(..) | Condition::PathReg(_), _) => self.holds_for_path(path),
            (Condition::Not(negated), _) if negated.reads_the_path_alone() => {
                !negated.met(lookup, path)
            }
            (Condition::All(each), _) => each.iter().all(|c| c.met(lookup, path)),
            (_, Lookup::Bare) => false,
            (_, Lookup::StoredGet { https }) => self.takes_stored_get(https),
        }
    }

    /// Refuses a condition on the client's country without a database
    /// (`geoip`) to read it from: no client would be in the country, every
    /// one outside it.
    pub fn needs_geoip(&self, geoip: bool) -> Result<(), String> {
        match self.names_country() && !geoip {
            true => Err(format!(
                "`if {self}` reads the client's country: set geoip_database to a MaxMind DB \
                 file (GeoLite2-Country.mmdb)"
            )),
            false => Ok(()),
        }
    }

    /// Whether it reads the client's country.
    fn names_country(&self) -> bool {
        match self {
            Condition::Country(_) => true,
            Condition::Not(negated) => negated.names_country(),
            Condition::All(each) => each.iter().any(Condition::names_country),
            _ => false,
        }
    }

    /// Whether the condition reads nothing but the path.
    pub fn reads_the_path_alone(&self) -> bool {
        match self {
            Condition::PathText(..) | Condition::PathReg(_) => true,
            Condition::Not(negated) => negated.reads_the_path_alone(),
            Condition::All(each) => each.iter().all(Condition::reads_the_path_alone),
            _ => false,
        }
    }

    /// Whether `path` meets a condition on the path; `false` for another.
    fn holds_for_path(&self, path: &str) -> bool {
        match self {
            Condition::PathText(how, any_case, texts) => {
                texts.iter().any(|t| how.found(path, t, *any_case))
            }
            Condition::PathReg(pattern) => pattern.regex().is_match(path),
            _ => false,
        }
    }

    /// Whether a stored `GET` could have come through a route with this
    /// condition (see [`Lookup::StoredGet`]) under a key for `https` or
    /// not; one `met` reads itself (on the path, or joined by `and`)
    /// never comes here.
    fn takes_stored_get(&self, https: bool) -> bool {
        match self {
            Condition::Method(methods) => methods.iter().any(|m| &**m == "GET"),
            Condition::Https => https,
            // `not method POST` takes a GET; `not cookie beta` does, but
            // sends it around the cache.
            Condition::Not(negated) => {
                !negated.reads_past_the_key() && !negated.takes_stored_get(https)
            }
            _ => false,
        }
    }

    /// Whether `asked`, at `path`, meets the condition.
    fn holds(&self, asked: &Asked<'_>, path: &str) -> bool {
        match self {
            Condition::Header { name, value } => {
                let mut values = asked.headers.get_all(name);
                match value {
                    None => values.next().is_some(),
                    Some(value) => {
                        values.any(|v| v.trim_ascii().eq_ignore_ascii_case(value.as_bytes()))
                    }
                }
            }
            // A byte that is not UTF-8 hides nothing around it.
            Condition::HeaderReg { name, pattern } => (asked.headers.get_all(name)).any(|v| {
                pattern
                    .regex()
                    .is_match(&String::from_utf8_lossy(v.trim_ascii()))
            }),
            Condition::Cookie { name, value } => match (asked.headers.cookie(name), value) {
                (Some(_), None) => true,
                (Some(sent), Some(value)) => sent == value.as_bytes(),
                (None, _) => false,
            },
            Condition::Query { name, value } => {
                let query = asked.target.split_once('?').map_or("", |(_, q)| q);
                let mut pairs = query
                    .split('&')
                    .map(|p| p.split_once('=').unwrap_or((p, "")));
                pairs.any(|(n, v)| n == &**name && value.as_deref().is_none_or(|value| v == value))
            }
            Condition::Method(methods) => methods.iter().any(|m| **m == *asked.method),
            Condition::Client(blocks) => blocks.iter().any(|b| b.contains(asked.client)),
            Condition::Country(countries) => {
                asked.country().is_some_and(|c| countries.contains(&c))
            }
            Condition::Share(percent) => share_of(asked.client) < *percent,
            Condition::Listener(at) => at.iter().any(|at| at.takes(asked.listener)),
            Condition::Https => asked.https,
            Condition::PathText(..) | Condition::PathReg(_) => self.holds_for_path(path),
            Condition::Not(negated) => !negated.holds(asked, path),
            Condition::All(each) => each.iter().all(|c| c.holds(asked, path)),
        }
    }

    /// Whether the condition reads what the cache's key does not (a
    /// field, a cookie, the client's address; a query parameter as sent,
    /// where the key may spell it otherwise or leave it out): two
    /// requests for one URL may then go to two pools, and what one pool
    /// answered must not answer the other's clients. Negated, it reads
    /// the same (`not cookie beta` sends the requests without the cookie
    /// to one pool, those with it to another). The path is the key's,
    /// however spelled: one key is one path as routes read it; so is the
    /// scheme, the key of an `https` request beginning `https://`: what
    /// one scheme's pool stored never answers the other's requests.
    pub fn reads_past_the_key(&self) -> bool {
        match self {
            Condition::Method(_)
            | Condition::Https
            | Condition::PathText(..)
            | Condition::PathReg(_) => false,
            Condition::Not(negated) => negated.reads_past_the_key(),
            Condition::All(each) => each.iter().any(Condition::reads_past_the_key),
            _ => true,
        }
    }
}

/// Where `client` falls among a hundred shares: the same for an address
/// at every request and across restarts (a fixed hash, not std's keyed
/// one), so a client in a canary's share stays in it. An IPv6 client by
/// its /64, the network of one host or home: its privacy addresses
/// change every day or so within it.
fn share_of(client: IpAddr) -> u8 {
    let hash = match client.to_canonical() {
        IpAddr::V4(ip) => stable_hash(&ip.octets()),
        IpAddr::V6(ip) => stable_hash(&ip.octets()[..8]),
    };
    (hash % 100) as u8
}

/// RFC 9110 §5.6.2's token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl fmt::Display for Condition {
    /// As a route's key writes it, after `if `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, name, value) = match self {
            Condition::Header { name, value } => ("header", &**name, value.as_deref()),
            Condition::HeaderReg { name, pattern } => {
                return write!(f, "header_reg {name} {}", pattern.text())
            }
            Condition::Cookie { name, value } => ("cookie", &**name, value.as_deref()),
            Condition::Query { name, value } => ("query", &**name, value.as_deref()),
            Condition::Method(methods) => return write!(f, "method {}", methods.join(",")),
            Condition::Client(blocks) => {
                let blocks: Vec<String> = blocks.iter().map(|b| b.to_string()).collect();
                return write!(f, "client {}", blocks.join(","));
            }
            Condition::All(each) => {
                let each: Vec<String> = each.iter().map(|c| c.to_string()).collect();
                return f.write_str(&each.join(" and "));
            }
            Condition::Share(percent) => return write!(f, "share {percent}%"),
            Condition::Country(countries) => {
                let codes: Vec<&str> = countries.iter().map(Country::as_str).collect();
                return write!(f, "country {}", codes.join(","));
            }
            Condition::Https => return f.write_str("https"),
            Condition::Listener(at) => {
                let at: Vec<String> = at.iter().map(ListenerAt::to_string).collect();
                return write!(f, "listen {}", at.join(","));
            }
            // `-i` shown where it is not the keyword's own way.
            Condition::PathText(how, any_case, texts) => {
                let flag = match *any_case && *how != PathMatch::Ends {
                    true => " -i",
                    false => "",
                };
                return write!(f, "{}{flag} {}", how.keyword(), texts.join(","));
            }
            Condition::PathReg(pattern) => return write!(f, "path_reg {}", pattern.text()),
            Condition::Not(negated) => return write!(f, "not {negated}"),
        };
        write!(f, "{kind} {name}")?;
        match value {
            Some(value) => write!(f, " {value}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored GET under a key for plain HTTP.
    const STORED_GET: Lookup<'static> = Lookup::StoredGet { https: false };

    fn asked<'a>(method: &'a str, headers: &'a Headers, client: &str) -> Asked<'a> {
        Asked {
            method,
            target: "/p?beta=1&x&q=a%20b",
            headers,
            client: client.parse().unwrap(),
            listener: ([0, 0, 0, 0], 8080).into(),
            https: false,
            geoip: Geo::default(),
        }
    }

    #[test]
    fn https_takes_the_requests_that_are_https_and_a_stored_get_as_its_key_is() {
        let headers = Headers::new();
        let plain = asked("GET", &headers, "10.1.2.3");
        let tls = Asked {
            https: true,
            ..asked("GET", &headers, "10.1.2.3")
        };
        let met = |text: &str, lookup| Condition::parse(text).unwrap().met(lookup, "/p");
        assert!(met("https", Lookup::Request(&tls)));
        assert!(!met("https", Lookup::Request(&plain)));
        assert!(met("not https", Lookup::Request(&plain)));
        assert!(!met("not https", Lookup::Request(&tls)));
        assert!(met("https and client 10.0.0.0/8", Lookup::Request(&tls)));
        assert!(!met("not https and method POST", Lookup::Request(&plain)));
        // The scheme is in the cache's key: such a route is cached, each
        // scheme's answers under a key of their own, and what a snapshot
        // holds is met as its key's scheme is.
        for text in ["https", "not https", "https and path_end .jpg"] {
            let c = Condition::parse(text).unwrap();
            assert!(!c.reads_past_the_key(), "{text}");
        }
        let stored = |https| Lookup::StoredGet { https };
        assert!(met("https", stored(true)) && !met("https", stored(false)));
        assert!(met("not https", stored(false)) && !met("not https", stored(true)));
        assert!(met("not https and not method POST", stored(false)));
        assert!(!met("https and cookie c", stored(true)));
        // Without a request, no scheme: neither is met.
        assert!(!met("https", Lookup::Bare) && !met("not https", Lookup::Bare));
        let c = Condition::parse("  https ").unwrap();
        assert_eq!((c.to_string(), c), ("https".to_string(), Condition::Https));
        for bad in ["https on", "https 443", "HTTPS", "not https https"] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(e.contains("a condition is"), "{bad}: {e}");
        }
    }

    #[test]
    fn country_takes_the_clients_the_database_places_there() {
        use crate::geoip::writer::{country_record, Writer};
        let mut w = Writer::new(6, 24);
        for (network, iso) in [("192.0.2.0/24", "DE"), ("2001:db8::/32", "FR")] {
            let at = w.data(&country_record(Some(iso), None));
            w.insert(network, at);
        }
        let db = crate::geoip::GeoIp::parse(w.finish("GeoLite2-Country")).unwrap();
        let headers = Headers::new();
        let from = |ip: &str| Asked {
            geoip: Geo::each_time(Some(&db)),
            ..asked("GET", &headers, ip)
        };
        let met = |text: &str, ip: &str| {
            Condition::parse(text)
                .unwrap()
                .met(Lookup::Request(&from(ip)), "/p")
        };
        assert!(met("country DE", "192.0.2.7"));
        assert!(met("country FR,DE", "2001:db8::1"));
        assert!(!met("country FR", "192.0.2.7"));
        // No country known: in none, outside every one.
        assert!(!met("country DE", "10.0.0.1"));
        assert!(met("not country DE", "10.0.0.1"));
        assert!(met("not country FR and method GET,HEAD", "192.0.2.7"));
        // Without a database, none.
        let none = asked("GET", &headers, "192.0.2.7");
        let c = Condition::parse("country DE").unwrap();
        assert!(!c.met(Lookup::Request(&none), "/p"));
        // No request, no client: met by no lookup without one, negated
        // neither; it reads past the cache's key as `client` does.
        for text in ["country DE", "not country DE"] {
            let c = Condition::parse(text).unwrap();
            assert!(
                !c.met(Lookup::Bare, "/p") && !c.met(STORED_GET, "/p"),
                "{text}"
            );
            assert!(c.reads_past_the_key(), "{text}");
        }
        let c = Condition::parse("country FR,DE,FR").unwrap();
        assert_eq!(c.to_string(), "country DE,FR");
        for bad in ["country de", "country DEU", "country DE,", "country"] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
        // Refused without a database, in an `and` or negated too.
        for text in ["country DE", "not country DE", "method POST and country DE"] {
            let c = Condition::parse(text).unwrap();
            let e = c.needs_geoip(false).unwrap_err();
            assert!(e.contains("set geoip_database"), "{e}");
            assert!(c.needs_geoip(true).is_ok());
        }
        assert!(Condition::parse("client 10.0.0.0/8")
            .unwrap()
            .needs_geoip(false)
            .is_ok());
    }

    #[test]
    fn listen_takes_the_connections_to_its_listeners() {
        let headers = Headers::new();
        let on = |listener: &str| Asked {
            listener: listener.parse().unwrap(),
            ..asked("GET", &headers, "10.1.2.3")
        };
        let holds = |text: &str, listener: &str| {
            let condition = Condition::parse(text).unwrap();
            condition.met(Lookup::Request(&on(listener)), "/p")
        };
        assert!(holds("listen 8081", "0.0.0.0:8081"));
        assert!(holds("listen 8081", "[::]:8081"));
        assert!(!holds("listen 8081", "0.0.0.0:8080"));
        assert!(holds("listen 10.0.0.5:80,8081", "10.0.0.5:80"));
        assert!(!holds("listen 10.0.0.5:80", "10.0.0.6:80"));
        // As a dual-stack socket writes an IPv4 address, or as written.
        assert!(holds("listen 10.0.0.5:80", "[::ffff:10.0.0.5]:80"));
        assert!(holds("listen [::ffff:10.0.0.5]:80", "10.0.0.5:80"));
        assert!(holds("listen [::1]:80", "[::1]:80"));
        assert!(holds("not listen 8081", "0.0.0.0:8080"));
        // No request, no listener: a bare lookup and a stored GET meet
        // none, and such a route sends its requests around the cache.
        let condition = Condition::parse("listen 8081").unwrap();
        assert!(!condition.met(Lookup::Bare, "/p"));
        assert!(!condition.met(STORED_GET, "/p"));
        assert!(condition.reads_past_the_key());
        // Shown sorted, each once, as a key would write it.
        let shown = Condition::parse("listen 8081,10.0.0.5:80,8081").unwrap();
        assert_eq!(shown.to_string(), "listen 8081,10.0.0.5:80");
        assert_eq!(Condition::parse(&shown.to_string()), Ok(shown));
        for bad in ["listen host:80", "listen 70000", "listen 8081,", "listen"] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(e.contains("listen"), "{bad}: {e}");
        }
    }

    #[test]
    fn each_kind_reads_its_part_of_the_request() {
        let mut headers = Headers::new();
        headers.push("Upgrade", "WebSocket");
        headers.push("Cookie", "a=1; canary=1");
        headers.push("X-Version", " 2 ");
        let request = asked("GET", &headers, "10.1.2.3");
        let holds = |text: &str| {
            Condition::parse(text)
                .unwrap()
                .met(Lookup::Request(&request), "/p")
        };
        assert!(holds("header upgrade websocket"));
        assert!(holds("header X-Version 2"));
        assert!(holds("header X-Version"));
        assert!(!holds("header X-Version 3"));
        assert!(!holds("header X-Absent"));
        assert!(holds("cookie canary 1"));
        assert!(holds("cookie canary"));
        assert!(!holds("cookie Canary"));
        assert!(!holds("cookie canary 01"));
        assert!(holds("query beta 1"));
        assert!(holds("query beta"));
        assert!(holds("query x"));
        assert!(holds("query q a%20b"));
        assert!(!holds("query beta 2"));
        assert!(!holds("query Beta"));
        assert!(!holds("query p"));
        assert!(holds("method GET,HEAD"));
        assert!(!holds("method POST,PUT"));
        assert!(holds("client 10.0.0.0/8"));
        assert!(holds("client 192.168.0.0/16,10.1.2.3"));
        assert!(!holds("client 192.168.0.0/16"));
        assert!(holds(
            "cookie canary 1 and method GET,HEAD and client 10.0.0.0/8"
        ));
        assert!(!holds("cookie canary 1 and method POST"));
    }

    #[test]
    fn path_conditions_read_the_path_as_routes_read_it_for_any_lookup() {
        let headers = Headers::new();
        let request = asked("GET", &headers, "10.1.2.3");
        let met = |text: &str, lookup: Lookup<'_>, path: &str| {
            Condition::parse(text).unwrap().met(lookup, path)
        };
        for lookup in [Lookup::Request(&request), Lookup::Bare, STORED_GET] {
            let holds = |text: &str, path: &str| met(text, lookup, path);
            assert!(holds("path_end .jpg,.png", "/a/b.png"));
            // In any case, as extensions are written both ways.
            assert!(holds("path_end .JPG", "/a/b.jpg"));
            assert!(holds("path_end .jpg", "/a/B.JPG"));
            assert!(holds("path_end /index.html", "/docs/index.html"));
            assert!(!holds("path_end .jpg", "/a/b.jpg/"));
            assert!(!holds("path_end .jpg", "/a/b.jpeg"));
            assert!(!holds("path_end .jpg", "/jpg"));
            assert!(holds("path_end jpg", "/jpg"));
            // A beginning or a piece as written, as paths are; not whole
            // segments, as a route's path is.
            assert!(holds("path_beg /api,/v2", "/apix"));
            assert!(holds("path_beg /api,/v2", "/v2/users"));
            assert!(!holds("path_beg /api", "/API/x"));
            assert!(!holds("path_beg /api", "/x/api"));
            assert!(holds("path_sub /wp-,/.git", "/blog/wp-login.php"));
            assert!(holds("path_sub /wp-,/.git", "/a/.git/config"));
            assert!(!holds("path_sub /wp-", "/blog/WP-login.php"));
            // HAProxy's `-i`: in any case.
            assert!(holds("path_beg -i /API", "/api/x"));
            assert!(holds("path_beg -i /api", "/Api/x"));
            assert!(!holds("path_beg -i /api", "/x/api"));
            assert!(holds("path_sub -i /WP-", "/blog/wp-login.php"));
            assert!(!holds("path_sub -i /wp-", "/blog/wp_login.php"));
            assert!(holds("path_end -i .jpg", "/a/B.JPG"));
            assert!(holds("not path_sub /.git", "/a/git"));
            assert!(holds(r"path_reg \.php(/|$)", "/index.php/x"));
            assert!(holds(r"path_reg \.php(/|$)", "/index.php"));
            assert!(!holds(r"path_reg \.php(/|$)", "/index.phpx"));
            // A pattern is as written: `(?i)` for any case.
            assert!(!holds(r"path_reg \.PHP$", "/a.php"));
            assert!(holds(r"path_reg (?i)\.PHP$", "/a.php"));
            assert!(holds("path_reg ^/[0-9]+$", "/123"));
            assert!(holds("not path_end .jpg", "/a.png"));
            assert!(!holds("not path_end .jpg", "/a.jpg"));
            assert!(holds("path_end .jpg and not path_reg ^/private/", "/a.jpg"));
            assert!(!holds(
                "path_end .jpg and not path_reg ^/private/",
                "/private/a.jpg"
            ));
        }
        // Beside what only a request has, met only for a request.
        let mixed = "path_end .jpg and method GET,HEAD";
        assert!(met(mixed, Lookup::Request(&request), "/a.jpg"));
        assert!(met(mixed, STORED_GET, "/a.jpg"));
        assert!(!met(mixed, Lookup::Bare, "/a.jpg"));
        let mixed = "path_end .jpg and not cookie beta";
        assert!(met(mixed, Lookup::Request(&request), "/a.jpg"));
        assert!(!met(mixed, Lookup::Bare, "/a.jpg"));
        assert!(!met(mixed, STORED_GET, "/a.jpg"));
        // The path is the cache key's: a route on it is cached as any other.
        for text in [
            "path_end .jpg",
            "not path_reg ^/a",
            "path_end .jpg and method GET,HEAD",
        ] {
            assert!(
                !Condition::parse(text).unwrap().reads_past_the_key(),
                "{text}"
            );
        }
        assert!(Condition::parse("path_end .jpg and cookie beta")
            .unwrap()
            .reads_past_the_key());
    }

    #[test]
    fn header_reg_matches_any_field_of_its_name_anywhere_in_its_value() {
        let mut headers = Headers::new();
        headers.push(
            "User-Agent",
            b" Mozilla/5.0 (compatible; Googlebot/2.1) \xff".as_slice(),
        );
        headers.push("X-Tag", "a");
        headers.push("X-Tag", "beta-7");
        let request = asked("GET", &headers, "10.1.2.3");
        let holds = |text: &str| {
            let c = Condition::parse(text).unwrap();
            assert!(
                c.reads_past_the_key() && !c.met(Lookup::Bare, "/p"),
                "{text}"
            );
            c.met(Lookup::Request(&request), "/p")
        };
        assert!(holds("header_reg User-Agent (?i)googlebot|bingbot"));
        assert!(holds(r"header_reg user-agent bot/\d"));
        assert!(!holds("header_reg User-Agent ^Googlebot"));
        assert!(holds(r"header_reg User-Agent \)\s\x{FFFD}$"));
        assert!(holds("header_reg X-Tag ^beta-[0-9]+$"));
        assert!(!holds("header_reg X-Absent ."));
        assert!(holds("not header_reg X-Absent ."));
        for (bad, says) in [
            ("header_reg User-Agent", "a condition is"),
            ("header_reg User-Agent a b", "a condition is"),
            ("header_reg X(y) a", "a condition is"),
            ("header_reg User-Agent (", "does not compile"),
        ] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_condition_is_written_back_as_read() {
        for text in [
            "header upgrade websocket",
            "cookie canary 1",
            "cookie beta",
            "query beta 1",
            "method POST,PUT",
            "client 10.0.0.0/8",
            "cookie canary 1 and header x-beta",
            "share 10%",
            "not cookie beta",
            "not query beta 1",
            "not method POST,PUT",
            "not client 10.0.0.0/8",
            "not share 10%",
            "https",
            "not https",
            "header upgrade websocket and not cookie beta and not method POST",
            "path_end .css,.js",
            r"path_reg ^/(img|css)/.*\.(png|css)$",
            "not path_end .php",
            "path_beg /API,/v2",
            "path_sub /.git",
            "path_beg -i /api,/v2",
            "path_sub -i /.git",
            "header_reg user-agent (?i)bot",
        ] {
            assert_eq!(Condition::parse(text).unwrap().to_string(), text);
        }
        let c = Condition::parse("not   header X-Version Beta").unwrap();
        assert_eq!(c.to_string(), "not header x-version beta");
        // One spelling each, so that two keys for one condition are seen
        // as one.
        let c = Condition::parse("  header   X-Version   Beta ").unwrap();
        assert_eq!(c.to_string(), "header x-version beta");
        let c = Condition::parse("method PUT,POST,PUT").unwrap();
        assert_eq!(c.to_string(), "method POST,PUT");
        // Texts compared in any case are kept in lower case; an ending's
        // `-i` is its own way already.
        let c = Condition::parse("path_beg -i /API,/api").unwrap();
        assert_eq!(c.to_string(), "path_beg -i /api");
        let c = Condition::parse("path_end -i .JPG").unwrap();
        assert_eq!(c.to_string(), "path_end .jpg");
        let c = Condition::parse("path_end .JS,.css,.js").unwrap();
        assert_eq!(c.to_string(), "path_end .css,.js");
    }

    #[test]
    fn what_is_not_a_condition_is_refused() {
        for (text, says) in [
            ("", "a condition is"),
            ("path /x", "a condition is"),
            ("path_end", "a condition is"),
            ("path_end .a .b", "a condition is"),
            ("path_end .a,,.b", "none empty"),
            ("path_end .a,", "none empty"),
            ("path_beg /a,", "(`/api,/v2/api`)"),
            ("path_sub ,x", "(`/wp-,/.git`)"),
            ("path_reg (", "does not compile"),
            ("path_reg", "a condition is"),
            ("header", "a condition is"),
            ("header X a b", "a condition is"),
            ("header X(y) 1", "a condition is"),
            ("cookie c\u{e9} 1", "a condition is"),
            ("method get", "methods are written in capitals"),
            ("method GET", "GET and HEAD go together"),
            ("method HEAD,POST", "GET and HEAD go together"),
            ("client 10.0.0.0/33", "10.0.0.0/33"),
            ("client", "a condition is"),
            ("query a&b", "a condition is"),
            ("cookie c and", "`and` needs a condition on each side"),
            (
                "cookie c and and cookie d",
                "`and` needs a condition on each side",
            ),
            ("share +5%", "1% to 99%"),
            ("share 0%", "1% to 99%"),
            ("share 100%", "1% to 99%"),
            ("share 10", "1% to 99%"),
            ("and cookie c", "`and` needs a condition on each side"),
            ("cookie c and method GET", "GET and HEAD go together"),
            ("not", "`not` needs the condition it negates"),
            ("cookie c and not", "`not` needs the condition it negates"),
            ("not and cookie c", "`not` needs the condition it negates"),
            ("not not cookie c", "`not` is written once"),
            ("not not not cookie c", "`not` is written once"),
            ("cookie c and not not cookie d", "`not` is written once"),
            ("not method GET", "GET and HEAD go together"),
            ("not method HEAD,POST", "GET and HEAD go together"),
            ("not path /x", "`if not path /x`: a condition is"),
            ("not cookie", "a condition is"),
            ("not share 0%", "1% to 99%"),
        ] {
            let e = Condition::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let long = format!("cookie c {}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(Condition::parse(&long).unwrap_err().contains("at most"));
    }

    #[test]
    fn not_is_a_word_of_its_own_only_before_a_condition() {
        // A cookie named `not`, a field whose value is `not`.
        let c = Condition::parse("cookie not not").unwrap();
        assert_eq!(c.to_string(), "cookie not not");
        let c = Condition::parse("not header x not").unwrap();
        assert_eq!(c.to_string(), "not header x not");
        assert!(matches!(c, Condition::Not(_)));
        assert!(Condition::parse("notcookie c").is_err());
    }

    #[test]
    fn a_negated_condition_and_its_condition_are_two() {
        let parse = |text: &str| Condition::parse(text).unwrap();
        assert_eq!(parse("not cookie a"), parse("not  cookie a"));
        assert_ne!(parse("cookie a"), parse("not cookie a"));
        assert_ne!(parse("not cookie a"), parse("not cookie a 1"));
        assert_ne!(
            parse("not cookie a and cookie b"),
            parse("cookie a and not cookie b")
        );
    }

    #[test]
    fn a_negated_condition_takes_the_requests_its_condition_does_not() {
        let mut headers = Headers::new();
        headers.push("Upgrade", "WebSocket");
        headers.push("Cookie", "a=1; canary=1");
        let request = asked("GET", &headers, "10.1.2.3");
        let holds = |text: &str| {
            Condition::parse(text)
                .unwrap()
                .met(Lookup::Request(&request), "/p")
        };
        for (text, met) in [
            ("header upgrade websocket", true),
            ("header x-absent", false),
            ("cookie canary 1", true),
            ("cookie canary 2", false),
            ("cookie session", false),
            ("query beta", true),
            ("query p", false),
            ("method GET,HEAD", true),
            ("method POST", false),
            ("client 10.0.0.0/8", true),
            ("client 192.168.0.0/16", false),
            ("share 99%", holds("share 99%")),
        ] {
            assert_eq!(holds(text), met, "{text}");
            assert_eq!(holds(&format!("not {text}")), !met, "not {text}");
        }
        // Without a Cookie field at all, no cookie is sent.
        let bare = Headers::new();
        let none = asked("POST", &bare, "192.0.2.1");
        let holds_for_none = |text: &str| {
            Condition::parse(text)
                .unwrap()
                .met(Lookup::Request(&none), "/p")
        };
        assert!(holds_for_none("not cookie session"));
        assert!(holds_for_none("not header upgrade"));
        assert!(holds_for_none(
            "not client 10.0.0.0/8 and not method GET,HEAD"
        ));
        assert!(!holds_for_none(
            "not client 192.0.2.0/24 and not cookie session"
        ));
        // Each part of an `and` negated on its own.
        assert!(holds("header upgrade websocket and not cookie beta"));
        assert!(!holds("header upgrade websocket and not cookie canary"));
        assert!(!holds("not header upgrade websocket and not cookie beta"));
        // A client in exactly one of a share and the rest.
        for ip in ["10.0.0.1", "10.9.8.7", "192.0.2.200", "2001:db8::1"] {
            let one = asked("GET", &bare, ip);
            let met = |text: &str| {
                Condition::parse(text)
                    .unwrap()
                    .met(Lookup::Request(&one), "/p")
            };
            assert_ne!(met("share 30%"), met("not share 30%"), "{ip}");
        }
    }

    #[test]
    fn a_bare_lookup_meets_no_condition_negated_either() {
        for text in [
            "not cookie c",
            "not header x",
            "not query q",
            "not client 10.0.0.0/8",
            "not method POST",
            "not method GET,HEAD",
            "not share 10%",
            "not cookie c and not method POST",
        ] {
            assert!(
                !Condition::parse(text).unwrap().met(Lookup::Bare, "/p"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_stored_get_meets_a_negated_method_condition_that_takes_get() {
        let met = |text: &str| Condition::parse(text).unwrap().met(STORED_GET, "/p");
        assert!(met("not method POST"));
        assert!(met("not method POST,PUT,DELETE"));
        assert!(met("not method POST and not method PUT"));
        assert!(met("method GET,HEAD and not method POST"));
        assert!(!met("not method GET,HEAD"));
        assert!(!met("not method GET,HEAD,POST"));
        assert!(!met("not method POST and method POST"));
        // A route reading past the cache's key, negated or not, stores
        // nothing: no stored GET came through it.
        for text in [
            "not cookie c",
            "not header x",
            "not query q",
            "not client 10.0.0.0/8",
            "not share 10%",
            "not method POST and not cookie c",
            "method GET,HEAD and not client 10.0.0.0/8",
        ] {
            assert!(!met(text), "{text}");
        }
    }

    #[test]
    fn a_negated_condition_reads_past_the_key_as_its_condition_does() {
        for text in [
            "header x 1",
            "cookie c",
            "query q",
            "client 10.0.0.0/8",
            "share 10%",
            "method POST",
            "method GET,HEAD",
        ] {
            let positive = Condition::parse(text).unwrap();
            let negated = Condition::parse(&format!("not {text}")).unwrap();
            assert_eq!(
                negated.reads_past_the_key(),
                positive.reads_past_the_key(),
                "{text}"
            );
        }
        assert!(Condition::parse("not cookie c")
            .unwrap()
            .reads_past_the_key());
        assert!(!Condition::parse("not method POST")
            .unwrap()
            .reads_past_the_key());
        assert!(Condition::parse("not method POST and not cookie c")
            .unwrap()
            .reads_past_the_key());
        // A negated part counts as one of the eight.
        let eight = ["not cookie c"; 8].join(" and ");
        assert!(Condition::parse(&eight).is_ok());
        let nine = ["not cookie c"; 9].join(" and ");
        let e = Condition::parse(&nine).unwrap_err();
        assert!(e.contains("at most 8 conditions"), "{e}");
    }

    #[test]
    fn a_share_takes_about_that_share_of_clients_and_keeps_each() {
        let headers = Headers::new();
        let share = Condition::parse("share 10%").unwrap();
        let taken = (0..=255u8)
            .flat_map(|a| (0..40u8).map(move |b| format!("10.{a}.{b}.7")))
            .filter(|ip| share.met(Lookup::Request(&asked("GET", &headers, ip)), "/p"))
            .count();
        // 10,240 addresses: a tenth, give or take.
        assert!((800..1250).contains(&taken), "{taken}");
        let one = asked("GET", &headers, "192.0.2.1");
        let again = asked("GET", &headers, "::ffff:192.0.2.1");
        let all = Condition::parse("share 99%").unwrap();
        // One /64, one share.
        let host = |ip: &str| share.met(Lookup::Request(&asked("GET", &headers, ip)), "/p");
        let first = host("2001:db8:1:2::1");
        assert!(["2001:db8:1:2:aaaa::7", "2001:db8:1:2:ffff:1:2:3"].map(host) == [first; 2]);
        assert_eq!(
            share.met(Lookup::Request(&one), "/p"),
            share.met(Lookup::Request(&again), "/p")
        );
        assert!(share.reads_past_the_key() && !share.met(STORED_GET, "/p"));
        let wider = (0..=255u8).filter(|a| {
            let ip = format!("10.{a}.0.1");
            all.met(Lookup::Request(&asked("GET", &headers, &ip)), "/p")
        });
        assert!(wider.count() > 240);
    }

    #[test]
    fn a_stored_get_meets_the_method_conditions_that_take_get_alone() {
        let met = |text: &str, lookup| Condition::parse(text).unwrap().met(lookup, "/p");
        assert!(met("method GET,HEAD", STORED_GET));
        assert!(!met("method POST", STORED_GET));
        for text in [
            "cookie c",
            "header x",
            "client 0.0.0.0/0",
            "method GET,HEAD",
        ] {
            assert!(!met(text, Lookup::Bare), "{text}");
        }
        assert!(!met("client 0.0.0.0/0", STORED_GET));
    }

    #[test]
    fn a_path_end_takes_up_to_its_limit_of_endings_and_a_value_up_to_its_length() {
        let endings = |n: usize| (0..n).map(|i| format!(".e{i}")).collect::<Vec<_>>();
        let most = format!("path_end {}", endings(MAX_TEXTS).join(","));
        assert!(Condition::parse(&most).is_ok());
        let more = format!("path_end {}", endings(MAX_TEXTS + 1).join(","));
        assert!(Condition::parse(&more)
            .unwrap_err()
            .contains("up to 32 texts"));
        let longest = format!("cookie c {}", "x".repeat(MAX_VALUE_LEN));
        assert!(Condition::parse(&longest).is_ok());
    }

    #[test]
    fn a_share_of_n_takes_the_clients_below_n_hundredths_not_those_at_n() {
        let headers = Headers::new();
        // An address whose place among the hundred shares is exactly 10.
        let at_ten = (0..=255u8)
            .flat_map(|a| (0..=255u8).map(move |b| format!("10.{a}.{b}.7")))
            .find(|ip| share_of(ip.parse().unwrap()) == 10)
            .unwrap();
        let one = asked("GET", &headers, &at_ten);
        let met = |text: &str| {
            Condition::parse(text)
                .unwrap()
                .met(Lookup::Request(&one), "/p")
        };
        assert!(!met("share 10%"), "{at_ten}");
        assert!(met("share 11%"), "{at_ten}");
    }

    #[test]
    fn patterns_are_the_same_condition_when_written_the_same() {
        let parse = |text: &str| Condition::parse(text).unwrap();
        assert_eq!(parse("path_reg ^/a"), parse("path_reg  ^/a"));
        assert_ne!(parse("path_reg ^/a"), parse("path_reg ^/b"));
        assert_ne!(parse("header_reg x a"), parse("header_reg x b"));
    }

    #[test]
    fn only_conditions_on_the_path_alone_read_the_path_alone() {
        for (text, alone) in [
            ("path_end .jpg", true),
            ("not path_reg ^/a", true),
            ("path_end .jpg and not path_reg ^/private/", true),
            ("path_end .jpg and method GET,HEAD", false),
            ("not cookie c", false),
            ("method GET,HEAD", false),
        ] {
            let c = Condition::parse(text).unwrap();
            assert_eq!(c.reads_the_path_alone(), alone, "{text}");
        }
    }

    #[test]
    fn only_the_method_is_read_by_the_cache_s_key_too() {
        let both = Condition::parse("method GET,HEAD and method GET,HEAD").unwrap();
        assert!(!both.reads_past_the_key());
        let mixed = Condition::parse("method GET,HEAD and cookie c").unwrap();
        assert!(mixed.reads_past_the_key());
        assert!(!mixed.met(STORED_GET, "/p") && both.met(STORED_GET, "/p"));
        let many = ["cookie c"; 9].join(" and ");
        let e = Condition::parse(&many).unwrap_err();
        assert!(e.contains("at most 8 conditions"), "{e}");
        assert!(!Condition::parse("method GET,HEAD")
            .unwrap()
            .reads_past_the_key());
        for text in ["header x 1", "cookie c", "query q", "client 10.0.0.0/8"] {
            assert!(
                Condition::parse(text).unwrap().reads_past_the_key(),
                "{text}"
            );
        }
    }
}
