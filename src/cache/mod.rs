//! The response cache's pure building blocks: [`lru`] keeps entries by recency
//! within a byte budget, [`persist`] reads and writes the snapshot file. Neither
//! knows HTTP; the proxy combines them with the caching policy.

pub mod lru;
pub mod persist;
