//! Base64 decoding (RFC 4648) as the signatures and tokens the worker reads use it: the
//! standard alphabet with padding (webhook secrets and signatures) and the URL-safe alphabet
//! without it (JWTs and JWKs).
//!
//! Strict, as the `base64` crate's engines it replaced were: no whitespace, padding exactly
//! where it belongs (and none in the URL-safe form), and the unused bits of the last symbol
//! zero, so each byte string has exactly one text that decodes to it. The tests hold both
//! forms to that crate on generated texts. Encoding is URL-safe only (the page cursors).

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Each byte's value in an alphabet, `NOT_A_SYMBOL` for a byte outside it: a lookup per symbol
/// where a search of the alphabet cost a webhook's signature and secret a few hundred
/// comparisons each.
type Values = [u8; 256];
const NOT_A_SYMBOL: u8 = 0xff;
const STANDARD_VALUES: Values = values_of(STANDARD);
const URL_SAFE_VALUES: Values = values_of(URL_SAFE);

const fn values_of(alphabet: &[u8; 64]) -> Values {
    let mut values = [NOT_A_SYMBOL; 256];
    let mut i = 0;
    while i < 64 {
        values[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    values
}

/// The standard alphabet, padded with `=` to a multiple of four symbols.
pub fn decode_standard(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    let symbols = &bytes[..bytes.len() - padding];
    // Padding fills the last group and only that: one `=` after three symbols, two after two.
    if padding != (4 - symbols.len() % 4) % 4 {
        return None;
    }
    decode(symbols, &STANDARD_VALUES)
}

/// The URL-safe alphabet, without padding.
pub fn decode_url_no_pad(text: &str) -> Option<Vec<u8>> {
    decode(text.as_bytes(), &URL_SAFE_VALUES)
}

/// `bytes` in the URL-safe alphabet, without padding.
pub fn encode_url_no_pad(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let mut bits = [0u8; 4];
        bits[1..=group.len()].copy_from_slice(group);
        let bits = u32::from_be_bytes(bits);
        // Three bytes make four symbols, two make three, one makes two.
        for k in 0..=group.len() {
            let index = (bits >> (18 - 6 * k)) & 0x3f;
            out.push(char::from(URL_SAFE[index as usize]));
        }
    }
    out
}

/// The bytes of `symbols` (no padding) in the alphabet `alphabet` gives the values of; `None`
/// for a symbol outside it, a length
/// that no byte string has (one symbol over a group), or set bits past the last byte.
fn decode(symbols: &[u8], alphabet: &Values) -> Option<Vec<u8>> {
    let value = |symbol: u8| match alphabet[usize::from(symbol)] {
        NOT_A_SYMBOL => None,
        v => Some(u32::from(v)),
    };
    if symbols.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3 + 2);
    for group in symbols.chunks(4) {
        let mut bits = 0u32;
        for &symbol in group {
            bits = (bits << 6) | value(symbol)?;
        }
        match group.len() {
            4 => out.extend_from_slice(&bits.to_be_bytes()[1..]),
            // Two symbols carry one byte and four unused bits; three carry two and two unused.
            3 if bits & 0b11 == 0 => out.extend_from_slice(&(bits >> 2).to_be_bytes()[2..]),
            2 if bits & 0b1111 == 0 => out.push((bits >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::base64::engine::general_purpose::{STANDARD as CRATE_STANDARD, URL_SAFE_NO_PAD};
    use ::base64::Engine;

    use crate::testing::Xorshift as Rng;

    /// Texts near and far from valid ones: encodings of random bytes, then some mutated (a
    /// symbol changed, padding added or dropped, a byte cut, another alphabet's symbol).
    fn texts(rng: &mut Rng, encode: impl Fn(&[u8]) -> String) -> Vec<String> {
        const ODD: &[u8] = b"=+/-_ \n.A0";
        (0..20_000)
            .map(|_| {
                let len = rng.below(40);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let mut text = encode(&bytes).into_bytes();
                match rng.below(6) {
                    0 => {}
                    1 if !text.is_empty() => {
                        let at = rng.below(text.len());
                        text[at] = ODD[rng.below(ODD.len())];
                    }
                    2 => text.push(b'='),
                    3 => {
                        text.pop();
                    }
                    4 if !text.is_empty() => {
                        let at = rng.below(text.len());
                        text[at] = STANDARD[rng.below(64)];
                    }
                    _ => text.push(URL_SAFE[rng.below(64)]),
                }
                String::from_utf8(text).expect("ASCII")
            })
            .collect()
    }

    #[test]
    fn standard_decoding_accepts_and_refuses_exactly_what_the_base64_crate_does() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for text in texts(&mut rng, |b| CRATE_STANDARD.encode(b)) {
            assert_eq!(
                decode_standard(&text),
                CRATE_STANDARD.decode(&text).ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn url_safe_decoding_accepts_and_refuses_exactly_what_the_base64_crate_does() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for text in texts(&mut rng, |b| URL_SAFE_NO_PAD.encode(b)) {
            assert_eq!(
                decode_url_no_pad(&text),
                URL_SAFE_NO_PAD.decode(&text).ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn url_safe_encoding_writes_what_the_base64_crate_writes_and_reads_back() {
        let mut rng = Rng(0x5851_f42d_4c95_7f2d);
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let text = encode_url_no_pad(&bytes);
            assert_eq!(text, URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(decode_url_no_pad(&text), Some(bytes));
        }
    }

    #[test]
    fn edge_texts_decode_as_rfc_4648_says() {
        assert_eq!(decode_standard(""), Some(vec![]));
        assert_eq!(decode_standard("Zg=="), Some(b"f".to_vec()));
        assert_eq!(decode_standard("Zm8="), Some(b"fo".to_vec()));
        assert_eq!(decode_standard("Zm9v"), Some(b"foo".to_vec()));
        assert_eq!(decode_standard("Zm9vYg=="), Some(b"foob".to_vec()));
        assert_eq!(decode_standard("+/+/"), Some(vec![0xfb, 0xff, 0xbf]));
        assert_eq!(decode_url_no_pad("-_-_"), Some(vec![0xfb, 0xff, 0xbf]));
        assert_eq!(decode_url_no_pad("Zm8"), Some(b"fo".to_vec()));
        // Unused bits set, padding where none belongs, missing, or too much; whitespace.
        assert_eq!(decode_standard("Zh=="), None);
        assert_eq!(decode_url_no_pad("Zm9"), None);
        assert_eq!(decode_standard("Zm8"), None);
        assert_eq!(decode_standard("Zg="), None);
        assert_eq!(decode_standard("Zm9v===="), None);
        assert_eq!(decode_standard("Z==="), None);
        assert_eq!(decode_url_no_pad("Zm8="), None);
        assert_eq!(decode_standard("Zm9v Zg=="), None);
        assert_eq!(decode_url_no_pad("Z"), None);
        assert_eq!(decode_standard("-_-_"), None);
        assert_eq!(decode_url_no_pad("+/+/"), None);
    }
}
