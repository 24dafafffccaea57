//! The fields of a combined-log line: space-separated tokens, quoted fields (with their
//! backslash escapes decoded), and a `-` for an absent value.
use super::super::bytes::{closing_quote, find1, hex};
use super::super::record::Val;

/// `(start, end)` of the space-delimited token at `b[i..]`.
#[inline]
pub(super) fn token(b: &[u8], i: usize) -> (usize, usize) {
    let end = find1(b, i, b' ').unwrap_or(b.len());
    (i.min(end), end)
}

/// The index of the first byte at or after `i` that is not a space.
#[inline]
pub(super) fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// The contents of a quoted field, from just after the opening quote.
#[derive(Clone, Copy, Debug)]
pub(super) struct Quoted {
    pub(super) start: usize,
    /// The index of the closing quote.
    pub(super) end: usize,
    escaped: bool,
}

/// The quoted field whose opening quote is at `b[start - 1]`.
#[inline(always)]
pub(super) fn quoted(b: &[u8], start: usize) -> Option<Quoted> {
    let (end, escaped) = closing_quote(b, start)?;
    Some(Quoted {
        start,
        end,
        escaped,
    })
}

/// The token `line[s..e]`; absent if empty or `-`.
#[inline]
pub(super) fn dash_absent(line: &str, (s, e): (usize, usize)) -> Val {
    match line.as_bytes().get(s..e) {
        Some(b"" | b"-") | None => Val::ABSENT,
        _ => Val::line(s, e),
    }
}

/// A span of the line, if any.
#[inline]
pub(super) fn span_val(span: Option<(usize, usize)>) -> Val {
    span.map_or(Val::ABSENT, |(s, e)| Val::line(s, e))
}

/// A quoted referer or user agent: absent if missing or `-`; decoded if it has escapes
/// and decodes to UTF-8, otherwise as written.
#[inline]
pub(super) fn quoted_val(
    line: &str,
    q: Option<Quoted>,
    buf: &mut String,
    scratch: &mut Vec<u8>,
) -> Val {
    let Some(q) = q else { return Val::ABSENT };
    let raw = &line[q.start..q.end];
    if raw == "-" || raw.is_empty() {
        return Val::ABSENT;
    }
    if !q.escaped {
        return Val::line(q.start, q.end);
    }
    scratch.clear();
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            let decoded = match b.get(i + 1) {
                Some(&e @ (b'"' | b'\\')) => Some((e, 2)),
                Some(b'n') => Some((b'\n', 2)),
                Some(b't') => Some((b'\t', 2)),
                Some(b'r') => Some((b'\r', 2)),
                Some(b'x') => match (
                    b.get(i + 2).and_then(|&d| hex(d)),
                    b.get(i + 3).and_then(|&d| hex(d)),
                ) {
                    (Some(h), Some(l)) => Some(((h << 4) | l, 4)),
                    _ => None,
                },
                _ => None,
            };
            if let Some((byte, len)) = decoded {
                scratch.push(byte);
                i += len;
                continue;
            }
        }
        scratch.push(c);
        i += 1;
    }
    match std::str::from_utf8(scratch) {
        Ok(text) => {
            let start = buf.len();
            buf.push_str(text);
            Val::buf(start, buf.len())
        }
        Err(_) => Val::line(q.start, q.end),
    }
}
