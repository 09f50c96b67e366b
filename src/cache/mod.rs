//! The response cache.
//!
//! - `lru`: a hand-written LRU list with byte capacity; knows nothing of HTTP.
//! - `policy`: RFC 9111 rules: storable, freshness, age, keys, conditionals.
//! - `store`: the cache proper: entries, Vary index, expiry, coalescing.
//! - `disk`: the disk tier behind memory (`cache_disk_dir`): evicted
//!   entries' files, their index, and their way back.
//! - `persist`: the snapshot file format; knows bytes on disk, not recency.
//! - `timer`: the thread that expires entries and writes snapshots.
//! - `uses`: how often each URL not stored was asked for (`cache_min_uses`).

pub mod disk;
pub mod lru;
pub mod persist;
pub mod policy;
pub mod store;
pub mod timer;
pub mod uses;

pub use store::{Cache, Entry, Listed, Listing, Named, Purge};
