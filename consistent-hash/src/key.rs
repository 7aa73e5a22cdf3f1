//! The [`Key`] trait: how a key or a node turns into bytes for hashing.

use std::hash::Hasher;
use std::rc::Rc;
use std::sync::Arc;

/// A value that can be placed: keys, and the nodes themselves (a node's bytes decide where its
/// points sit on a ring, its Maglev permutation and its rendezvous scores).
///
/// Unlike [`std::hash::Hash`], whose output may change between Rust versions and platforms
/// (`str` appends a marker byte, integers are written in native endianness, `usize` changes
/// width), `Key` is a fixed contract: a key is hashed over exactly the bytes this trait writes,
/// and those bytes are documented per type. That is what makes placement identical on every
/// process of a fleet, on every platform and every Rust version.
///
/// | type | bytes written |
/// |---|---|
/// | `str`, `String` | the UTF-8 bytes, nothing else |
/// | `[u8]`, `Vec<u8>`, `[u8; N]` | the bytes |
/// | `u8` ... `u128`, `i8` ... `i128` | little-endian, at the type's width |
/// | `usize`, `isize` | little-endian as `u64` / `i64` on every platform |
/// | `&T`, `Box<T>`, `Rc<T>`, `Arc<T>` | whatever `T` writes |
///
/// Because strings and byte strings write the same bytes, `"user:1"` and `b"user:1"` land on the
/// same node, and so do `1u32` and `[1, 0, 0, 0]`.
///
/// # Examples
///
/// A node type made of a host and a port, hashed as `"host:port"` so that nodes compare the same
/// way in every language of a polyglot fleet:
///
/// ```
/// use std::hash::Hasher;
/// use tierkit_consistent_hash::Key;
///
/// #[derive(Debug, Clone, PartialEq)]
/// struct Server { host: String, port: u16 }
///
/// impl Key for Server {
///     fn write_key<H: Hasher>(&self, state: &mut H) {
///         state.write(self.host.as_bytes());
///         state.write(b":");
///         state.write(self.port.to_string().as_bytes());
///     }
/// }
/// ```
pub trait Key {
    /// Writes this value's canonical bytes into `state`.
    ///
    /// Write with [`Hasher::write`] only (the `write_u32`-style helpers are native-endian in
    /// some hashers); consecutive writes behave like one write of the concatenation.
    fn write_key<H: Hasher>(&self, state: &mut H);
}

impl Key for [u8] {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        state.write(self);
    }
}

impl<const N: usize> Key for [u8; N] {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        state.write(self);
    }
}

impl Key for Vec<u8> {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        state.write(self);
    }
}

impl Key for str {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

impl Key for String {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl Key for $t {
            #[inline]
            fn write_key<H: Hasher>(&self, state: &mut H) {
                state.write(&self.to_le_bytes());
            }
        }
    )*};
}
int_key!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl Key for usize {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        // `usize` is at most 64 bits on every platform Rust supports; widening keeps 32-bit and
        // 64-bit processes of one fleet in agreement.
        state.write(&(*self as u64).to_le_bytes());
    }
}

impl Key for isize {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        state.write(&(*self as i64).to_le_bytes());
    }
}

impl<T: Key + ?Sized> Key for &T {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        (**self).write_key(state);
    }
}

impl<T: Key + ?Sized> Key for Box<T> {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        (**self).write_key(state);
    }
}

impl<T: Key + ?Sized> Key for Rc<T> {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        (**self).write_key(state);
    }
}

impl<T: Key + ?Sized> Key for Arc<T> {
    #[inline]
    fn write_key<H: Hasher>(&self, state: &mut H) {
        (**self).write_key(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the bytes written, to check each impl's documented encoding.
    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Hasher for Bytes {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    fn bytes_of<K: Key + ?Sized>(k: &K) -> Vec<u8> {
        let mut b = Bytes::default();
        k.write_key(&mut b);
        b.0
    }

    #[test]
    fn encodings_are_the_documented_ones() {
        assert_eq!(bytes_of("ab"), b"ab");
        assert_eq!(bytes_of(&String::from("ab")), b"ab");
        assert_eq!(bytes_of(&b"ab"[..]), b"ab");
        assert_eq!(bytes_of(b"ab"), b"ab");
        assert_eq!(bytes_of(&0x0102u16), [2, 1]);
        assert_eq!(bytes_of(&-1i8), [0xff]);
        assert_eq!(bytes_of(&1usize), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes_of(&-2isize), (-2i64).to_le_bytes());
        assert_eq!(bytes_of(&Arc::<str>::from("x")), b"x");
        assert_eq!(bytes_of(&Box::new(7u8)), [7]);
    }
}
