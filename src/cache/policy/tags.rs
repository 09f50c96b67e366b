//! `Surrogate-Key`: the tags a backend gives a response (Fastly's field;
//! Varnish's xkey, Cloudflare's Cache-Tag), so that one purge drops every
//! stored response with a tag, whatever its URL: a product's page, and
//! every listing that shows the product.

use crate::http::Headers;

/// The response field that tags a response, and the request field of the
/// admin listener's `PURGE` that names the tags to purge.
pub const SURROGATE_KEY: &str = "surrogate-key";

/// Most tags a response is stored with (the first ones; the rest are
/// ignored, the response stored all the same), and most a purge may name.
/// A purge's walk compares every entry's tags with its own under the cache
/// lock: both bounded, a slice of the walk stays bounded too.
pub const MAX_TAGS: usize = 64;

/// Longest tag, in bytes. A longer one in a response is ignored rather
/// than cut short, which could make it another tag.
pub const MAX_TAG_LEN: usize = 256;

/// What a small allocation takes beyond the bytes asked for, before it is
/// rounded up to a multiple of 16 bytes, at least 32 (glibc's malloc, the
/// system allocator).
const ALLOCATION_HEADER: usize = 8;

/// A set of tags, each once, sorted (looked up by binary search as a
/// purge walks the cache). Compared byte for byte: `Product-42` is not
/// `product-42`, as with Fastly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags(Box<[Box<str>]>);

/// Why a purge's `Surrogate-Key` names no set of tags.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagsError {
    #[error("Surrogate-Key names no tag")]
    Empty,
    #[error("Surrogate-Key names more than {MAX_TAGS} tags")]
    TooMany,
    #[error("a tag is longer than {MAX_TAG_LEN} bytes")]
    TooLong,
    #[error("a tag holds a byte that is not visible ASCII")]
    NotVisible,
}

impl Tags {
    /// The tags a response's `Surrogate-Key` fields give: the first
    /// [`MAX_TAGS`] valid ones. One that is too long or holds a byte that
    /// is not visible ASCII is left out alone.
    pub fn of_response(headers: &Headers) -> Tags {
        let mut tags: Vec<Box<str>> = Vec::new();
        for tag in pieces(headers).filter_map(|piece| tag(piece).ok()) {
            if tags.len() == MAX_TAGS {
                break;
            }
            if !tags.iter().any(|t| **t == *tag) {
                tags.push(tag.into());
            }
        }
        Tags::sorted(tags)
    }

    /// The tags a purge's `Surrogate-Key` fields name, every one of them:
    /// a tag left out would leave its responses stored, unknown to the
    /// operator who asked for them to go.
    pub fn of_purge(headers: &Headers) -> Result<Tags, TagsError> {
        let mut tags: Vec<Box<str>> = Vec::new();
        for piece in pieces(headers) {
            let tag = tag(piece)?;
            if tags.iter().any(|t| **t == *tag) {
                continue;
            }
            if tags.len() == MAX_TAGS {
                return Err(TagsError::TooMany);
            }
            tags.push(tag.into());
        }
        if tags.is_empty() {
            return Err(TagsError::Empty);
        }
        Ok(Tags::sorted(tags))
    }

    fn sorted(mut tags: Vec<Box<str>>) -> Tags {
        tags.sort_unstable();
        Tags(tags.into_boxed_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|tag| &**tag)
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.0.binary_search_by(|t| (**t).cmp(tag)).is_ok()
    }

    /// Whether the two sets share a tag: the smaller one's looked up in
    /// the larger, at most [`MAX_TAGS`] binary searches.
    pub fn shares_any(&self, other: &Tags) -> bool {
        let (few, many) = match self.0.len() <= other.0.len() {
            true => (self, other),
            false => (other, self),
        };
        !many.is_empty() && few.iter().any(|tag| many.contains(tag))
    }

    /// The bytes the set holds in memory, to weigh an entry by. Each tag
    /// is an allocation of its own, which takes more than its bytes: a
    /// tag of one byte is its pointer and 32 bytes of the allocator's
    /// (counted at its bytes alone, an entry of 64 short tags held twice
    /// its weight).
    pub fn weight(&self) -> usize {
        let per_tag = std::mem::size_of::<Box<str>>();
        let allocation = |len: usize| (len + ALLOCATION_HEADER).next_multiple_of(16).max(32);
        self.0
            .iter()
            .map(|tag| allocation(tag.len()) + per_tag)
            .sum()
    }
}

/// The pieces of every `Surrogate-Key` line. Tags are separated by spaces
/// (Fastly's and xkey's way); a tab or a comma separates too: a field sent
/// on several lines may reach the cache as one, joined by commas (RFC 9110
/// §5.3).
fn pieces(headers: &Headers) -> impl Iterator<Item = &[u8]> {
    (headers.get_all(SURROGATE_KEY))
        .flat_map(|line| line.split(|&b| matches!(b, b' ' | b'\t' | b',')))
        .filter(|piece| !piece.is_empty())
}

/// A piece as a tag: visible ASCII (no byte a header could be split or
/// spelled two ways with), at most [`MAX_TAG_LEN`] bytes.
fn tag(piece: &[u8]) -> Result<&str, TagsError> {
    if piece.len() > MAX_TAG_LEN {
        return Err(TagsError::TooLong);
    }
    if !piece.iter().all(u8::is_ascii_graphic) {
        return Err(TagsError::NotVisible);
    }
    std::str::from_utf8(piece).map_err(|_| TagsError::NotVisible)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&[u8]]) -> Headers {
        let mut h = Headers::new();
        for line in lines {
            h.push("Surrogate-Key", line);
        }
        h
    }

    fn listed(tags: &Tags) -> Vec<&str> {
        tags.iter().collect()
    }

    #[test]
    fn a_response_s_tags_are_separated_by_spaces_tabs_and_commas_on_every_line() {
        let tags = Tags::of_response(&headers(&[
            b"  product-42 category-7\thome ",
            b"product-42,a:b/c, d",
        ]));
        assert_eq!(
            listed(&tags),
            ["a:b/c", "category-7", "d", "home", "product-42"]
        );
        assert!(tags.contains("home") && !tags.contains("Home"));
        assert!(Tags::of_response(&headers(&[b"", b" , "])).is_empty());
        assert!(Tags::of_response(&Headers::new()).is_empty());
        // Other fields are not tags.
        let mut h = Headers::new();
        h.push("Cache-Tag", "x");
        h.push("xkey", "y");
        assert!(Tags::of_response(&h).is_empty());
    }

    #[test]
    fn a_response_keeps_its_first_64_tags_and_leaves_out_the_bad_ones_alone() {
        let many: Vec<String> = (0..100).map(|i| format!("t{i:03}")).collect();
        let line = many.join(" ");
        let tags = Tags::of_response(&headers(&[line.as_bytes()]));
        assert_eq!(listed(&tags), many[..MAX_TAGS]);
        // A tag named again takes no place of its own.
        let again = format!("t000 {line}");
        assert_eq!(Tags::of_response(&headers(&[again.as_bytes()])), tags);
        // Too long, or a byte that is not visible ASCII: that tag alone.
        let long = "x".repeat(MAX_TAG_LEN + 1);
        let longest = "y".repeat(MAX_TAG_LEN);
        let line = format!("a {long} {longest} b");
        let tags = Tags::of_response(&headers(&[line.as_bytes(), b"caf\xe9 c\x01 d"]));
        assert_eq!(listed(&tags), ["a", "b", "d", longest.as_str()]);
    }

    #[test]
    fn a_purge_names_every_tag_or_is_refused() {
        let tags = Tags::of_purge(&headers(&[b"product-42 category-7", b"product-42"]));
        assert_eq!(listed(&tags.unwrap()), ["category-7", "product-42"]);
        assert_eq!(Tags::of_purge(&headers(&[b" "])), Err(TagsError::Empty));
        assert_eq!(Tags::of_purge(&Headers::new()), Err(TagsError::Empty));
        let long = format!("a {}", "x".repeat(MAX_TAG_LEN + 1));
        assert_eq!(
            Tags::of_purge(&headers(&[long.as_bytes()])),
            Err(TagsError::TooLong)
        );
        assert_eq!(
            Tags::of_purge(&headers(&[b"a caf\xe9"])),
            Err(TagsError::NotVisible)
        );
        let most: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        let line = most.join(" ");
        assert!(Tags::of_purge(&headers(&[line.as_bytes(), b"t0"])).is_ok());
        let over = format!("{line} one-more");
        assert_eq!(
            Tags::of_purge(&headers(&[over.as_bytes()])),
            Err(TagsError::TooMany)
        );
    }

    #[test]
    fn two_sets_share_a_tag_or_not_whichever_is_larger() {
        let of = |line: &str| Tags::of_response(&headers(&[line.as_bytes()]));
        let page = of("product-42 category-7 home");
        assert!(page.shares_any(&of("product-42")));
        assert!(of("x y z w product-42").shares_any(&page));
        assert!(!page.shares_any(&of("product-4 product-420 Home")));
        assert!(!page.shares_any(&Tags::default()));
        assert!(!Tags::default().shares_any(&page));
        assert_eq!(Tags::default().weight(), 0);
    }

    #[test]
    fn each_tag_weighs_at_least_the_smallest_allocation() {
        let of = |line: &str| Tags::of_response(&headers(&[line.as_bytes()]));
        let pointer = std::mem::size_of::<Box<str>>();
        // One byte asked for takes 32 of the allocator's, and so do 24;
        // past that, the bytes and a header, rounded up to 16.
        assert_eq!(of("a").weight(), 32 + pointer);
        assert_eq!(of(&"b".repeat(24)).weight(), 32 + pointer);
        assert_eq!(of(&"c".repeat(25)).weight(), 48 + pointer);
        let short: Vec<String> = (0..MAX_TAGS).map(|i| format!("{i:x}")).collect();
        assert_eq!(of(&short.join(" ")).weight(), MAX_TAGS * (32 + pointer));
    }
}
