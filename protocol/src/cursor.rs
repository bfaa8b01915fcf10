//! The crate's one reader of the Thrift binary protocol (the bare struct, no
//! message envelope): the response decoder ([`crate::decode`]) and the request
//! readers ([`crate::request`]) both read through [`Cursor`].
//!
//! Every count is checked against the bytes left before the caller allocates
//! anything, skipping is bounded in depth, and no input panics. A failure is
//! a [`ReadError`]: the byte offset and what was wrong, phrased with the
//! `what` the caller passed (a field path, "a tensor's shape", ...); each
//! caller builds its own message around it (the op name and element for the
//! request ops, "(at byte N)" for the response decoder).

use std::fmt;

use crate::wire::ttype;

/// Skipped values nested deeper than this are refused (the schema's deepest
/// value is 5 levels; recursion must stay bounded for any input).
const MAX_DEPTH: usize = 64;

/// Where a message went wrong: the byte offset in the message and what was
/// expected there. The op layer adds the op name and the element.
#[derive(Debug)]
pub(crate) struct ReadError {
    pub at: usize,
    pub what: String,
    /// The bytes ended inside a value (else they are malformed): callers
    /// reading a whole message say "truncated".
    pub truncated: bool,
}

pub(crate) type R<T> = Result<T, ReadError>;

/// A string on the wire: its byte range in message `msg`. Batches keep these,
/// never copies, and read the bytes again from the same messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub msg: u32,
    pub len: u32,
    pub start: usize,
}

impl Span {
    pub fn bytes<'a>(&self, messages: &[&'a [u8]]) -> &'a [u8] {
        &messages[self.msg as usize][self.start..self.start + self.len as usize]
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        ttype::BOOL => "bool",
        ttype::BYTE => "byte",
        ttype::DOUBLE => "double",
        ttype::I16 => "i16",
        ttype::I32 => "i32",
        ttype::I64 => "i64",
        ttype::STRING => "string",
        ttype::STRUCT => "struct",
        ttype::MAP => "map",
        ttype::SET => "set",
        ttype::LIST => "list",
        _ => "unknown type",
    }
}

pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    msg: u32,
    pub at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], msg: u32) -> Self {
        Cursor { data, msg, at: 0 }
    }

    pub fn fail<T>(&self, at: usize, what: impl fmt::Display) -> R<T> {
        Err(ReadError {
            at,
            what: what.to_string(),
            truncated: false,
        })
    }

    #[cold]
    #[inline(never)]
    fn truncated<T>(&self, n: usize, what: &dyn fmt::Display) -> R<T> {
        Err(ReadError {
            at: self.at,
            what: format!(
                "{what} needs {n} more bytes, the message has {} left",
                self.left()
            ),
            truncated: true,
        })
    }

    #[inline]
    pub fn left(&self) -> usize {
        self.data.len() - self.at
    }

    #[inline]
    fn take(&mut self, n: usize, what: &dyn fmt::Display) -> R<&'a [u8]> {
        if n > self.left() {
            return self.truncated(n, what);
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &dyn fmt::Display) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    #[inline]
    pub fn u8(&mut self, what: &dyn fmt::Display) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }

    #[inline]
    pub fn i32(&mut self, what: &dyn fmt::Display) -> R<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub fn i64(&mut self, what: &dyn fmt::Display) -> R<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub fn f64(&mut self, what: &dyn fmt::Display) -> R<f64> {
        Ok(f64::from_bits(self.i64(what)? as u64))
    }

    #[inline]
    pub fn bool(&mut self, what: &dyn fmt::Display) -> R<bool> {
        Ok(self.u8(what)? != 0)
    }

    /// The next `n` bytes at once: a list or map of fixed-size items whose
    /// count was checked (`n` bytes known present) is read without a bounds
    /// check per item.
    #[inline]
    pub fn fixed(&mut self, n: usize, what: &dyn fmt::Display) -> R<&'a [u8]> {
        self.take(n, what)
    }

    /// A Thrift `binary` (or `string` not checked as UTF-8): its bytes.
    #[inline]
    pub fn bytes(&mut self, what: &dyn fmt::Display) -> R<&'a [u8]> {
        let s = self.string(false, what)?;
        Ok(self.slice(s))
    }

    /// The message this cursor reads (its index in the batch's messages).
    #[inline]
    pub fn msg(&self) -> u32 {
        self.msg
    }

    /// The bytes of a span this cursor read.
    #[inline]
    pub fn slice(&self, s: Span) -> &'a [u8] {
        &self.data[s.start..s.start + s.len as usize]
    }

    /// A count of items of at least `min` bytes each: negative, or more than
    /// the bytes left can hold, is an error before the caller allocates.
    pub fn count(&mut self, min: usize, what: &dyn fmt::Display) -> R<usize> {
        let at = self.at;
        let n = self.i32(what)?;
        let Ok(n) = usize::try_from(n) else {
            return self.fail(at, format_args!("{what} has a negative size, {n}"));
        };
        if n.saturating_mul(min.max(1)) > self.left() {
            return Err(ReadError {
                at,
                what: format!(
                    "{what} claims {n} items of at least {} bytes, the message has {} left",
                    min.max(1),
                    self.left()
                ),
                truncated: true,
            });
        }
        Ok(n)
    }

    /// A Thrift `string` (UTF-8 checked) or `binary` (not), as a span.
    pub fn string(&mut self, utf8: bool, what: &dyn fmt::Display) -> R<Span> {
        let n = self.count(1, what)?;
        let start = self.at;
        let bytes = self.take(n, what)?;
        // ASCII (most names and values) is checked a word at a time; the
        // full UTF-8 check cost more than the rest of reading a short string.
        if utf8 && !bytes.is_ascii() {
            if let Err(e) = std::str::from_utf8(bytes) {
                return self.fail(
                    start + e.valid_up_to(),
                    format_args!("{what} must be UTF-8, found an invalid byte sequence"),
                );
            }
        }
        Ok(Span {
            msg: self.msg,
            len: n as u32,
            start,
        })
    }

    /// A field header: `None` at STOP.
    pub fn field(&mut self, what: &dyn fmt::Display) -> R<Option<(u8, i16, usize)>> {
        let at = self.at;
        match self.u8(what)? {
            ttype::STOP => Ok(None),
            t => Ok(Some((t, i16::from_be_bytes(self.array(what)?), at))),
        }
    }

    /// A list or set header whose elements must be `elem`.
    pub fn list(&mut self, elem: u8, what: &dyn fmt::Display, want: &str) -> R<usize> {
        let at = self.at;
        let e = self.u8(what)?;
        if e != elem {
            return self.fail(
                at,
                format_args!(
                    "{what} must be a {want}, found elements of type {}",
                    type_name(e)
                ),
            );
        }
        self.count(min_size(elem), what)
    }

    /// A map header whose keys and values must be `key` and `value`.
    pub fn map(&mut self, key: u8, value: u8, what: &dyn fmt::Display, want: &str) -> R<usize> {
        let at = self.at;
        let (k, v) = (self.u8(what)?, self.u8(what)?);
        if (k, v) != (key, value) {
            return self.fail(
                at,
                format_args!(
                    "{what} must be a {want}, found a map<{}, {}>",
                    type_name(k),
                    type_name(v)
                ),
            );
        }
        self.count(min_size(key) + min_size(value), what)
    }

    /// Skips one value of type `t` whose header was read at `at`, checking it
    /// as a stock decoder would (counts, nesting, type codes).
    pub fn skip(&mut self, t: u8, at: usize, what: &dyn fmt::Display) -> R<()> {
        self.skip_at(t, at, what, 0)
    }

    fn skip_at(&mut self, t: u8, at: usize, what: &dyn fmt::Display, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return self.fail(
                self.at,
                format_args!("{what} nests deeper than {MAX_DEPTH}"),
            );
        }
        match t {
            ttype::BOOL | ttype::BYTE => self.take(1, what).map(drop),
            ttype::I16 => self.take(2, what).map(drop),
            ttype::I32 => self.take(4, what).map(drop),
            ttype::DOUBLE | ttype::I64 => self.take(8, what).map(drop),
            ttype::STRING => self.string(false, what).map(drop),
            ttype::STRUCT => {
                while let Some((t, _, at)) = self.field(what)? {
                    self.skip_at(t, at, what, depth + 1)?;
                }
                Ok(())
            }
            ttype::MAP => {
                let (k, v) = (self.u8(what)?, self.u8(what)?);
                let n = self.count(min_size(k) + min_size(v), what)?;
                for _ in 0..n {
                    self.skip_at(k, self.at, what, depth + 1)?;
                    self.skip_at(v, self.at, what, depth + 1)?;
                }
                Ok(())
            }
            ttype::SET | ttype::LIST => {
                let e = self.u8(what)?;
                let n = self.count(min_size(e), what)?;
                for _ in 0..n {
                    self.skip_at(e, self.at, what, depth + 1)?;
                }
                Ok(())
            }
            t => self.fail(
                at,
                format_args!("{what} has Thrift type code {t}, which is no type"),
            ),
        }
    }

    /// The value of a known field has the wrong Thrift type.
    pub fn wrong_type<T>(&self, at: usize, what: &dyn fmt::Display, want: &str, t: u8) -> R<T> {
        self.fail(
            at,
            format_args!("{what} must be a {want}, found a {}", type_name(t)),
        )
    }
}

/// The fewest bytes a value of Thrift type `t` takes in the binary protocol.
pub(crate) fn min_size(t: u8) -> usize {
    match t {
        ttype::I16 => 2,
        ttype::I32 | ttype::STRING | ttype::LIST | ttype::SET => 4,
        ttype::I64 | ttype::DOUBLE => 8,
        ttype::MAP => 6,
        _ => 1,
    }
}
