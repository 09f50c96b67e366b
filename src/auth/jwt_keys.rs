//! Where the keys `auth_jwt` checks tokens against come from: a file read
//! with the configuration (`auth_jwt_key_file`), or a pool asked for them
//! and asked again every `auth_jwt_key_cache` or as long as the key set's
//! answer says it may be used (`auth_jwt_key_request`, nginx Plus's), so
//! that the keys an identity provider rotates are followed without a
//! reload. The fetching itself is a thread of the
//! server's (see `crate::upstream::health::Checker::fetch_keys`); here is
//! what requests and that thread share.

use super::jwt::Jwks;
use crate::config::PoolRequest;
use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a fetched set is used when neither `auth_jwt_key_cache` nor
/// the set's answer says (nginx Plus's `auth_jwt_key_cache` default is
/// none, a fetch per request; 10 minutes is what `jwks-rsa` caches).
pub const DEFAULT_CACHE: Duration = Duration::from_secs(600);

/// The shortest a key set's own answer may have it used, without
/// `auth_jwt_key_cache` (its `max-age=0`, an `Expires` past): a provider
/// that says its keys may change any time is asked twice a minute, not
/// for every token; a rotation is followed sooner anyway (see
/// [`MIN_REFETCH`]).
pub const MIN_SAID_CACHE: Duration = Duration::from_secs(30);

/// The longest a key set's own answer may have it used, without
/// `auth_jwt_key_cache`: a key the provider withdrew (a leaked one) stops
/// being taken within a day, however long its set said it was good for;
/// a token naming a new key is no sign of a key withdrawn.
pub const MAX_SAID_CACHE: Duration = Duration::from_secs(24 * 3600);

/// The soonest keys are fetched again after a token named a key not
/// among them, counted from the last fetch: a provider that began to sign
/// with a new key is followed within that, and tokens naming keys nobody
/// has cannot make the proxy ask more often (one fetch per 5 s at most,
/// as `jwks-rsa`'s default allows 10 a minute).
pub const MIN_REFETCH: Duration = Duration::from_secs(5);

/// The longest a failed fetch waits before the next try (sooner under a
/// shorter `auth_jwt_key_cache`): the keys a provider publishes while it
/// was unreachable are needed soon.
pub const RETRY: Duration = Duration::from_secs(10);

/// The keys a scope checks tokens against.
#[derive(Clone, Debug)]
pub enum JwtKeys {
    /// `auth_jwt_key_file`: read with the configuration.
    File(Arc<Jwks>),
    /// `auth_jwt_key_request`: fetched while the proxy runs.
    Fetched(Arc<FetchedKeys>),
}

impl JwtKeys {
    /// The keys in force; `None` while fetched ones have never come.
    pub fn current(&self) -> Option<Arc<Jwks>> {
        match self {
            JwtKeys::File(keys) => Some(keys.clone()),
            JwtKeys::Fetched(fetched) => fetched.current(),
        }
    }

    /// The key that gave them (for `check` and errors).
    pub fn key(&self) -> &'static str {
        match self {
            JwtKeys::File(_) => "auth_jwt_key_file",
            JwtKeys::Fetched(_) => "auth_jwt_key_request",
        }
    }

    /// For `check`: the keys read, or where they will be fetched from.
    pub fn summary(&self) -> String {
        match self {
            JwtKeys::File(keys) => keys.summary(),
            JwtKeys::Fetched(fetched) => {
                let every = match fetched.cache {
                    Some(every) => format!("every {every:?}"),
                    None => format!(
                        "as long as its answer's Cache-Control or Expires says ({:?} to {:?}; \
                         {:?} without)",
                        MIN_SAID_CACHE, MAX_SAID_CACHE, DEFAULT_CACHE
                    ),
                };
                let from = &fetched.from;
                format!(
                    "GET {} of pool {}, {every} once running",
                    from.path, from.pool_name
                )
            }
        }
    }

    /// Whether both are the one source (a pool that took the top level's).
    pub fn same_as(&self, other: &JwtKeys) -> bool {
        match (self, other) {
            (JwtKeys::File(a), JwtKeys::File(b)) => Arc::ptr_eq(a, b),
            (JwtKeys::Fetched(a), JwtKeys::Fetched(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Keys fetched from a pool: the last set that came whole, kept while
/// later fetches fail.
pub struct FetchedKeys {
    /// The pool and path asked.
    pub from: PoolRequest,
    /// `auth_jwt_key_cache`, when set: how long a set is used before it
    /// is asked for again; `None`: as long as its answer says (see
    /// [`cache_time`]).
    pub cache: Option<Duration>,
    /// `auth_jwt_issuer`: the issuer a discovery document must name.
    pub issuer: Option<Arc<str>>,
    /// How long the set in force is used (see [`cache_time`]).
    every: Mutex<Duration>,
    keys: RwLock<Option<Arc<Jwks>>>,
    /// When a set last came (the same as before, or new).
    came: Mutex<Option<Instant>>,
    /// A token named a key the set lacks: the fetcher is woken to ask
    /// again (see [`MIN_REFETCH`]). One pending wake is enough.
    wake: Sender<()>,
    woken: Receiver<()>,
}

impl std::fmt::Debug for FetchedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedKeys")
            .field("from", &self.from)
            .field("cache", &self.cache)
            .field("issuer", &self.issuer)
            .field("has_keys", &self.keys.read().is_some())
            .finish()
    }
}

impl FetchedKeys {
    pub fn new(
        from: PoolRequest,
        cache: Option<Duration>,
        issuer: Option<Arc<str>>,
    ) -> FetchedKeys {
        let (wake, woken) = bounded(1);
        FetchedKeys {
            from,
            cache,
            issuer,
            every: Mutex::new(cache_time(cache, None)),
            keys: RwLock::new(None),
            came: Mutex::new(None),
            wake,
            woken,
        }
    }

    pub fn current(&self) -> Option<Arc<Jwks>> {
        self.keys.read().clone()
    }

    /// When a set last came; `None` before the first.
    pub fn came(&self) -> Option<Instant> {
        *self.came.lock()
    }

    /// How long the set in force is used before it is asked for again.
    pub fn every(&self) -> Duration {
        *self.every.lock()
    }

    /// Uses the set that came for as long as its answer `said` (see
    /// [`cache_time`]), and says how long that is.
    pub fn use_for(&self, said: Option<Duration>) -> Duration {
        let every = cache_time(self.cache, said);
        *self.every.lock() = every;
        every
    }

    /// Puts `keys` in force; whether they differ from those before.
    pub fn put(&self, keys: Jwks) -> bool {
        *self.came.lock() = Some(Instant::now());
        let mut current = self.keys.write();
        let changed = current.as_deref() != Some(&keys);
        if changed {
            *current = Some(Arc::new(keys));
        }
        changed
    }

    /// Asks the fetcher for the keys again, soon (see [`MIN_REFETCH`]).
    pub fn ask_again(&self) {
        // Full: a wake is pending already.
        let _ = self.wake.try_send(());
    }

    /// What wakes the fetcher.
    pub fn woken(&self) -> &Receiver<()> {
        &self.woken
    }

    /// Takes the keys `before` fetched, when it asked the same pool for
    /// the same path: a reload goes on with them until its own fetch
    /// comes, rather than refusing every token meanwhile.
    pub fn take_keys_of(&self, before: &FetchedKeys) {
        // The same set (settings kept by a new lookup of names): its lock
        // is not taken twice.
        if std::ptr::eq(self, before) {
            return;
        }
        // A set another issuer's discovery document gave is not this one's.
        let same_request = self.from.pool_name == before.from.pool_name
            && self.from.path == before.from.path
            && self.issuer == before.issuer;
        if same_request {
            let mut keys = self.keys.write();
            if keys.is_none() {
                keys.clone_from(&before.keys.read());
            }
        }
    }
}

/// How long a set that came is used: `auth_jwt_key_cache` when the
/// operator set it (as nginx Plus's wins over the answer), else what its
/// answer `said` (its `Cache-Control: max-age`, or `Expires`, as RFC 9111
/// §4.2.1 reads them) within [`MIN_SAID_CACHE`] and [`MAX_SAID_CACHE`],
/// else [`DEFAULT_CACHE`].
pub fn cache_time(set: Option<Duration>, said: Option<Duration>) -> Duration {
    match (set, said) {
        (Some(set), _) => set,
        (None, Some(said)) => said.clamp(MIN_SAID_CACHE, MAX_SAID_CACHE),
        (None, None) => DEFAULT_CACHE,
    }
}

/// When the fetcher asks next, having last asked at `asked`: `every`
/// after a set came, [`RETRY`] (or `every`, if shorter) after a failure;
/// no later than [`MIN_REFETCH`] after it when a token since `woken` it.
pub fn next_fetch(asked: Instant, got_keys: bool, every: Duration, woken: bool) -> Instant {
    let wait = match got_keys {
        true => every,
        false => RETRY.min(every),
    };
    let wait = match woken {
        true => wait.min(MIN_REFETCH),
        false => wait,
    };
    asked + wait
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_KEY: &str =
        r#"{"kty":"oct","kid":"a","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#;
    const OTHER_KEY: &str =
        r#"{"kty":"oct","kid":"b","k":"YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQtYWFh"}"#;

    fn from(pool: &str, path: &str) -> PoolRequest {
        PoolRequest {
            pool_name: pool.into(),
            pool: 1,
            path: path.into(),
        }
    }

    fn keys(text: &str) -> Jwks {
        Jwks::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn fetched_keys_are_none_until_a_set_comes_and_a_new_set_replaces_it() {
        let fetched = FetchedKeys::new(from("idp", "/jwks"), Some(Duration::from_secs(600)), None);
        assert!(fetched.current().is_none());
        assert!(fetched.came().is_none());
        let before = Instant::now();
        assert!(fetched.put(keys(ONE_KEY)));
        assert!(fetched.came().is_some_and(|t| t >= before));
        assert_eq!(fetched.current().as_deref(), Some(&keys(ONE_KEY)));
        assert!(
            !fetched.put(keys(ONE_KEY)),
            "the same set again is no change"
        );
        assert!(fetched.put(keys(OTHER_KEY)));
        assert_eq!(fetched.current().as_deref(), Some(&keys(OTHER_KEY)));
    }

    #[test]
    fn a_reload_takes_the_keys_of_the_same_request_only_and_keeps_its_own() {
        let before = FetchedKeys::new(from("idp", "/jwks"), Some(Duration::from_secs(600)), None);
        before.put(keys(ONE_KEY));
        let elsewhere =
            FetchedKeys::new(from("idp", "/other"), Some(Duration::from_secs(600)), None);
        elsewhere.take_keys_of(&before);
        assert!(elsewhere.current().is_none());
        let other_pool =
            FetchedKeys::new(from("sso", "/jwks"), Some(Duration::from_secs(600)), None);
        other_pool.take_keys_of(&before);
        assert!(other_pool.current().is_none());
        // Another issuer's: what its discovery document gave is not ours.
        let issuer = Some("https://id.example.com/realms/b".into());
        let other_issuer = FetchedKeys::new(from("idp", "/jwks"), None, issuer);
        other_issuer.take_keys_of(&before);
        assert!(other_issuer.current().is_none());
        // Another cache time is the same request.
        let same = FetchedKeys::new(from("idp", "/jwks"), Some(Duration::from_secs(60)), None);
        same.take_keys_of(&before);
        assert_eq!(same.current().as_deref(), Some(&keys(ONE_KEY)));
        let fetched_first =
            FetchedKeys::new(from("idp", "/jwks"), Some(Duration::from_secs(60)), None);
        fetched_first.put(keys(OTHER_KEY));
        fetched_first.take_keys_of(&before);
        assert_eq!(fetched_first.current().as_deref(), Some(&keys(OTHER_KEY)));
        before.take_keys_of(&before);
        assert_eq!(before.current().as_deref(), Some(&keys(ONE_KEY)));
    }

    #[test]
    fn the_next_fetch_is_a_cache_time_away_sooner_after_a_failure_or_an_unknown_key() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(next_fetch(now, true, hour, false), now + hour);
        assert_eq!(next_fetch(now, false, hour, false), now + RETRY);
        assert_eq!(next_fetch(now, true, hour, true), now + MIN_REFETCH);
        assert_eq!(next_fetch(now, false, hour, true), now + MIN_REFETCH);
        // A cache time shorter than both rules it.
        let second = Duration::from_secs(1);
        assert_eq!(next_fetch(now, false, second, false), now + second);
        assert_eq!(next_fetch(now, true, second, true), now + second);
    }

    #[test]
    fn a_set_is_used_as_long_as_its_answer_says_within_bounds_unless_the_operator_says() {
        let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(cache_time(None, None), DEFAULT_CACHE);
        assert_eq!(cache_time(None, Some(hour)), hour);
        assert_eq!(cache_time(None, Some(Duration::ZERO)), MIN_SAID_CACHE);
        assert_eq!(
            cache_time(None, Some(Duration::from_secs(29))),
            MIN_SAID_CACHE
        );
        assert_eq!(cache_time(None, Some(hour * 24 * 365)), MAX_SAID_CACHE);
        // auth_jwt_key_cache set wins, whatever the answer says.
        assert_eq!(cache_time(Some(minute), Some(hour)), minute);
        assert_eq!(cache_time(Some(hour), None), hour);
        assert_eq!(
            cache_time(Some(Duration::from_secs(1)), Some(hour)),
            Duration::from_secs(1)
        );

        let fetched = FetchedKeys::new(from("idp", "/jwks"), None, None);
        assert_eq!(fetched.every(), DEFAULT_CACHE, "before any answer");
        assert_eq!(fetched.use_for(Some(hour)), hour);
        assert_eq!(fetched.every(), hour);
        assert_eq!(fetched.use_for(None), DEFAULT_CACHE);
        assert_eq!(
            JwtKeys::Fetched(Arc::new(fetched)).summary(),
            "GET /jwks of pool idp, as long as its answer's Cache-Control or Expires says \
             (30s to 86400s; 600s without) once running"
        );
        let set = FetchedKeys::new(from("idp", "/jwks"), Some(minute), None);
        assert_eq!(
            (set.every(), set.use_for(Some(hour)), set.every()),
            (minute, minute, minute)
        );
    }

    #[test]
    fn a_scope_that_took_the_top_levels_keys_is_one_source_with_it() {
        // `check` lists a pool's keys only when they are not the top
        // level's: the one file or request, not an equal one.
        let file = JwtKeys::File(Arc::new(keys(ONE_KEY)));
        let inherited = file.clone();
        let read_again = JwtKeys::File(Arc::new(keys(ONE_KEY)));
        assert!(file.same_as(&inherited));
        assert!(!file.same_as(&read_again));
        let request =
            JwtKeys::Fetched(Arc::new(FetchedKeys::new(from("idp", "/jwks"), None, None)));
        let asked_again =
            JwtKeys::Fetched(Arc::new(FetchedKeys::new(from("idp", "/jwks"), None, None)));
        assert!(request.same_as(&request.clone()));
        assert!(!request.same_as(&asked_again));
        assert!(!file.same_as(&request) && !request.same_as(&file));
        // A file's keys are in force at once, a request's once fetched.
        assert_eq!(file.current().as_deref(), Some(&keys(ONE_KEY)));
        assert!(request.current().is_none());
        if let JwtKeys::Fetched(fetched) = &request {
            fetched.put(keys(OTHER_KEY));
        }
        assert_eq!(request.current().as_deref(), Some(&keys(OTHER_KEY)));
    }

    #[test]
    fn a_wake_is_pending_once_however_many_tokens_ask() {
        let fetched = FetchedKeys::new(from("idp", "/jwks"), Some(Duration::from_secs(600)), None);
        assert!(fetched.woken().try_recv().is_err());
        fetched.ask_again();
        fetched.ask_again();
        assert!(fetched.woken().try_recv().is_ok());
        assert!(fetched.woken().try_recv().is_err());
    }
}
