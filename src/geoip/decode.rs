//! The MaxMind DB data section's fields: a control byte (a type in its
//! top three bits, a size in its low five, each maybe extended by the
//! bytes after it), then the payload. Only what leads to a country's code
//! is decoded (maps, strings, pointers, unsigned integers); every other
//! type is stepped over by its size, checked as the spec says it must be.
//!
//! The bytes come from a file anyone may have replaced: each position is
//! checked before it is read, a pointer may not lead to another (so no
//! chain of them can loop), nesting is bounded, and so is the number of
//! fields one question reads, so no file can make a request wait.

use super::GeoIpError;

/// Deepest nesting of maps and arrays stepped over; the databases'
/// records nest four or five deep.
const MAX_DEPTH: usize = 32;

/// Most fields read to answer one question: a country database's record
/// has some tens, a city database's some hundreds.
pub(super) const MAX_FIELDS: usize = 4096;

/// The types of the spec, by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pointer,
    Text,
    Double,
    Bytes,
    Uint16,
    Uint32,
    Map,
    Int32,
    Uint64,
    Uint128,
    Array,
    Boolean,
    Float,
}

impl Kind {
    fn of(number: u8) -> Result<Kind, GeoIpError> {
        Ok(match number {
            1 => Kind::Pointer,
            2 => Kind::Text,
            3 => Kind::Double,
            4 => Kind::Bytes,
            5 => Kind::Uint16,
            6 => Kind::Uint32,
            7 => Kind::Map,
            8 => Kind::Int32,
            9 => Kind::Uint64,
            10 => Kind::Uint128,
            11 => Kind::Array,
            14 => Kind::Boolean,
            15 => Kind::Float,
            // 12 and 13 (the cache container, the end marker) are the
            // writer's own, never in a field: as unknown as 16 and up.
            _ => return Err(GeoIpError::Data("a field of an unknown type")),
        })
    }
}

/// A field read, as far as a country's code needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Value<'a> {
    /// This many pairs, the first at this position.
    Map(usize, usize),
    Text(&'a [u8]),
    Uint(u64),
    /// Any other type, not read.
    Other,
}

/// A field's control: its type, its size and where its payload begins.
struct Head {
    kind: Kind,
    size: usize,
    payload: usize,
}

/// One data section (or the metadata, which is read alike): a pointer's
/// offset counts from its start, and a question's reads are counted.
pub(super) struct Section<'a> {
    bytes: &'a [u8],
    /// Fields left to read before the question is given up.
    budget: usize,
}

impl<'a> Section<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Section<'a> {
        Section {
            bytes,
            budget: MAX_FIELDS,
        }
    }

    fn byte(&self, at: usize) -> Result<u8, GeoIpError> {
        self.bytes.get(at).copied().ok_or(GeoIpError::Truncated)
    }

    fn slice(&self, at: usize, len: usize) -> Result<&'a [u8], GeoIpError> {
        let end = at.checked_add(len).ok_or(GeoIpError::Truncated)?;
        self.bytes.get(at..end).ok_or(GeoIpError::Truncated)
    }

    /// `len` bytes at `at` as a big-endian number (at most 8 of them).
    fn number(&self, at: usize, len: usize) -> Result<u64, GeoIpError> {
        let bytes = self.slice(at, len)?;
        Ok(bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b)))
    }

    /// The control at `at`, counted against the question's budget.
    fn head(&mut self, at: usize) -> Result<Head, GeoIpError> {
        self.budget = (self.budget.checked_sub(1)).ok_or(GeoIpError::Data("too many fields"))?;
        let control = self.byte(at)?;
        let mut next = at + 1;
        let kind = match control >> 5 {
            0 => {
                next += 1;
                Kind::of(self.byte(at + 1)?.saturating_add(7))?
            }
            number => Kind::of(number)?,
        };
        // A pointer's size bits are its own: read by `pointer`.
        if kind == Kind::Pointer {
            return Ok(Head {
                kind,
                size: usize::from(control & 0x1f),
                payload: next,
            });
        }
        let (size, extra) = match control & 0x1f {
            29 => (29 + self.number(next, 1)?, 1),
            30 => (285 + self.number(next, 2)?, 2),
            31 => (65_821 + self.number(next, 3)?, 3),
            small => (u64::from(small), 0),
        };
        let size = usize::try_from(size).map_err(|_| GeoIpError::Truncated)?;
        Ok(Head {
            kind,
            size,
            payload: next + extra,
        })
    }

    /// Where the pointer whose control size bits are `bits`, its bytes at
    /// `at`, points; and the position after it.
    fn pointer(&self, bits: usize, at: usize) -> Result<(usize, usize), GeoIpError> {
        let high = (bits & 0x07) as u64;
        let (target, len) = match bits >> 3 {
            0 => ((high << 8) | self.number(at, 1)?, 1),
            1 => (2_048 + ((high << 16) | self.number(at, 2)?), 2),
            2 => (526_336 + ((high << 24) | self.number(at, 3)?), 3),
            _ => (self.number(at, 4)?, 4),
        };
        let target = usize::try_from(target).map_err(|_| GeoIpError::Truncated)?;
        if target >= self.bytes.len() {
            return Err(GeoIpError::Data("a pointer past the data section"));
        }
        Ok((target, at + len))
    }

    /// The field at `at`, through a pointer if it is one, and the
    /// position after it (after the pointer, for one).
    pub(super) fn value(&mut self, at: usize) -> Result<(Value<'a>, usize), GeoIpError> {
        let head = self.head(at)?;
        if head.kind != Kind::Pointer {
            return self.read(head);
        }
        let (target, after) = self.pointer(head.size, head.payload)?;
        let pointed = self.head(target)?;
        // The spec's writers never point at a pointer; refused, no chain
        // of them can loop.
        if pointed.kind == Kind::Pointer {
            return Err(GeoIpError::Data("a pointer to a pointer"));
        }
        Ok((self.read(pointed)?.0, after))
    }

    /// The field `head` begins, and the position after it.
    fn read(&mut self, head: Head) -> Result<(Value<'a>, usize), GeoIpError> {
        match head.kind {
            Kind::Map => Ok((Value::Map(head.size, head.payload), head.payload)),
            Kind::Text => {
                let text = self.slice(head.payload, head.size)?;
                Ok((Value::Text(text), head.payload + head.size))
            }
            Kind::Uint16 | Kind::Uint32 | Kind::Uint64 => {
                let most = match head.kind {
                    Kind::Uint16 => 2,
                    Kind::Uint32 => 4,
                    _ => 8,
                };
                if head.size > most {
                    return Err(GeoIpError::Data("an integer longer than its type"));
                }
                let n = self.number(head.payload, head.size)?;
                Ok((Value::Uint(n), head.payload + head.size))
            }
            _ => Ok((Value::Other, self.skip_head(head, 0)?)),
        }
    }

    /// The position after the field at `at`, a pointer's target not read.
    pub(super) fn skip(&mut self, at: usize, depth: usize) -> Result<usize, GeoIpError> {
        let head = self.head(at)?;
        self.skip_head(head, depth)
    }

    fn skip_head(&mut self, head: Head, depth: usize) -> Result<usize, GeoIpError> {
        let fixed = |len: usize| match head.size == len {
            true => Ok(head.payload + len),
            false => Err(GeoIpError::Data("a number of the wrong size")),
        };
        let at_most = |len: usize| match head.size <= len {
            true => Ok(head.payload + head.size),
            false => Err(GeoIpError::Data("an integer longer than its type")),
        };
        let end = match head.kind {
            Kind::Pointer => return Ok(self.pointer(head.size, head.payload)?.1),
            Kind::Double => fixed(8)?,
            Kind::Float => fixed(4)?,
            Kind::Uint16 => at_most(2)?,
            Kind::Uint32 | Kind::Int32 => at_most(4)?,
            Kind::Uint64 => at_most(8)?,
            Kind::Uint128 => at_most(16)?,
            // Its value is its size; it has no payload.
            Kind::Boolean if head.size <= 1 => return Ok(head.payload),
            Kind::Boolean => return Err(GeoIpError::Data("a boolean other than 0 or 1")),
            Kind::Text | Kind::Bytes => head.payload.saturating_add(head.size),
            Kind::Map | Kind::Array => {
                if depth >= MAX_DEPTH {
                    return Err(GeoIpError::Data("maps and arrays nested too deep"));
                }
                let fields = match head.kind {
                    Kind::Map => head.size.saturating_mul(2),
                    _ => head.size,
                };
                let mut at = head.payload;
                for _ in 0..fields {
                    at = self.skip(at, depth + 1)?;
                }
                return Ok(at);
            }
        };
        match end <= self.bytes.len() {
            true => Ok(end),
            false => Err(GeoIpError::Truncated),
        }
    }

    /// The value at `path` (map keys, in order) in the field at `at`, if
    /// each key is there.
    pub(super) fn find(
        &mut self,
        at: usize,
        path: &[&[u8]],
    ) -> Result<Option<Value<'a>>, GeoIpError> {
        let (value, _) = self.value(at)?;
        let Some((first, rest)) = path.split_first() else {
            return Ok(Some(value));
        };
        let Value::Map(pairs, mut at) = value else {
            return Ok(None);
        };
        for _ in 0..pairs {
            let (key, after_key) = self.value(at)?;
            let Value::Text(key) = key else {
                return Err(GeoIpError::Data("a map key that is not a string"));
            };
            if key == *first {
                return self.find(after_key, rest);
            }
            at = self.skip(after_key, 0)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(bytes: &[u8]) -> Result<Value<'_>, GeoIpError> {
        Section::new(bytes).value(0).map(|(v, _)| v)
    }

    #[test]
    fn sizes_extend_into_the_bytes_after_the_control() {
        let mut long = vec![0x40 | 29, 1];
        long.extend(std::iter::repeat_n(b'a', 30));
        assert_eq!(first(&long).unwrap(), Value::Text(&[b'a'; 30]));
        let mut longer = vec![0x40 | 30, 0, 1];
        longer.extend(std::iter::repeat_n(b'b', 286));
        assert!(matches!(first(&longer).unwrap(), Value::Text(t) if t.len() == 286));
        // Said longer than the bytes there are.
        assert_eq!(
            first(&[0x40 | 31, 0xff, 0xff, 0xff]),
            Err(GeoIpError::Truncated)
        );
    }

    #[test]
    fn every_type_is_stepped_over_by_its_size() {
        let fields: &[&[u8]] = &[
            &[0x68, 0, 0, 0, 0, 0, 0, 0, 0], // double
            &[0x04, 0x08, 0, 0, 0, 0],       // float (extended 15)
            &[0x01, 0x07],                   // boolean true (extended 14)
            &[0x83, 1, 2, 3],                // bytes
            &[0x04, 0x01, 1, 2, 3, 4],       // int32 (extended 8)
            &[0x02, 0x02, 1, 2],             // uint64 (extended 9)
            &[
                0x10, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
            ], // uint128
            &[0x02, 0x04, 0x41, b'x', 0xa1, 7], // array [x, 7]
            &[0x20, 0x00],                   // pointer to 0
        ];
        for field in fields {
            let mut bytes = field.to_vec();
            bytes.push(0x42);
            let end = Section::new(&bytes).skip(0, 0).unwrap();
            assert_eq!(end, field.len(), "{field:?}");
        }
        for bad in [
            &[0x61, 0][..],
            &[0x08, 0x08, 0],
            &[0x02, 0x07],
            &[0x19, 0x03],
        ] {
            assert!(Section::new(bad).skip(0, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_pointer_to_a_pointer_and_past_the_end_are_refused() {
        assert!(first(&[0x20, 0x00]).is_err());
        assert!(first(&[0x20, 0x09]).is_err());
        // Each pointer size's offsets.
        let section = Section::new(&[0; 16]);
        assert_eq!(section.pointer(0x18, 14), Err(GeoIpError::Truncated));
        assert!(section.pointer(0x07, 0).is_err());
        assert_eq!(section.pointer(0x00, 0), Ok((0, 1)));
        assert_eq!(
            Section::new(&[0x20, 0x02, 0x41, b'z']).value(0).unwrap(),
            (Value::Text(b"z"), 2)
        );
    }

    #[test]
    fn nesting_and_the_fields_read_are_bounded() {
        // An array holding an array holding ... deeper than allowed.
        let deep = [0x01, 0x04].repeat(MAX_DEPTH + 2);
        assert!(Section::new(&deep).skip(0, 0).is_err());
        // An array that says it holds more fields than the budget.
        let mut many = vec![0x1f, 0x04, 0xff, 0xff, 0xff];
        many.extend(std::iter::repeat_n(0xa0, MAX_FIELDS + 10));
        assert_eq!(
            Section::new(&many).skip(0, 0),
            Err(GeoIpError::Data("too many fields"))
        );
    }
}
