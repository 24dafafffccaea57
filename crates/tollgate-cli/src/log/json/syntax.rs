//! JSON syntax, scanned in place: whitespace, values (delimited, and checked when they
//! are used), nested objects and arrays (skipped), and string escapes (decoded).
use memchr::memchr;

use super::super::bytes::{closing_quote, digits_at, hex};
use super::super::error::LineError;

#[derive(Clone, Copy, Debug)]
pub(super) enum JsonVal {
    /// The contents of a string, and whether it has escapes.
    Str(usize, usize, bool),
    Num(usize, usize),
    True,
    False,
    Null,
    Nested,
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
pub(super) fn skip_ws(b: &[u8], i: usize) -> usize {
    if let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        skip_ws_from(b, i)
    } else {
        i
    }
}

#[inline(never)]
fn skip_ws_from(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// Scans the value at `b[i..]`; returns it and the index after it. Numbers and
/// literals are checked only when `checked` (the value is used).
#[inline(always)]
pub(super) fn scan_json_value(
    b: &[u8],
    i: usize,
    checked: bool,
) -> Result<(JsonVal, usize), LineError> {
    match b.get(i) {
        Some(b'"') => {
            let (end, escaped) = closing_quote(b, i + 1)
                .ok_or_else(|| LineError::syntax_at("unterminated string", i))?;
            Ok((JsonVal::Str(i + 1, end, escaped), end + 1))
        }
        Some(b'-' | b'0'..=b'9') => {
            let end = if checked {
                json_number_end(b, i).ok_or_else(|| LineError::syntax_at("invalid number", i))?
            } else {
                let mut j = i + 1;
                j += digits_at(b, j);
                while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = b.get(j) {
                    j += 1;
                }
                j
            };
            Ok((JsonVal::Num(i, end), end))
        }
        Some(b'{' | b'[') => Ok((JsonVal::Nested, skip_nested(b, i)?)),
        Some(b't') if b[i..].starts_with(b"true") => Ok((JsonVal::True, i + 4)),
        Some(b'f') if b[i..].starts_with(b"false") => Ok((JsonVal::False, i + 5)),
        Some(b'n') if b[i..].starts_with(b"null") => Ok((JsonVal::Null, i + 4)),
        None => Err(LineError::syntax("line ends where a value should be")),
        Some(_) => Err(LineError::syntax_at("invalid value", i)),
    }
}

/// The end of the JSON number starting at `b[i]`, following the JSON grammar.
fn json_number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| -> Option<usize> {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}

/// Skips the object or array at `b[i]`, checking that brackets match (up to 128
/// levels deep); returns the index after it.
fn skip_nested(b: &[u8], mut i: usize) -> Result<usize, LineError> {
    let start = i;
    // One bit per open level: 1 for an object, 0 for an array.
    let mut stack: u128 = 0;
    let mut depth = 0u32;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' | b'[' => {
                if depth == 128 {
                    return Err(LineError::syntax_at("JSON nested too deeply", i));
                }
                stack = (stack << 1) | u128::from(c == b'{');
                depth += 1;
            }
            b'}' | b']' => {
                if (stack & 1 == 1) != (c == b'}') {
                    return Err(LineError::syntax_at("mismatched bracket", i));
                }
                stack >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            b'"' => {
                i = closing_quote(b, i + 1)
                    .ok_or_else(|| LineError::syntax_at("unterminated string", i))?
                    .0;
            }
            _ => {}
        }
        i += 1;
    }
    Err(LineError::syntax_at("unclosed object or array", start))
}

/// Decodes the contents of a JSON string (without quotes) onto `out`.
pub(super) fn unescape_json(raw: &str, out: &mut String) -> Result<(), &'static str> {
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(n) = memchr(b'\\', &b[i..]) {
        let j = i + n;
        out.push_str(&raw[i..j]);
        let c = match b.get(j + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = hex4(b, j + 2).ok_or("invalid \\u escape")?;
                i = j + 6;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        let lo = (b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u'))
                            .then(|| hex4(b, i + 2))
                            .flatten()
                            .filter(|lo| (0xDC00..=0xDFFF).contains(lo))
                            .ok_or("unpaired surrogate in a \\u escape")?;
                        i += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err("unpaired surrogate in a \\u escape"),
                    _ => hi,
                };
                out.push(char::from_u32(code).ok_or("invalid \\u escape")?);
                continue;
            }
            _ => return Err("invalid escape in a string"),
        };
        out.push(c);
        i = j + 2;
    }
    out.push_str(&raw[i..]);
    Ok(())
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0;
    for &d in digits {
        v = (v << 4) | u32::from(hex(d)?);
    }
    Some(v)
}
