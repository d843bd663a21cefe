//! [`LengthPrefix`]: how a frame's length is written in front of it — width, byte order, sign.

use std::io;

/// How many bytes the length field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// 1 byte (`struct 'B'`/`'b'`): frames of at most 255 (or 127) bytes.
    One,
    /// 2 bytes (`struct 'H'`/`'h'`).
    Two,
    /// 4 bytes (`struct 'I'`/`'i'`).
    Four,
    /// 8 bytes (`struct 'Q'`/`'q'`).
    Eight,
}

impl Width {
    /// The number of bytes: 1, 2, 4 or 8.
    #[must_use]
    pub const fn bytes(self) -> usize {
        match self {
            Width::One => 1,
            Width::Two => 2,
            Width::Four => 4,
            Width::Eight => 8,
        }
    }
}

/// The byte order of the length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Most significant byte first ("network order", Python's `'!'` or `'>'`).
    Big,
    /// Least significant byte first (Python's `'<'`).
    Little,
    /// The order of the machine running the code (Python's default, `'@'`): little-endian on
    /// x86-64 and aarch64. Both ends must run on machines of the same order.
    Native,
}

impl ByteOrder {
    fn is_big(self) -> bool {
        match self {
            ByteOrder::Big => true,
            ByteOrder::Little => false,
            ByteOrder::Native => cfg!(target_endian = "big"),
        }
    }
}

/// The length field in front of every frame: its [`Width`], [`ByteOrder`] and whether it is
/// signed.
///
/// A signed field (Python's lower-case `struct` codes) can carry a negative number, which a
/// reader rejects as malformed; it also halves the largest length the field can announce.
///
/// ```
/// use socketserver::framing::{ByteOrder, LengthPrefix, Width};
///
/// // Python's `struct.pack('i', n)`: 4 bytes, signed, native order.
/// let struct_i = LengthPrefix::new(Width::Four, ByteOrder::Native, true);
/// assert_eq!(struct_i, LengthPrefix::PYTHON_STRUCT_I);
/// assert_eq!(LengthPrefix::U32_BE.encode(258).unwrap(), vec![0, 0, 1, 2]);
/// assert_eq!(LengthPrefix::U32_BE.decode(&[0, 0, 1, 2]).unwrap(), 258);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LengthPrefix {
    width: Width,
    order: ByteOrder,
    signed: bool,
}

/// An encoded length field, at most 8 bytes, kept on the stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    bytes: [u8; 8],
    len: usize,
}

impl Field {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl LengthPrefix {
    /// 4-byte unsigned big-endian: the default, and the usual choice for new protocols.
    pub const U32_BE: LengthPrefix = LengthPrefix::new(Width::Four, ByteOrder::Big, false);

    /// Python's `struct.pack('i', n)`, as Python socket tutorials use it: 4-byte signed, native
    /// order.
    pub const PYTHON_STRUCT_I: LengthPrefix =
        LengthPrefix::new(Width::Four, ByteOrder::Native, true);

    /// A length field of `width` bytes in `order`, `signed` or not.
    #[must_use]
    pub const fn new(width: Width, order: ByteOrder, signed: bool) -> Self {
        LengthPrefix {
            width,
            order,
            signed,
        }
    }

    /// The field's width.
    #[must_use]
    pub const fn width(&self) -> Width {
        self.width
    }

    /// The field's byte order.
    #[must_use]
    pub const fn order(&self) -> ByteOrder {
        self.order
    }

    /// Whether the field is signed.
    #[must_use]
    pub const fn is_signed(&self) -> bool {
        self.signed
    }

    /// The largest length this field can carry.
    #[must_use]
    pub const fn max_len(&self) -> u64 {
        let bits = self.width.bytes() as u32 * 8 - self.signed as u32;
        if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        }
    }

    /// The field for a frame of `len` bytes.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `len` does not fit the field.
    pub fn encode(&self, len: u64) -> io::Result<Vec<u8>> {
        self.field(len).map(|field| field.as_bytes().to_vec())
    }

    /// [`encode`](Self::encode) without allocating: the field in a fixed-size buffer.
    pub(crate) fn field(&self, len: u64) -> io::Result<Field> {
        if len > self.max_len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a frame of {len} bytes does not fit a {}-byte {} length field (at most {})",
                    self.width.bytes(),
                    if self.signed { "signed" } else { "unsigned" },
                    self.max_len()
                ),
            ));
        }
        let n = self.width.bytes();
        let mut bytes = [0u8; 8];
        bytes[..n].copy_from_slice(&len.to_be_bytes()[8 - n..]);
        if !self.order.is_big() {
            bytes[..n].reverse();
        }
        Ok(Field { bytes, len: n })
    }

    /// The length a field announces. `field` must be exactly [`Width::bytes`] long.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `field` is not [`Width::bytes`] long; `InvalidData` for a negative value
    /// of a signed field.
    pub fn decode(&self, field: &[u8]) -> io::Result<u64> {
        let n = self.width.bytes();
        if field.len() != n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a length field is {n} bytes, got {}", field.len()),
            ));
        }
        let mut big = [0u8; 8];
        big[8 - n..].copy_from_slice(field);
        if !self.order.is_big() {
            big[8 - n..].reverse();
        }
        let value = u64::from_be_bytes(big);
        let sign_bit = 1u64 << (n * 8 - 1);
        if self.signed && value & sign_bit != 0 {
            // Sign-extend only to report the number the peer meant.
            let negative = (value | !(sign_bit | (sign_bit - 1))) as i64;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "malformed frame: the length field announces a negative length ({negative})"
                ),
            ));
        }
        Ok(value)
    }
}

impl Default for LengthPrefix {
    /// [`LengthPrefix::U32_BE`].
    fn default() -> Self {
        LengthPrefix::U32_BE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_WIDTHS: [Width; 4] = [Width::One, Width::Two, Width::Four, Width::Eight];
    const ALL_ORDERS: [ByteOrder; 3] = [ByteOrder::Big, ByteOrder::Little, ByteOrder::Native];

    #[test]
    fn matches_python_struct_layouts() {
        // struct.pack('>H', 258), struct.pack('<I', 258), struct.pack('b', 5), struct.pack('>q', 1)
        let be16 = LengthPrefix::new(Width::Two, ByteOrder::Big, false);
        assert_eq!(be16.encode(258).unwrap(), [1, 2]);
        let le32 = LengthPrefix::new(Width::Four, ByteOrder::Little, false);
        assert_eq!(le32.encode(258).unwrap(), [2, 1, 0, 0]);
        let i8 = LengthPrefix::new(Width::One, ByteOrder::Native, true);
        assert_eq!(i8.encode(5).unwrap(), [5]);
        let be64 = LengthPrefix::new(Width::Eight, ByteOrder::Big, true);
        assert_eq!(be64.encode(1).unwrap(), [0, 0, 0, 0, 0, 0, 0, 1]);
        // 'i' native on the machines we run on (little-endian).
        if cfg!(target_endian = "little") {
            assert_eq!(
                LengthPrefix::PYTHON_STRUCT_I.encode(7).unwrap(),
                [7, 0, 0, 0]
            );
        }
    }

    #[test]
    fn every_layout_round_trips_its_extremes() {
        for width in ALL_WIDTHS {
            for order in ALL_ORDERS {
                for signed in [false, true] {
                    let prefix = LengthPrefix::new(width, order, signed);
                    for len in [0, 1, 127, prefix.max_len() / 2, prefix.max_len()] {
                        let field = prefix.encode(len).unwrap();
                        assert_eq!(field.len(), width.bytes());
                        assert_eq!(prefix.decode(&field).unwrap(), len, "{prefix:?} {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn too_long_for_the_field_is_invalid_input() {
        let u8_prefix = LengthPrefix::new(Width::One, ByteOrder::Big, false);
        assert_eq!(u8_prefix.max_len(), 255);
        let err = u8_prefix.encode(256).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert_eq!(LengthPrefix::PYTHON_STRUCT_I.max_len(), i32::MAX as u64);
        assert!(LengthPrefix::PYTHON_STRUCT_I.encode(1 << 31).is_err());
    }

    #[test]
    fn negative_lengths_are_invalid_data() {
        let field = (-1i32).to_ne_bytes();
        let err = LengthPrefix::PYTHON_STRUCT_I.decode(&field).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("negative length (-1)"), "{err}");
        let i16_be = LengthPrefix::new(Width::Two, ByteOrder::Big, true);
        let err = i16_be.decode(&(-300i16).to_be_bytes()).unwrap_err();
        assert!(err.to_string().contains("(-300)"), "{err}");
        // The same bytes unsigned are a (large) length, not an error.
        let u16_be = LengthPrefix::new(Width::Two, ByteOrder::Big, false);
        assert_eq!(u16_be.decode(&[0xff, 0xff]).unwrap(), 65535);
    }

    #[test]
    fn wrong_field_size_is_invalid_input() {
        let err = LengthPrefix::U32_BE.decode(&[1, 2]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
