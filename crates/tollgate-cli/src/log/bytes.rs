//! Byte search and comparison a machine word at a time (SWAR), shared by the JSON and
//! combined-log scanners: finding the first of one or two bytes, the last of one, the
//! closing quote of a backslash-escaped string, a run of digits, and short words.
use memchr::memchr2;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `b` at `i`, little-endian.
#[inline(always)]
pub(super) fn word(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The high bit of each byte of `w` that equals the byte broadcast in `pattern`. Only the
/// lowest set bit is exact (a borrow can mark bytes above a match), which is all that
/// [`find2`] reads.
#[inline(always)]
fn eq_mask(w: u64, pattern: u64) -> u64 {
    let x = w ^ pattern;
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The index of the first `x` or `y` in `b[i..]`.
///
/// Most fields of a log line are short, where testing a word at a time beats setting up
/// a vector search: the first [`SWAR_BYTES`] bytes are searched eight at a time, the
/// rest with `memchr2`. The first 16 bytes are tested together, without a branch on
/// where the match is in them: many fields vary in length around 8 bytes, and a
/// mispredicted branch costs more than the second word.
#[inline(always)]
pub(super) fn find2(b: &[u8], i: usize, x: u8, y: u8) -> Option<usize> {
    let (px, py) = (ONES * u64::from(x), ONES * u64::from(y));
    let rest = b.get(i..)?;
    let head = rest.get(..SWAR_BYTES).unwrap_or(rest);
    let mut j = 0;
    if let Some(chunk) = head.get(..16).and_then(|c| <[u8; 16]>::try_from(c).ok()) {
        let w = u128::from_le_bytes(chunk);
        let (lo, hi) = (w as u64, (w >> 64) as u64);
        let hits = u128::from(eq_mask(lo, px) | eq_mask(lo, py))
            | u128::from(eq_mask(hi, px) | eq_mask(hi, py)) << 64;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        j = 16;
    }
    while let Some(chunk) = head.get(j..j + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(chunk);
        let hit = eq_mask(w, px) | eq_mask(w, py);
        if hit != 0 {
            return Some(i + j + (hit.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    find2_rest(rest, j, x, y).map(|n| i + n)
}

/// [`find2`] in `rest[j..]`, past the words it tested.
#[inline(never)]
fn find2_rest(rest: &[u8], j: usize, x: u8, y: u8) -> Option<usize> {
    let tail = rest.get(j..)?;
    let n = if tail.len() < 8 {
        tail.iter().position(|&c| c == x || c == y)?
    } else {
        memchr2(x, y, tail)?
    };
    Some(j + n)
}

/// How many bytes [`find2`] tests a word at a time before it calls `memchr2`.
const SWAR_BYTES: usize = 128;

/// The index of the first `x` in `b[i..]`.
#[inline]
pub(super) fn find1(b: &[u8], i: usize, x: u8) -> Option<usize> {
    find2(b, i, x, x)
}

/// Whether `b` has a `%` or a `+` (needs percent-decoding).
#[inline]
pub(super) fn has_percent_or_plus(b: &[u8]) -> bool {
    const PERCENTS: u64 = ONES * b'%' as u64;
    const PLUSES: u64 = ONES * b'+' as u64;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        if let Ok(chunk) = <[u8; 8]>::try_from(chunk) {
            let w = u64::from_le_bytes(chunk);
            if eq_mask(w, PERCENTS) | eq_mask(w, PLUSES) != 0 {
                return true;
            }
        }
    }
    chunks.remainder().iter().any(|&c| c == b'%' || c == b'+')
}

/// The index of the last `x` in `b`: the last 32 bytes are searched eight at a time,
/// the rest with `memrchr`.
#[inline]
pub(super) fn rfind1(b: &[u8], x: u8) -> Option<usize> {
    const LOWS: u64 = !HIGHS;
    let pattern = ONES * u64::from(x);
    let mut end = b.len();
    while end >= 8 && b.len() - end < 32 {
        let w = word(b, end - 8)?;
        // Exact, so that the highest match is right.
        let x = w ^ pattern;
        let hit = !(((x & LOWS) + LOWS) | x) & HIGHS;
        if hit != 0 {
            return Some(end - 8 + (63 - hit.leading_zeros() as usize) / 8);
        }
        end -= 8;
    }
    memchr::memrchr(x, &b[..end])
}

/// From just after an opening quote: the index of the closing quote, and whether the
/// string has a backslash.
#[inline(always)]
pub(super) fn closing_quote(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let i = find2(b, i, b'"', b'\\')?;
    if b[i] == b'"' {
        Some((i, false))
    } else {
        closing_quote_escaped(b, i)
    }
}

/// [`closing_quote`] from the first backslash, at `b[i]`.
#[inline(never)]
fn closing_quote_escaped(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    loop {
        i += 2;
        i = find2(b, i, b'"', b'\\')?;
        if b[i] == b'"' {
            return Some((i, true));
        }
    }
}

/// How many ASCII digits `b[i..]` starts with, counting at most eight (0 if `b` is
/// shorter than eight bytes).
#[inline(always)]
pub(super) fn digits_at(b: &[u8], i: usize) -> usize {
    let w = match word(b, i) {
        Some(w) => w,
        // Near the end: the last eight bytes, shifted down to `b[i]` (zeros come in).
        None => match b.len().checked_sub(8).and_then(|s| word(b, s)) {
            Some(last) if i < b.len() => last >> (8 * (i + 8 - b.len())),
            _ => return 0,
        },
    };
    // Each byte minus '0' is below 10 for a digit. Borrows and carries only move up, from
    // the first non-digit, so that one is found exactly.
    let t = w.wrapping_sub(ONES * u64::from(b'0'));
    let non_digits = (t.wrapping_add(ONES * 0x76) | t) & HIGHS;
    (non_digits.trailing_zeros() / 8) as usize
}

/// `b[i..i + len]` as a little-endian word padded with zeros if `len <= 8`, else 0.
#[inline]
pub(super) fn short_word(b: &[u8], i: usize, len: usize) -> u64 {
    if len == 0 || len > 8 {
        return 0;
    }
    let mask = u64::MAX >> (64 - 8 * len);
    if let Some(w) = word(b, i) {
        return w & mask;
    }
    let mut chunk = [0u8; 8];
    if let (Some(dst), Some(src)) = (chunk.get_mut(..len), b.get(i..i + len)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(chunk)
}

/// The value of the hex digit `d`.
#[inline]
pub(super) fn hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}
