//! Lower-case hex, as the worker writes digests into keys and reads them from signatures and
//! stored intents: a byte table, one allocation, where the `hex` crate's encoder it replaced
//! built its string a character at a time through an iterator (a visible part of a webhook's
//! time, which hex-encodes two digests). Decoding takes either case, as that crate did; the
//! tests hold both directions to it.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lower-case hex.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The bytes `text` spells in hex, either case; `None` for an odd length or any other symbol.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::testing::Xorshift as Rng;

    #[test]
    fn encoding_writes_what_the_hex_crate_writes() {
        let mut rng = Rng(0x4e7);
        for len in 0..80 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert_eq!(super::encode(&bytes), ::hex::encode(&bytes));
        }
    }

    #[test]
    fn decoding_accepts_and_refuses_what_the_hex_crate_does() {
        let mut rng = Rng(0xdec);
        let alphabet = b"0123456789abcdefABCDEFgxG -";
        for _ in 0..20_000 {
            let len = rng.below(9);
            let text: String = (0..len)
                .map(|_| char::from(alphabet[rng.below(alphabet.len())]))
                .collect();
            assert_eq!(super::decode(&text), ::hex::decode(&text).ok(), "{text:?}");
        }
    }
}
