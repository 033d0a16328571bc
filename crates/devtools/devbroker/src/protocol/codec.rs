//! The primitive codec: [`Decoder`] reads Kafka's primitive types (and the
//! `[topic, [partition]]` nesting) from a request body, bounds-checking every read;
//! [`Encoder`] writes them.

use bytes::{BufMut, Bytes, BytesMut};

use super::TopicPartitions;

/// A request body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unexpected end of data reading {0}")]
    Truncated(&'static str),
    #[error("negative length {0} for {1}")]
    NegativeLength(i32, &'static str),
    #[error("array of {0} elements cannot fit in the remaining {1} bytes")]
    ArrayTooLong(i32, usize),
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the request body")]
    TrailingBytes(usize),
    #[error("null where a value is required: {0}")]
    UnexpectedNull(&'static str),
}

/// Reads Kafka primitive types from a byte slice. Every read is bounds-checked: network
/// input is never trusted.
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array::<1>(what)?))
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.i8(what)? != 0)
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array::<2>(what)?))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array::<4>(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array::<4>(what)?))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array::<8>(what)?))
    }

    /// A nullable string (int16 length, -1 = null).
    pub fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize, what)?;
        let s = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8)?;
        Ok(Some(s.to_owned()))
    }

    /// A non-nullable string. A null is read as an error.
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        self.nullable_string(what)?
            .ok_or(DecodeError::UnexpectedNull(what))
    }

    /// Nullable bytes (int32 length, -1 = null), borrowed from the input.
    pub fn nullable_bytes(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize, what)?))
    }

    /// An array length (int32, -1 = null). `min_elem_size` bounds the count by the bytes
    /// left so a forged length cannot make us allocate gigabytes.
    pub fn array_len(
        &mut self,
        what: &'static str,
        min_elem_size: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(None);
        }
        let n = len as usize;
        if n.saturating_mul(min_elem_size.max(1)) > self.buf.len() {
            return Err(DecodeError::ArrayTooLong(len, self.buf.len()));
        }
        Ok(Some(n))
    }

    /// Reads a non-null array with `elem` decoding each element (a null array reads as empty).
    pub fn array_of<T>(
        &mut self,
        what: &'static str,
        min_elem_size: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.array_len(what, min_elem_size)?.unwrap_or(0);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(elem(self)?);
        }
        Ok(out)
    }

    /// Reads a `[topic name, [partition]]` array, `partition` decoding each partition's
    /// entry of at least `partition_min_size` bytes.
    pub fn topics<P>(
        &mut self,
        partition_min_size: usize,
        mut partition: impl FnMut(&mut Self) -> Result<P, DecodeError>,
    ) -> Result<Vec<TopicPartitions<P>>, DecodeError> {
        // Smallest topic: name length 2 + partition count 4.
        self.array_of("topics", 6, |d| {
            let name = d.string("topic name")?;
            let partitions = d.array_of("partitions", partition_min_size, &mut partition)?;
            Ok(TopicPartitions { name, partitions })
        })
    }

    /// Fails if bytes are left: a request longer than its schema is malformed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

/// Writes Kafka primitive types.
#[derive(Default)]
pub struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.buf.put_i8(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.i8(i8::from(v))
    }

    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.put_i16(v);
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.put_i32(v);
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.put_i64(v);
        self
    }

    /// A string; Kafka strings are at most i16::MAX bytes, longer input is cut at a char
    /// boundary (the broker only ever echoes names it accepted, which are short).
    pub fn string(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(i16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.buf.put_i16(end as i16);
        self.buf.put_slice(&s.as_bytes()[..end]);
        self
    }

    pub fn nullable_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }

    /// An int32-length-prefixed byte block assembled from chunks (a message set).
    pub fn bytes_chunks(&mut self, chunks: &[Bytes]) -> &mut Self {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        self.buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
        for c in chunks {
            self.buf.put_slice(c);
        }
        self
    }

    pub fn array_len(&mut self, n: usize) -> &mut Self {
        self.i32(i32::try_from(n).unwrap_or(i32::MAX))
    }

    pub fn array<T>(&mut self, items: &[T], mut elem: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.array_len(items.len());
        for item in items {
            elem(self, item);
        }
        self
    }

    /// Writes a `[topic name, [partition]]` array, `partition` encoding each entry.
    pub fn topics<P>(
        &mut self,
        topics: &[TopicPartitions<P>],
        mut partition: impl FnMut(&mut Self, &P),
    ) -> &mut Self {
        self.array(topics, |e, t| {
            e.string(&t.name);
            e.array(&t.partitions, &mut partition);
        })
    }

    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_rejects_truncated_and_forged_lengths() {
        let mut d = Decoder::new(&[0, 5, b'a']);
        assert_eq!(d.string("s"), Err(DecodeError::Truncated("s")));
        let mut d = Decoder::new(&[0x7f, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(
            d.array_len("a", 4),
            Err(DecodeError::ArrayTooLong(..))
        ));
        let mut d = Decoder::new(&[0xff, 0xff]);
        assert_eq!(d.nullable_string("s"), Ok(None));
    }

    #[test]
    fn encoder_round_trips() {
        let mut e = Encoder::new();
        e.i16(3).string("topic").i32(-1).i64(42);
        let b = e.into_bytes();
        let mut d = Decoder::new(&b);
        assert_eq!(d.i16("x"), Ok(3));
        assert_eq!(d.string("x").as_deref(), Ok("topic"));
        assert_eq!(d.i32("x"), Ok(-1));
        assert_eq!(d.i64("x"), Ok(42));
        assert!(d.finish().is_ok());
    }
}
