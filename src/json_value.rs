//! Just enough JSON reading (RFC 8259) for what clients and identity
//! providers send: a JWT's header and claims, a JWKS file of keys. Strict,
//! as input from anyone must be read: the whole text one value, UTF-8,
//! no duplicate member names (two `alg`s would let two readers see two
//! tokens), nesting and size bounded.

use std::fmt;

/// The deepest nesting read: claims are flat, a JWKS two levels deep.
const MAX_DEPTH: usize = 32;

/// The longest text read: a JWKS of a few dozen RSA keys fits many times.
pub const MAX_JSON: usize = 1024 * 1024;

/// A JSON value. Objects keep their members in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for JsonError {}

impl Value {
    /// The member `name` of an object.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Reads `text`, which must be one JSON value (blanks around it aside).
pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
    if text.len() > MAX_JSON {
        return Err(JsonError {
            at: MAX_JSON,
            what: "text too long",
        });
    }
    let mut reader = Reader { text, at: 0 };
    let value = reader.value(0)?;
    reader.blanks();
    if reader.at != text.len() {
        return Err(reader.error("more after the value"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> JsonError {
        JsonError { at: self.at, what }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, JsonError> {
        match self.text[self.at..].starts_with(word) {
            true => {
                self.at += word.len();
                Ok(value)
            }
            false => Err(self.error("not a value")),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        self.blanks();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("not a value")),
            None => Err(self.error("no value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.at += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        self.blanks();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.blanks();
            if self.peek() != Some(b'"') {
                return Err(self.error("a member's name must be a string"));
            }
            let name = self.string()?;
            if members.iter().any(|(n, _)| *n == name) {
                return Err(self.error("a member named twice"));
            }
            self.blanks();
            if self.peek() != Some(b':') {
                return Err(self.error("`:` expected"));
            }
            self.at += 1;
            let value = self.value(depth + 1)?;
            members.push((name, value));
            self.blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error("`,` or `}` expected")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.at += 1;
        let mut items = Vec::new();
        self.blanks();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("`,` or `]` expected")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.at += 1;
            }
            r.at - from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let first = self.peek();
        let whole = digits(self);
        if whole == 0 || (first == Some(b'0') && whole > 1) {
            return Err(self.error("not a number"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return Err(self.error("not a number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("not a number"));
            }
        }
        // ASCII digits and signs: UTF-8, and a float Rust reads.
        let text = std::str::from_utf8(&self.text[start..self.at]).unwrap_or_default();
        text.parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .map(Value::Number)
            .ok_or_else(|| self.error("not a number"))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("string not closed"));
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let escaped = self.peek().ok_or_else(|| self.error("string not closed"))?;
                    self.at += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.error("unknown escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.error("control character in a string")),
                byte => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("not UTF-8"))
    }

    /// After `\u`: four hex digits, a surrogate pair's two escapes.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.text[self.at..].starts_with(b"\\u") {
                    return Err(self.error("half a surrogate pair"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("half a surrogate pair"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("half a surrogate pair")),
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error("not a character"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("`\\u` needs four hex digits"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("not hex"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("not hex"));
        }
        self.at += 4;
        u32::from_str_radix(text, 16).map_err(|_| self.error("not hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_as_rfc_8259_writes_them() {
        let v = parse(br#" {"alg":"RS256","n":[1,-2.5e3,0.5,true,false,null],"o":{}} "#).unwrap();
        assert_eq!(v.get("alg").and_then(Value::as_str), Some("RS256"));
        let n = v.get("n").and_then(Value::as_array).unwrap();
        assert_eq!(n[0].as_f64(), Some(1.0));
        assert_eq!(n[1].as_f64(), Some(-2500.0));
        assert_eq!(
            &n[3..],
            [Value::Bool(true), Value::Bool(false), Value::Null]
        );
        assert_eq!(v.get("o"), Some(&Value::Object(vec![])));
        // An exponent's sign, either way.
        let n = parse(b"[1E+2,25e-1]").unwrap();
        assert_eq!(
            n,
            Value::Array(vec![Value::Number(100.0), Value::Number(2.5)])
        );
        assert_eq!(v.get("x"), None);
        let s = parse(br#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 \u20ac""#).unwrap();
        assert_eq!(
            s.as_str(),
            Some("a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1f600} \u{20ac}")
        );
        assert_eq!(parse("\"é\"".as_bytes()).unwrap().as_str(), Some("é"));
    }

    #[test]
    fn what_is_not_strict_json_is_refused() {
        let bad: &[&[u8]] = &[
            b"",
            b"{",
            b"{\"a\":1,}",
            b"[1,]",
            b"{\"a\":1 \"b\":2}",
            b"{a:1}",
            b"{\"alg\":\"none\",\"alg\":\"HS256\"}",
            b"01",
            b"1.",
            b".5",
            b"1e",
            b"-",
            b"+1",
            b"1e999",
            b"NaN",
            b"tru",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\\u12\"",
            b"\"a\nb\"",
            b"\"\xff\"",
            b"\"open",
            b"1 2",
            b"{} x",
        ];
        for text in bad {
            assert!(parse(text).is_err(), "{:?}", String::from_utf8_lossy(text));
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert_eq!(parse(deep.as_bytes()).unwrap_err().what, "nested too deep");
        let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(fine.as_bytes()).is_ok());
        // Objects in objects count as deep as arrays in arrays.
        let objects = |depth: usize| r#"{"a":"#.repeat(depth) + "1" + &"}".repeat(depth);
        let deep = objects(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()).unwrap_err().what, "nested too deep");
        assert!(parse(objects(MAX_DEPTH).as_bytes()).is_ok());
        let long = vec![b' '; MAX_JSON + 1];
        assert_eq!(parse(&long).unwrap_err().what, "text too long");
    }

    #[test]
    fn a_text_of_up_to_one_mebibyte_is_read() {
        // A JWKS of many keys, or a claim-heavy token, up to 1 MiB whole.
        let mut most = vec![b' '; 1024 * 1024];
        most[0] = b'7';
        assert_eq!(parse(&most), Ok(Value::Number(7.0)));
        most.push(b' ');
        assert_eq!(parse(&most).unwrap_err().what, "text too long");
    }

    #[test]
    fn an_error_says_what_and_at_which_byte() {
        // As a key file's error reads in a configuration error.
        assert_eq!(
            parse(b"[1,]").unwrap_err().to_string(),
            "not a value at byte 3"
        );
    }
}
