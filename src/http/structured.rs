//! Structured Field Dictionaries (RFC 8941 §3.2, parsed as §4.2.2 says):
//! the syntax of the targeted cache-control fields of RFC 9213
//! (`CDN-Cache-Control: max-age=60, must-revalidate`). Strict, as the RFC
//! asks: a value that breaks any rule fails whole, and the field is then
//! read as absent, where a Cache-Control parser would guess.

/// A member's value when it is an Item; its parameters are checked and
/// dropped (no cache directive has any).
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Integer(i64),
    Decimal(f64),
    String(String),
    Token(String),
    /// Checked to be base64 characters, not decoded: nothing reads one.
    ByteSequence,
    Boolean(bool),
    /// An Inner List, checked and not kept: no cache directive takes one.
    InnerList,
}

/// The members of a dictionary in the order they came, a repeated key
/// again each time: its last value is its value (§4.2.2 overwrites), which
/// a reader that applies them in order gets for free. (Keeping each key
/// once would cost a search per member: quadratic in a field a backend
/// can make 64 KiB long.)
pub type Dictionary = Vec<(String, Item)>;

/// Parses the lines of a field, joined by commas as §4.2 says, as one
/// Dictionary. `None` for anything that is not one, an empty value
/// included. Empty lines are no members, as in any list field.
pub fn parse_dictionary<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<Dictionary> {
    let mut joined = Vec::new();
    for line in lines {
        if line.iter().all(|b| matches!(b, b' ' | b'\t')) {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(line);
    }
    let mut parser = Parser {
        input: &joined,
        at: 0,
    };
    parser.skip(b" ");
    let dictionary = parser.dictionary()?;
    parser.skip(b" ");
    (parser.at == joined.len() && !dictionary.is_empty()).then_some(dictionary)
}

/// Integers have at most 15 digits; a decimal's integer part at most 12,
/// its fraction at most 3 (§3.3.1, §3.3.2).
const INTEGER_DIGITS: usize = 15;
const DECIMAL_INTEGER_DIGITS: usize = 12;
const DECIMAL_FRACTION_DIGITS: usize = 3;

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn skip(&mut self, bytes: &[u8]) {
        while self.peek().is_some_and(|b| bytes.contains(&b)) {
            self.at += 1;
        }
    }

    /// §4.2.2.
    fn dictionary(&mut self) -> Option<Dictionary> {
        let mut members: Dictionary = Vec::new();
        while self.peek().is_some() {
            let key = self.key()?;
            let value = if self.eat(b'=') {
                self.item_or_inner_list()?
            } else {
                self.parameters()?;
                Item::Boolean(true)
            };
            members.push((key, value));
            self.skip(b" \t");
            if self.peek().is_none() {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
            self.skip(b" \t");
            // A trailing comma.
            self.peek()?;
        }
        Some(members)
    }

    /// §4.2.1.2.
    fn item_or_inner_list(&mut self) -> Option<Item> {
        if !self.eat(b'(') {
            let item = self.bare_item()?;
            self.parameters()?;
            return Some(item);
        }
        loop {
            self.skip(b" ");
            if self.eat(b')') {
                self.parameters()?;
                return Some(Item::InnerList);
            }
            self.bare_item()?;
            self.parameters()?;
            if !matches!(self.peek()?, b' ' | b')') {
                return None;
            }
        }
    }

    /// §4.2.3.2: parameters are checked, not kept.
    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip(b" ");
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    /// §4.2.3.3: `lcalpha / "*"`, then `lcalpha / DIGIT / "_" / "-" / "." / "*"`.
    fn key(&mut self) -> Option<String> {
        let start = self.at;
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
        {
            return None;
        }
        self.skip(b"abcdefghijklmnopqrstuvwxyz0123456789_-.*");
        Some(String::from_utf8_lossy(&self.input[start..self.at]).into_owned())
    }

    /// §4.2.3.1.
    fn bare_item(&mut self) -> Option<Item> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b'*' | b'a'..=b'z' | b'A'..=b'Z' => Some(self.token()),
            b':' => self.byte_sequence(),
            b'?' => self.boolean(),
            _ => None,
        }
    }

    /// §4.2.4.
    fn number(&mut self) -> Option<Item> {
        let sign = if self.eat(b'-') { -1 } else { 1 };
        let whole = self.digits();
        if whole.is_empty() {
            return None;
        }
        if !self.eat(b'.') {
            let fits = whole.len() <= INTEGER_DIGITS;
            return fits.then(|| Item::Integer(sign * self.value(whole)));
        }
        let fraction = self.digits();
        let fits = whole.len() <= DECIMAL_INTEGER_DIGITS
            && (1..=DECIMAL_FRACTION_DIGITS).contains(&fraction.len());
        fits.then(|| {
            let scale = 10f64.powi(fraction.len() as i32);
            let value = self.value(whole) as f64 + self.value(fraction) as f64 / scale;
            Item::Decimal(f64::from(sign as i32) * value)
        })
    }

    /// The run of digits from here on, as a range of the input.
    fn digits(&mut self) -> std::ops::Range<usize> {
        let start = self.at;
        self.skip(b"0123456789");
        start..self.at
    }

    /// The value of a run of at most 15 digits (no overflow).
    fn value(&self, digits: std::ops::Range<usize>) -> i64 {
        self.input[digits]
            .iter()
            .fold(0, |n, d| n * 10 + i64::from(d - b'0'))
    }

    /// §4.2.5: printable ASCII; `\` escapes only `"` and `\`.
    fn string(&mut self) -> Option<Item> {
        self.eat(b'"');
        let mut out = String::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(Item::String(out));
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek().filter(|b| matches!(b, b'"' | b'\\'))?;
                    out.push(char::from(escaped));
                }
                b @ 0x20..=0x7e => out.push(char::from(b)),
                _ => return None,
            }
            self.at += 1;
        }
    }

    /// §4.2.6: a tchar, `:` or `/` after the first character.
    fn token(&mut self) -> Item {
        let start = self.at;
        self.at += 1;
        while self
            .peek()
            .is_some_and(|b| crate::http::head::is_tchar(b) || b == b':' || b == b'/')
        {
            self.at += 1;
        }
        Item::Token(String::from_utf8_lossy(&self.input[start..self.at]).into_owned())
    }

    /// §4.2.7.
    fn byte_sequence(&mut self) -> Option<Item> {
        self.eat(b':');
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            self.at += 1;
        }
        self.eat(b':').then_some(Item::ByteSequence)
    }

    /// §4.2.8.
    fn boolean(&mut self) -> Option<Item> {
        self.eat(b'?');
        let value = match self.peek()? {
            b'1' => true,
            b'0' => false,
            _ => return None,
        };
        self.at += 1;
        Some(Item::Boolean(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Option<Dictionary> {
        parse_dictionary([value.as_bytes()])
    }

    fn members(value: &str) -> Vec<(String, Item)> {
        parse(value).unwrap_or_else(|| panic!("{value:?} should parse"))
    }

    #[test]
    fn cache_directives_parse_as_members() {
        assert_eq!(
            members("max-age=60, must-revalidate, no-cache=\"set-cookie\""),
            vec![
                ("max-age".to_string(), Item::Integer(60)),
                ("must-revalidate".to_string(), Item::Boolean(true)),
                ("no-cache".to_string(), Item::String("set-cookie".into())),
            ]
        );
        assert_eq!(
            members("  none  "),
            vec![("none".to_string(), Item::Boolean(true))]
        );
        assert_eq!(
            members("a=?0,b=-12,c=1.5,d=tok/en:x,e=:aGk=:,f=(1 \"x\" y);p,g;q=2"),
            vec![
                ("a".to_string(), Item::Boolean(false)),
                ("b".to_string(), Item::Integer(-12)),
                ("c".to_string(), Item::Decimal(1.5)),
                ("d".to_string(), Item::Token("tok/en:x".into())),
                ("e".to_string(), Item::ByteSequence),
                ("f".to_string(), Item::InnerList),
                ("g".to_string(), Item::Boolean(true)),
            ]
        );
        assert_eq!(
            members("s=\"a \\\"quoted\\\" \\\\ one\""),
            vec![("s".to_string(), Item::String("a \"quoted\" \\ one".into()))]
        );
    }

    #[test]
    fn an_explicit_true_reads_as_a_bare_key_does() {
        assert_eq!(members("a=?1"), members("a"));
        assert_eq!(
            members("a=?1"),
            vec![("a".to_string(), Item::Boolean(true))]
        );
    }

    #[test]
    fn a_repeated_key_comes_again_for_its_last_value_to_win() {
        assert_eq!(
            members("max-age=10, public, max-age=20"),
            vec![
                ("max-age".to_string(), Item::Integer(10)),
                ("public".to_string(), Item::Boolean(true)),
                ("max-age".to_string(), Item::Integer(20)),
            ]
        );
    }

    #[test]
    fn lines_are_joined_into_one_dictionary_empty_ones_left_out() {
        let lines: [&[u8]; 4] = [b"", b"max-age=10", b" \t", b"no-store"];
        assert_eq!(
            parse_dictionary(lines),
            Some(vec![
                ("max-age".to_string(), Item::Integer(10)),
                ("no-store".to_string(), Item::Boolean(true)),
            ])
        );
        let empty: [&[u8]; 2] = [b"", b" "];
        assert_eq!(parse_dictionary(empty), None);
    }

    #[test]
    fn a_field_of_many_members_keeps_each_in_order() {
        // 8,000 distinct keys, as long a field as a backend may send.
        let keys: Vec<String> = (0..8000).map(|i| format!("k{i}")).collect();
        let value = keys.join(",");
        let parsed = members(&value);
        assert_eq!(parsed.len(), 8000);
        assert!(parsed
            .iter()
            .zip(&keys)
            .all(|((k, v), key)| k == key && *v == Item::Boolean(true)));
    }

    #[test]
    fn anything_else_fails_whole() {
        for bad in [
            "",
            "   ",
            "Max-Age=60",
            "max-age=60,",
            "max-age=60,,public",
            ", max-age=60",
            "max-age = 60",
            "max-age=",
            "max-age=60 public",
            "max-age=\"60",
            "max-age=1234567890123456",
            "max-age=1.2345",
            "max-age=1.",
            "max-age=1234567890123.5",
            "max-age=-",
            "s=\"\\n\"",
            "s=\"tab\there\"",
            "b=?2",
            "e=:aGk=",
            "e=:a*k:",
            "f=(1 2",
            "f=(1,2)",
            "p;Q=1",
            "p;q=",
            "1a=1",
            "_a",
            "a=é",
            "a=@",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whitespace_rules_are_the_rfcs() {
        // Tabs around commas, spaces before the first member and after the
        // last; nowhere else.
        assert!(parse(" a=1 ,\tb ").is_some());
        assert!(parse("\ta=1").is_none());
        assert!(parse("a=1;  p=2").is_some());
        assert!(parse("a=1 ;p=2").is_none());
        assert!(parse("f=(  1   2  )").is_some());
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse_dictionary([bytes.as_slice()]);
        }

        #[test]
        fn integers_read_back(n in -999_999_999_999_999i64..=999_999_999_999_999) {
            let value = format!("k={n}");
            proptest::prop_assert_eq!(
                parse(&value),
                Some(vec![("k".to_string(), Item::Integer(n))])
            );
        }
    }
}
