//! One stored response: its head cleaned for storing, its times, its
//! weight against the capacity, and its compressed copies.

use super::{primary_of, unix_ms};
use crate::cache::persist::Record;
use crate::cache::policy::{self, Lifetime, OwnFields, Settings};
use crate::gzip::Coding;
use crate::http::forward::strip_hop_by_hop;
use crate::http::head::parse_response;
use crate::http::headers::push_lines_except;
use crate::http::{Headers, ResponseHead};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// What an entry costs in memory beyond its key, head and body: the
/// entry, record and parsed head structs, the LRU node and map slot, and
/// the allocator's share of some eight allocations (measured with many
/// small entries: about 500 bytes each).
pub const ENTRY_OVERHEAD: u64 = 512;

/// What a Vary variant's URL's index of variants costs beyond the keys:
/// its map slot, its copy of the URL, the names it varies on, and a
/// B-tree node for the variant keys (allocated whole, eleven keys' worth,
/// for the first). Measured with many URLs of one variant each: about
/// 650 bytes a URL, which counted at nothing let such a cache (every
/// response with `Vary: Accept-Encoding`) take some 1.8 times
/// `cache_size`. Each variant counts it: most URLs that vary have a
/// few, and one evicted must not leave the others' index uncounted.
pub const VARY_INDEX_OVERHEAD: u64 = 512;

/// One stored response.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What goes to disk, and what is served: `head` is the status line and
    /// fields, each line ending in CRLF, without framing fields; `body` is
    /// shared by every response served from it. `stored_at` is the
    /// response's birth (arrival minus its initial age), so its Age is
    /// simply now minus `stored_at`.
    pub record: Record,
    pub head: ResponseHead,
    /// Never served stale without revalidating (see
    /// [`policy::must_revalidate`]).
    pub must_revalidate: bool,
    /// See [`policy::stale_while_revalidate`].
    pub stale_while_revalidate: Duration,
    /// How much of `record.head` goes to clients: all but the fields for
    /// this cache alone (see [`policy::Targeting`]), which `sanitize` puts
    /// last.
    served_len: usize,
    /// The names of those fields when it was stored (or loaded).
    hidden: OwnFields,
    /// Its `Surrogate-Key` tags, read whatever `surrogate_keys` says (a
    /// purge by tag reads them only while it is on): so a reload that
    /// turns it on finds them, as a restart would.
    pub(super) tags: policy::Tags,
    /// The file of the disk tier it was read back from, while it is the
    /// same response (see [`Entry::read_from_disk`]).
    disk_id: Option<u64>,
    /// The body compressed in each coding (`gzip`, `brotli`), made at
    /// the first hit that wants it: never written to a snapshot (a start
    /// makes it again).
    compressed: [CompressedCopy; Coding::ALL.len()],
}

/// An entry's compressed body, and whether a hit is making it.
#[derive(Debug, Default)]
struct CompressedCopy {
    copy: OnceLock<Arc<[u8]>>,
    making: AtomicBool,
}

/// A copy of the entry (an outdated one, say) shares the compressed body;
/// one still being made is the original's to finish.
impl Clone for CompressedCopy {
    fn clone(&self) -> Self {
        CompressedCopy {
            copy: self.copy.clone(),
            making: AtomicBool::new(false),
        }
    }
}

impl Entry {
    /// `birth` is when the response was generated as far as we can tell:
    /// its arrival minus its initial age (RFC 9111 §4.2.3).
    pub fn new(
        key: String,
        head: ResponseHead,
        body: Arc<[u8]>,
        birth: SystemTime,
        lifetime: Lifetime,
        settings: &Settings,
    ) -> Entry {
        let stored_at = unix_ms(birth);
        let expires_at = stored_at.saturating_add(lifetime.fresh.as_millis() as u64);
        let record = Record {
            key: key.into_bytes(),
            head: Vec::new(),
            body,
            stored_at,
            expires_at,
            stale_until: expires_at,
        };
        Entry::of_head(record, head, lifetime.fresh, settings, |_, _| {
            lifetime.stale_if_error
        })
    }

    /// The entry of `head`, fresh for `fresh` from `record.stored_at`:
    /// the head is cleaned into `record.head`, and `stale_window` gives
    /// the stale-if-error window past `record.expires_at` from what the
    /// cache reads of it (its Cache-Control as targeted, and the head
    /// read as `storable` reads it).
    fn of_head(
        mut record: Record,
        mut head: ResponseHead,
        fresh: Duration,
        settings: &Settings,
        stale_window: impl FnOnce(&policy::CacheControl, &ResponseHead) -> Duration,
    ) -> Entry {
        let hidden = settings.targeting.own_fields();
        let (bytes, served_len) = sanitize(&mut head, &hidden);
        record.head = bytes;
        // Stored in the head (in a snapshot too): tags survive a restart.
        let tags = policy::Tags::of_response(&head.headers);
        // Read as `storable` read it: what the settings ignore, unread.
        let read = settings.ignored.read(&head);
        let cc = policy::CacheControl::of_response(&read.headers, &settings.targeting);
        let window = stale_window(&cc, &read);
        record.stale_until = record.expires_at.saturating_add(window.as_millis() as u64);
        let must_revalidate = policy::must_revalidate(fresh, &cc, &read);
        let stale_while_revalidate =
            policy::stale_while_revalidate(fresh, &cc, &read, settings.stale_while_revalidate);
        Entry {
            record,
            head,
            must_revalidate,
            stale_while_revalidate,
            served_len,
            hidden,
            tags,
            disk_id: None,
            compressed: Default::default(),
        }
    }

    /// The entry read back from the disk tier's file `id`: a copy of it,
    /// which the file stays beside (evicted again, it is not written
    /// again; stored, it does not replace the file).
    pub fn read_from_disk(self, id: u64) -> Entry {
        Entry {
            disk_id: Some(id),
            ..self
        }
    }

    /// See [`Entry::read_from_disk`].
    pub fn disk_id(&self) -> Option<u64> {
        self.disk_id
    }

    /// The status line and fields sent with every response served from
    /// it, each line ending in CRLF: all but the fields named in `own`,
    /// the ones for this cache alone as the settings in force name them
    /// (`Shared::own_fields`). Those it was stored under, nearly always:
    /// a slice of what is stored. Others (a reload changed `surrogate_id`,
    /// `x_accel_expires` or `targeted_cache_control` since): a copy
    /// without them, as a restart would serve it.
    pub fn served_head(&self, own: &OwnFields) -> Cow<'_, [u8]> {
        if *own == self.hidden {
            return Cow::Borrowed(&self.record.head[..self.served_len]);
        }
        let mut head = Vec::with_capacity(self.record.head.len());
        let names: Vec<&str> = own.iter().collect();
        push_lines_except(&mut head, &self.record.head, &names);
        Cow::Owned(head)
    }

    /// [`Entry::served_head`] without its status line.
    pub fn served_fields(&self, own: &OwnFields) -> Cow<'_, [u8]> {
        let after_status = |head: &[u8]| head.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        match self.served_head(own) {
            Cow::Borrowed(head) => Cow::Borrowed(&head[after_status(head)..]),
            Cow::Owned(mut head) => {
                head.drain(..after_status(&head));
                Cow::Owned(head)
            }
        }
    }

    /// The entry with `old`'s compressed copies, when they were made of the
    /// same body (an entry refreshed by a 304 or a HEAD): a revalidation
    /// is not a reason to compress the body again.
    pub fn with_copy_of(mut self, old: &Entry) -> Entry {
        if Arc::ptr_eq(&self.record.body, &old.record.body) {
            self.compressed = old.compressed.clone();
        }
        self
    }

    /// The entry as an answer from the origin shows it outdated (RFC 9111
    /// §4.3.5, a HEAD's): stale from `now` if it was still fresh, with the
    /// stale window it was given, so that it still stands in when the
    /// origin fails.
    pub fn outdated(&self, now: SystemTime) -> Entry {
        let mut entry = self.clone();
        // Another response than its file's, which goes when it is stored.
        entry.disk_id = None;
        let record = &mut entry.record;
        let window = record.stale_until.saturating_sub(record.expires_at);
        record.expires_at = record.expires_at.min(unix_ms(now)).max(record.stored_at);
        // Never later than it was (a crafted record may expire before
        // its birth, and the `max` above move it on).
        record.stale_until = record
            .expires_at
            .saturating_add(window)
            .min(record.stale_until);
        entry
    }

    /// How [`policy::usable`] sees it at `now`. One born after `now` was
    /// stored before the clock was set back (NTP, a VM resumed): how old
    /// it is cannot be told, and counted from its birth it would stay
    /// fresh for as long as the clock went back besides its lifetime (a
    /// year and a minute for a `max-age=60` after a year's step). It is
    /// taken as stale, then, so the next use revalidates it, and the
    /// refreshed entry is born by the clock as it is now.
    pub fn as_stored(&self, now: SystemTime) -> policy::Stored {
        let clock_set_back = unix_ms(now) < self.record.stored_at;
        policy::Stored {
            age: self.age(now),
            fresh: match clock_set_back {
                true => Duration::ZERO,
                false => self.fresh_lifetime(),
            },
            must_revalidate: self.must_revalidate,
            stale_while_revalidate: self.stale_while_revalidate,
        }
    }

    /// Rebuilds an entry from a snapshot record; `None` if its head does not
    /// parse or has a status the cache never stores (a record from a
    /// damaged or crafted file: a 304 or a 101 served with a body would
    /// break the framing of the connection). The head is cleaned as a
    /// fresh one is: a crafted file must not smuggle framing fields into
    /// the responses served from it.
    pub fn from_record(record: Record, settings: &Settings) -> Option<Entry> {
        let mut text = record.head.clone();
        text.extend_from_slice(b"\r\n");
        let head = parse_response(&text).ok()?;
        // A snapshot of a version that passed on a field the proxy now
        // writes (X-Real-IP, Forwarded) may hold a response varying on it,
        // filed under the client's own value: not what the backend is
        // now sent. (With Vary unread, its Vary keyed nothing.)
        let varies_past_any_key =
            || !settings.ignored.ignores("vary") && policy::varies_past_any_key(&head.headers);
        let intercepted = settings.never_stored.contains(&head.status);
        if !policy::status_ever_stored(head.status) || intercepted || varies_past_any_key() {
            return None;
        }
        std::str::from_utf8(&record.key).ok()?;
        let fresh = Duration::from_millis(record.expires_at.saturating_sub(record.stored_at));
        // The window as the rules give it today (a snapshot of an older
        // version may say otherwise); the `stale_if_error` it was stored
        // under is known only from the window it recorded, which may also
        // be the `stale_while_revalidate` setting's of then: never longer
        // than the `stale_if_error` in force (as with `ttl`), so that a
        // setting turned down does not live on as a window for errors.
        let recorded = Duration::from_millis(record.stale_until.saturating_sub(record.expires_at));
        let on_error = recorded.min(settings.stale_if_error);
        let configured_swr = settings.stale_while_revalidate;
        Some(Entry::of_head(record, head, fresh, settings, |cc, read| {
            policy::stale_window(fresh, cc, read, on_error, configured_swr)
        }))
    }

    pub fn key(&self) -> &str {
        std::str::from_utf8(&self.record.key).unwrap_or("")
    }

    /// Its `Surrogate-Key` tags.
    pub fn tags(&self) -> &policy::Tags {
        &self.tags
    }

    /// The body compressed with `coding` by `compress`, made once, and
    /// whether this call made it: then the entry weighs more (see
    /// [`Cache::reweigh`]).
    /// `None` while another hit is making it: this one goes uncompressed
    /// rather than wait (the response says `Vary: Accept-Encoding` either
    /// way), so that the first hits on a large entry are not held up.
    ///
    /// [`Cache::reweigh`]: super::Cache::reweigh
    pub fn compressed(
        &self,
        coding: Coding,
        compress: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Option<(&[u8], bool)> {
        let copy = self.compressed.get(coding.index())?;
        if let Some(made) = copy.copy.get() {
            return Some((made, false));
        }
        if copy.making.swap(true, Ordering::AcqRel) {
            return None;
        }
        let made = copy.copy.get_or_init(|| compress(&self.record.body).into());
        Some((made, true))
    }

    /// The size of the body compressed with `coding`, once a hit has
    /// made it.
    pub fn compressed_len(&self, coding: Coding) -> Option<usize> {
        let copy = self.compressed.get(coding.index())?;
        copy.copy.get().map(|c| c.len())
    }

    /// The request fields it was keyed on (its Vary, as the key spells
    /// it: what the rules in force when it was stored read of it).
    pub fn vary_names(&self) -> impl Iterator<Item = &str> + Clone {
        let variant = self.key().split('\n').skip(1);
        variant.map(|part| part.split('=').next().unwrap_or(part))
    }

    /// The key without its Vary part.
    pub fn primary_key(&self) -> &str {
        primary_of(self.key())
    }

    pub fn age(&self, now: SystemTime) -> Duration {
        Duration::from_millis(unix_ms(now).saturating_sub(self.record.stored_at))
    }

    /// How long it is fresh in all, from birth.
    pub fn fresh_lifetime(&self) -> Duration {
        Duration::from_millis(self.record.expires_at.saturating_sub(self.record.stored_at))
    }

    /// When it stops being fresh (Unix milliseconds): its stored
    /// freshness capped by `ttl` as it is now (one lowered by a reload).
    pub fn expires_under(&self, ttl: Duration) -> u64 {
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        (self.record.expires_at).min(self.record.stored_at.saturating_add(ttl))
    }

    /// The end of the window it was stored with past its freshness,
    /// counted from [`Entry::expires_under`] (a lowered `ttl` ends it
    /// sooner too).
    pub fn stale_until_under(&self, ttl: Duration) -> u64 {
        let window = self
            .record
            .stale_until
            .saturating_sub(self.record.expires_at);
        self.expires_under(ttl).saturating_add(window)
    }

    /// Whether it may still answer when the origin fails: within
    /// [`Entry::stale_until_under`] `ttl`.
    pub fn within_stale_window(&self, now: SystemTime, ttl: Duration) -> bool {
        unix_ms(now) < self.stale_until_under(ttl)
    }

    /// Bytes counted against the cache capacity: what the entry holds in
    /// memory, not only its key, head and body. The key is held three times
    /// (the record, the LRU's map and its list), a Vary variant's a fourth
    /// (its URL's index of variants, whose own cost it counts too: see
    /// [`VARY_INDEX_OVERHEAD`]), the head twice (as stored and parsed,
    /// the parsed one with an index of its fields besides: a head of many
    /// short fields holds more than twice its length) and its tags a third
    /// time, and each entry has its structs and allocations besides:
    /// counting only the payload let a cache of many small entries take
    /// many times `cache_size`.
    pub fn weight(&self) -> u64 {
        let record = &self.record;
        let compressed: usize = (self.compressed.iter())
            .filter_map(|c| c.copy.get())
            .map(|c| c.len())
            .sum();
        let variant = record.key.contains(&b'\n');
        let key_copies = 3 + usize::from(variant);
        let index = self.head.headers.len() * Headers::INDEX_BYTES_PER_FIELD;
        let head = 2 * record.head.len() + index;
        let held = key_copies * record.key.len() + head + self.tags.weight();
        let vary_index = if variant {
            VARY_INDEX_OVERHEAD + primary_of(self.key()).len() as u64
        } else {
            0
        };
        (held + record.body.len() + compressed) as u64 + ENTRY_OVERHEAD + vary_index
    }
}

/// Takes out of a head what must not be stored (RFC 9111 §3.1: the
/// hop-by-hop fields, those its `Connection` names, framing, which is
/// written per response, and the proxy-specific ones, one hop's
/// challenge or nonce) or is written per response (`Age`, `X-Cache`),
/// and returns it serialized as stored, with the length of what is served
/// of it: the fields named in `own` (for this cache alone) are moved last,
/// to be stored but not served. Every stored head comes here: new,
/// refreshed by a 304, or read from a snapshot.
fn sanitize(head: &mut ResponseHead, own: &OwnFields) -> (Vec<u8>, usize) {
    strip_hop_by_hop(&mut head.headers, false);
    for name in [
        "age",
        "x-cache",
        "proxy-authenticate",
        "proxy-authentication-info",
    ] {
        head.headers.remove(name);
    }
    // A cookie is for the client whose request the response answered:
    // replayed from the cache it would give every visitor one session.
    head.headers.remove("set-cookie");
    head.version = crate::http::Version::Http11;
    let mut own_fields = Headers::new();
    for (name, value) in head.headers.iter() {
        if own.contains(name) {
            own_fields.push(name, value);
        }
    }
    own.remove_from(&mut head.headers);
    let mut bytes = Vec::with_capacity(256);
    head.write_start(&mut bytes);
    let served_len = bytes.len();
    own_fields.write_to(&mut bytes);
    for (name, value) in own_fields.iter() {
        head.headers.push(name, value);
    }
    // The parsed head is kept beside the serialized one, and weighed as
    // its copy: without the bytes of the fields just removed, or of every
    // field a 304 ever replaced (a backend could make an entry hold many
    // times its weight).
    head.headers.compact();
    bytes.shrink_to_fit();
    (bytes, served_len)
}
