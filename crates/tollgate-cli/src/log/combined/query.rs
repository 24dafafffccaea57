//! The query string of a combined-log request: the first parameter of each mapped name,
//! percent-decoded.
use super::super::bytes::{find1, find2, has_percent_or_plus, hex};
use super::super::record::Val;

/// The query parameters of `line[s..e]` (a query, then maybe `#` and a fragment) that the
/// attributes `queries` (slot in `vals`, parameter name; at most 64 of them) read: the
/// first parameter of each name, in one pass over the query.
#[inline]
pub(super) fn query_params(
    line: &str,
    (s, e): (usize, usize),
    queries: &[(usize, Box<str>)],
    vals: &mut [Val],
    buf: &mut String,
    scratch: &mut Vec<u8>,
) {
    let b = &line.as_bytes()[..e];
    // The queries not found yet.
    let mut left: u64 = u64::MAX >> (64 - queries.len().clamp(1, 64));
    let mut pair_start = s;
    loop {
        let (pair_end, last) = match find2(b, pair_start, b'&', b'#') {
            Some(at) => (at, b[at] == b'#'),
            None => (e, true),
        };
        let (key_end, value_start) = match find1(&b[..pair_end], pair_start, b'=') {
            Some(eq) => (eq, eq + 1),
            None => (pair_end, pair_end),
        };
        let key = &b[pair_start..key_end];
        let mut hits = 0u64;
        if has_percent_or_plus(key) {
            let start = buf.len();
            percent_decode(&line[pair_start..key_end], scratch, buf);
            for (k, (_, name)) in queries.iter().enumerate().take(64) {
                if left >> k & 1 == 1 && buf[start..] == **name {
                    hits |= 1 << k;
                }
            }
            buf.truncate(start);
        } else {
            for (k, (_, name)) in queries.iter().enumerate().take(64) {
                if left >> k & 1 == 1 && short_eq(key, name.as_bytes()) {
                    hits |= 1 << k;
                }
            }
        }
        if hits != 0 {
            let val = if !has_percent_or_plus(&b[value_start..pair_end]) {
                Val::line(value_start, pair_end)
            } else {
                let start = buf.len();
                percent_decode(&line[value_start..pair_end], scratch, buf);
                Val::buf(start, buf.len())
            };
            for (k, &(slot, _)) in queries.iter().enumerate().take(64) {
                if hits >> k & 1 == 1 {
                    if let Some(v) = vals.get_mut(slot) {
                        *v = val;
                    }
                }
            }
            left &= !hits;
        }
        if last || left == 0 {
            return;
        }
        pair_start = pair_end + 1;
    }
}

/// `a == b`, without a call to `memcmp` for the short names of query parameters.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() <= 16 {
            a.iter().zip(b).all(|(x, y)| x == y)
        } else {
            a == b
        }
}

/// Percent-decodes `raw` (with `+` as a space) onto `out`. A `%` not followed by two hex
/// digits stays as is; bytes that do not decode to UTF-8 become U+FFFD.
fn percent_decode(raw: &str, scratch: &mut Vec<u8>, out: &mut String) {
    scratch.clear();
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => scratch.push(b' '),
            b'%' => match (
                b.get(i + 1).and_then(|&d| hex(d)),
                b.get(i + 2).and_then(|&d| hex(d)),
            ) {
                (Some(h), Some(l)) => {
                    scratch.push((h << 4) | l);
                    i += 3;
                    continue;
                }
                _ => scratch.push(c),
            },
            _ => scratch.push(c),
        }
        i += 1;
    }
    match std::str::from_utf8(scratch) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(scratch)),
    }
}
