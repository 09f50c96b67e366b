//! The disk tier's index: which keys have a file, how large, until when,
//! with which tags; its own LRU by bytes of files, its own Vary index,
//! and the purges it takes. Knows no files: what it drops is returned
//! (`Doomed`) for the caller to delete.

use super::recent::Recent;
use crate::cache::lru::Lru;
use crate::cache::policy::{self, Tags};
use crate::cache::store::{primary_of, Group, Purge, Variants};
use std::collections::HashMap;

/// One entry on disk.
#[derive(Clone, Debug)]
pub struct Held {
    /// Told apart from an entry stored again under the same key while its
    /// file was read outside the lock.
    pub id: u64,
    /// Its file's name (see `file::name_of`).
    pub name: String,
    /// Bytes of its file.
    pub size: u64,
    pub expires_at: u64,
    /// `Record::keep_until`: past it, the file goes.
    pub keep_until: u64,
    pub tags: Tags,
    /// A soft purge since it was written: it is served as outdated from
    /// then (see `Entry::outdated`).
    pub soft: Option<u64>,
}

/// Keys dropped from the index, with their files' names, to delete.
pub type Doomed = Vec<(String, String)>;

/// What a purge names.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// Every variant of each of these URLs (primary keys).
    Primaries(Vec<String>),
    Group(Group),
    All,
}

impl Target {
    /// Whether it names the entry of `key` with `tags`.
    pub(crate) fn holds(&self, key: &str, tags: &Tags) -> bool {
        match self {
            Target::All => true,
            Target::Primaries(primaries) => primaries.iter().any(|p| p == primary_of(key)),
            Target::Group(group) => group.holds_tagged(key, tags),
        }
    }
}

/// URLs a scan under way remembers purged one by one; past this, a purge
/// counts as one of everything not yet scanned.
const MAX_SCAN_PRIMARIES: usize = 100_000;
/// Groups (prefixes, tags, patterns) a scan under way remembers.
const MAX_SCAN_GROUPS: usize = 64;

/// The purges taken while the start-up scan runs, applied to what it
/// finds afterwards: the files it has not reached yet are older than
/// each of them.
#[derive(Default)]
struct ScanPurges {
    primaries: HashMap<String, Purge>,
    groups: Vec<(Group, Purge)>,
    all: Option<Purge>,
}

/// The harder, or earlier, of two purges of one entry.
fn harder(a: Purge, b: Purge) -> Purge {
    match (a, b) {
        (Purge::Soft(x), Purge::Soft(y)) => Purge::Soft(x.min(y)),
        _ => Purge::Hard,
    }
}

impl ScanPurges {
    fn note(&mut self, target: &Target, purge: Purge) {
        match target {
            Target::All => self.all = Some(self.all.map_or(purge, |p| harder(p, purge))),
            Target::Primaries(primaries) => {
                for primary in primaries {
                    let was = self.primaries.get(primary).copied();
                    (self.primaries)
                        .insert(primary.clone(), was.map_or(purge, |p| harder(p, purge)));
                }
            }
            Target::Group(group) => self.groups.push((group.clone(), purge)),
        }
        if self.primaries.len() > MAX_SCAN_PRIMARIES || self.groups.len() > MAX_SCAN_GROUPS {
            let all = (self.primaries.drain().map(|(_, p)| p))
                .chain(self.groups.drain(..).map(|(_, p)| p))
                .fold(purge, harder);
            self.all = Some(self.all.map_or(all, |p| harder(p, all)));
        }
    }

    /// What the purges taken so far make of an entry found on disk.
    fn applied(&self, key: &str, tags: &Tags) -> Option<Purge> {
        let by_url = self.primaries.get(primary_of(key)).copied();
        let by_group = (self.groups.iter())
            .filter(|(g, _)| g.holds_tagged(key, tags))
            .map(|&(_, p)| p);
        (self.all.into_iter().chain(by_url).chain(by_group)).reduce(harder)
    }
}

pub struct Index {
    lru: Lru<String, Held>,
    vary: HashMap<String, Variants>,
    next_id: u64,
    /// While the start-up scan runs.
    scan: Option<ScanPurges>,
    /// The purges writes on their way may predate.
    pub recent: Recent,
}

/// The request fields a key varies on, as the key spells them.
fn names_of(key: &str) -> Vec<String> {
    let parts = key.split('\n').skip(1);
    parts
        .map(|p| p.split('=').next().unwrap_or(p).to_string())
        .collect()
}

impl Index {
    /// An index of `capacity` bytes of files, scanning until
    /// [`Index::scanned`].
    pub fn new(capacity: u64) -> Index {
        Index {
            lru: Lru::new(capacity),
            vary: HashMap::new(),
            next_id: 0,
            scan: Some(ScanPurges::default()),
            recent: Recent::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn bytes(&self) -> u64 {
        self.lru.bytes()
    }

    pub fn capacity(&self) -> u64 {
        self.lru.capacity()
    }

    /// Every key with a file, most recently used first.
    pub fn keys(&self) -> Vec<String> {
        self.lru.iter().map(|(key, _)| key.clone()).collect()
    }

    pub fn holds(&self, key: &str) -> bool {
        self.lru.contains_key(key)
    }

    /// The start-up scan is over: purges from now on find what it found.
    pub fn scanned(&mut self) {
        self.scan = None;
    }

    /// The key a request's response is stored under on disk, if the URL's
    /// variants are there.
    pub fn key_for(&self, primary: &str, request: &crate::http::Headers) -> String {
        match self.vary.get(primary) {
            Some(v) => policy::variant_key(primary, &v.names, request),
            None => primary.to_string(),
        }
    }

    pub fn peek(&self, key: &str) -> Option<&Held> {
        self.lru.peek(key)
    }

    /// Enters a file written for `key`, dropping what it supersedes and
    /// the least recently used past the capacity.
    pub fn insert(&mut self, key: String, mut held: Held) -> Doomed {
        let mut doomed = Doomed::new();
        self.supersede(&key, &mut doomed);
        let primary = primary_of(&key);
        if primary.len() != key.len() {
            let v = self.vary.entry(primary.to_string()).or_default();
            v.names = names_of(&key);
            v.keys.insert(key.clone());
        }
        self.next_id += 1;
        held.id = self.next_id;
        let size = held.size;
        for (k, h) in self.lru.insert(key, held, size) {
            if !self.lru.contains_key(&k) {
                self.forget_variant(&k);
            }
            doomed.push((k, h.name));
        }
        doomed
    }

    /// [`Index::insert`] for a file the start-up scan found: the purges
    /// taken since the scan began apply to it first.
    pub fn insert_scanned(&mut self, key: String, mut held: Held) -> Doomed {
        let purge = (self.scan.as_ref()).and_then(|s| s.applied(&key, &held.tags));
        match purge {
            Some(Purge::Hard) => vec![(key, held.name)],
            Some(Purge::Soft(at)) => {
                soften(&mut held, crate::cache::store::unix_ms(at));
                self.insert(key, held)
            }
            None => self.insert(key, held),
        }
    }

    /// Whether `key` is still file `id`.
    pub fn holds_file(&self, key: &str, id: u64) -> bool {
        self.lru.peek(key).is_some_and(|h| h.id == id)
    }

    /// `key`, read back to memory, as the most recently used, if it is
    /// still file `id`.
    pub fn touch(&mut self, key: &str, id: u64) -> bool {
        self.holds_file(key, id) && self.lru.get(key).is_some()
    }

    /// Takes `key` out (its file found damaged) if it is still file `id`.
    pub fn take(&mut self, key: &str, id: u64) -> Option<Held> {
        self.lru.peek(key).filter(|h| h.id == id)?;
        let held = self.lru.remove(key)?;
        self.forget_variant(key);
        Some(held)
    }

    /// Memory stored a response under `key`: its file, and the files it
    /// makes unreachable (those of its URL keyed the other way), go;
    /// nothing when it is file `kept`, the response read back from it.
    pub fn forget(&mut self, key: &str, kept: Option<u64>) -> Doomed {
        let mut doomed = Doomed::new();
        if self.lru.is_empty() || kept.is_some_and(|id| self.holds_file(key, id)) {
            return doomed;
        }
        self.remove_into(key, &mut doomed);
        self.supersede(key, &mut doomed);
        doomed
    }

    /// As the memory store's insert drops what a response keyed another
    /// way makes unreachable (RFC 9111 §4.1: the newest response for a
    /// URI decides whether it varies).
    fn supersede(&mut self, key: &str, doomed: &mut Doomed) {
        let primary = primary_of(key);
        let unreachable = match self.vary.get(primary) {
            None => None,
            Some(_) if primary.len() == key.len() => self.vary.remove(primary),
            Some(v) if v.names != names_of(key) => self.vary.remove(primary),
            Some(_) => None,
        };
        for k in unreachable.iter().flat_map(|v| &v.keys) {
            self.remove_into(k, doomed);
        }
        if primary.len() != key.len() {
            self.remove_into(primary, doomed);
        }
    }

    fn remove_into(&mut self, key: &str, doomed: &mut Doomed) {
        if let Some(held) = self.lru.remove(key) {
            self.forget_variant(key);
            doomed.push((key.to_string(), held.name));
        }
    }

    fn forget_variant(&mut self, key: &str) {
        let primary = primary_of(key);
        if primary.len() == key.len() {
            return;
        }
        if let Some(v) = self.vary.get_mut(primary) {
            v.keys.remove(key);
            if v.keys.is_empty() {
                self.vary.remove(primary);
            }
        }
    }

    /// Purges what `target` names; returns how many it named and the
    /// files to delete.
    pub fn purge(&mut self, target: &Target, purge: Purge) -> (usize, Doomed) {
        if let Some(scan) = &mut self.scan {
            scan.note(target, purge);
        }
        let keys: Vec<String> = match target {
            Target::All => self.lru.iter().map(|(k, _)| k.clone()).collect(),
            Target::Primaries(primaries) => (primaries.iter())
                .flat_map(|p| {
                    let variants = self.vary.get(p.as_str()).map(|v| v.keys.iter());
                    variants.into_iter().flatten().chain([p])
                })
                .filter(|k| self.lru.contains_key(k.as_str()))
                .cloned()
                .collect(),
            Target::Group(group) => (self.lru.iter())
                .filter(|(k, h)| group.holds_tagged(k, &h.tags))
                .map(|(k, _)| k.clone())
                .collect(),
        };
        let mut doomed = Doomed::new();
        for key in &keys {
            match purge {
                Purge::Hard => self.remove_into(key, &mut doomed),
                Purge::Soft(at) => {
                    if let Some(held) = self.lru.peek_mut(key.as_str()) {
                        soften(held, crate::cache::store::unix_ms(at));
                    }
                }
            }
        }
        (keys.len(), doomed)
    }

    /// Drops the entries past their `keep_until` at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Doomed {
        let due: Vec<String> = (self.lru.iter())
            .filter(|(_, h)| h.keep_until <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut doomed = Doomed::new();
        for key in &due {
            self.remove_into(key, &mut doomed);
        }
        doomed
    }
}

/// Marks `held` stale as of `at` (a soft purge), if it is fresh then.
fn soften(held: &mut Held, at: u64) {
    if held.expires_at > at {
        held.soft = Some(held.soft.map_or(at, |s| s.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;
    use std::time::{Duration, UNIX_EPOCH};

    pub(crate) fn held(name: &str, size: u64, tags: &str) -> Held {
        let mut h = Headers::new();
        h.push("Surrogate-Key", tags);
        Held {
            id: 0,
            name: name.to_string(),
            size,
            expires_at: 5_000,
            keep_until: 10_000,
            tags: Tags::of_response(&h),
            soft: None,
        }
    }

    fn scanned(capacity: u64) -> Index {
        let mut index = Index::new(capacity);
        index.scanned();
        index
    }

    fn names(doomed: &Doomed) -> Vec<&str> {
        doomed.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn purges_by_url_prefix_tag_and_all_reach_it() {
        let mut index = scanned(1 << 20);
        for (key, tags) in [("h/a", "t1"), ("h/b", "t2"), ("h/b/c", "t1"), ("x/d", "t3")] {
            assert!(index.insert(key.into(), held(key, 10, tags)).is_empty());
        }
        let (n, doomed) = index.purge(&Target::Primaries(vec!["h/a".into()]), Purge::Hard);
        assert_eq!((n, names(&doomed)), (1, vec!["h/a"]));
        let prefix = Target::Group(Group::Prefixes(vec!["h/b".into()]));
        let (n, doomed) = index.purge(&prefix, Purge::Hard);
        assert_eq!(n, 2);
        assert!(!index.holds("h/b") && !index.holds("h/b/c") && index.holds("x/d"));
        assert_eq!(doomed.len(), 2);
        let mut h = Headers::new();
        h.push("Surrogate-Key", "t3");
        let tag = Target::Group(Group::Tags(Tags::of_purge(&h).unwrap()));
        // Soft: kept, marked stale as of the purge.
        let at = UNIX_EPOCH + Duration::from_millis(2_000);
        let (n, doomed) = index.purge(&tag, Purge::Soft(at));
        assert_eq!((n, doomed.len()), (1, 0));
        assert_eq!(index.peek("x/d").unwrap().soft, Some(2_000));
        let (n, doomed) = index.purge(&tag, Purge::Hard);
        assert_eq!((n, names(&doomed)), (1, vec!["x/d"]));
        assert_eq!((index.len(), index.bytes()), (0, 0));
    }

    #[test]
    fn eviction_past_the_capacity_dooms_the_least_recently_used() {
        let mut index = scanned(30);
        for key in ["a", "b", "c"] {
            assert!(index.insert(key.into(), held(key, 10, "")).is_empty());
        }
        let doomed = index.insert("d".into(), held("d", 10, ""));
        assert_eq!(names(&doomed), vec!["a"]);
        // Larger than the whole index: itself.
        let doomed = index.insert("e".into(), held("e", 31, ""));
        assert_eq!(names(&doomed), vec!["e"]);
        assert_eq!(index.bytes(), 30);
    }

    #[test]
    fn variants_are_found_by_the_names_they_vary_on_and_go_with_their_url() {
        let mut index = scanned(1 << 20);
        let mut req = Headers::new();
        req.push("accept-language", "fr");
        let key = policy::variant_key("h/v", &["accept-language".to_string()], &req);
        index.insert(key.clone(), held("v", 10, ""));
        assert_eq!(index.key_for("h/v", &req), key);
        assert_eq!(index.key_for("h/w", &req), "h/w");
        // The URL stored without Vary since: the variant is unreachable.
        let doomed = index.forget("h/v", None);
        assert_eq!(names(&doomed), vec![key.as_str()]);
        assert_eq!(index.key_for("h/v", &req), "h/v");
        index.insert(key.clone(), held("v", 10, ""));
        let (n, _) = index.purge(&Target::Primaries(vec!["h/v".into()]), Purge::Hard);
        assert_eq!((n, index.len()), (1, 0));
    }

    #[test]
    fn purges_during_the_scan_apply_to_what_it_finds_after() {
        let mut index = Index::new(1 << 20);
        index.purge(&Target::Primaries(vec!["h/a".into()]), Purge::Hard);
        let soft = UNIX_EPOCH + Duration::from_millis(3_000);
        let tag = |t: &str| {
            let mut h = Headers::new();
            h.push("Surrogate-Key", t);
            Target::Group(Group::Tags(Tags::of_purge(&h).unwrap()))
        };
        index.purge(&tag("t2"), Purge::Soft(soft));
        assert_eq!(
            names(&index.insert_scanned("h/a".into(), held("a", 1, ""))),
            ["h/a"]
        );
        assert!(index
            .insert_scanned("h/b".into(), held("b", 1, "t2"))
            .is_empty());
        assert_eq!(index.peek("h/b").unwrap().soft, Some(3_000));
        index.scanned();
        assert!(index
            .insert_scanned("h/a".into(), held("a", 1, ""))
            .is_empty());
    }

    #[test]
    fn expiry_drops_what_is_past_its_time() {
        let mut index = scanned(1 << 20);
        let mut late = held("b", 10, "");
        late.keep_until = 20_000;
        index.insert("a".into(), held("a", 10, ""));
        index.insert("b".into(), late);
        assert!(index.expire(9_999).is_empty());
        assert_eq!(names(&index.expire(10_000)), ["a"]);
        assert_eq!(index.len(), 1);
    }
}
