//! The request line of a combined log, `METHOD TARGET [PROTOCOL]`, split into spans:
//! method, path, query and protocol; and the segments of the path.
use memchr::memchr;

use super::super::bytes::{find1, find2, rfind1};
use super::super::error::{excerpt, LineError};
use super::super::record::Val;
use super::fields::{skip_spaces, token};

/// The path of a request target.
#[derive(Clone, Copy, Debug)]
pub(super) enum Path {
    /// `line[s..e]`.
    Line(usize, usize),
    /// An absolute target without a path, such as `http://host`.
    Root,
}

/// The parts of a request line, as spans of the log line.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Request {
    pub(super) method: Option<(usize, usize)>,
    pub(super) path: Option<Path>,
    /// The query and the fragment, if any (without the '?').
    pub(super) query: Option<(usize, usize)>,
    pub(super) protocol: Option<(usize, usize)>,
}

/// Splits `line[start..end]`, a request line `METHOD TARGET [PROTOCOL]`.
#[inline]
pub(super) fn split_request(line: &str, start: usize, end: usize) -> Result<Request, LineError> {
    let text = &line[start..end];
    let mut req = Request::default();
    if text == "-" || text.is_empty() {
        return Ok(req);
    }
    let b = line.as_bytes();
    let method = token(b, start);
    let method = (method.0, method.1.min(end));
    if method.0 == method.1 || !b[method.0..method.1].iter().all(u8::is_ascii_alphabetic) {
        return Err(LineError::syntax(format!(
            "request {:?} does not start with a method",
            excerpt(text)
        )));
    }
    req.method = Some(method);
    let mut target_start = skip_spaces(b, method.1).min(end);
    let mut target_end = end;
    // The protocol is the last word, so that a target with spaces (logged as received)
    // stays whole.
    if let Some(sp) = rfind1(&b[target_start..end], b' ') {
        let p = target_start + sp + 1;
        req.protocol = (p < end).then_some((p, end));
        target_end = target_start + sp;
        while target_end > target_start && b[target_end - 1] == b' ' {
            target_end -= 1;
        }
    }
    if target_start == target_end {
        return Ok(req);
    }
    let target = &b[target_start..target_end];
    let q = find2(&b[..target_end], target_start, b'?', b'#').unwrap_or(target_end);
    if target.first() != Some(&b'/') {
        if let Some(n) = memchr::memmem::find(&b[target_start..q], b"://") {
            let authority = target_start + n + 3;
            match memchr(b'/', &b[authority..q]) {
                Some(n) => target_start = authority + n,
                None => target_start = q,
            }
        }
    }
    req.path = Some(if target_start == q {
        Path::Root
    } else {
        Path::Line(target_start, q)
    });
    if b.get(q) == Some(&b'?') {
        // The query ends at a '#', which `query_params` stops at.
        req.query = Some((q + 1, target_end));
    }
    Ok(req)
}

/// The 0-based `n`th `/`-separated segment of the path `line[s..e]`; absent if empty.
#[inline]
pub(super) fn path_segment(line: &str, s: usize, e: usize, n: usize) -> Val {
    let b = &line.as_bytes()[..e];
    let mut start = if b.get(s) == Some(&b'/') { s + 1 } else { s };
    for _ in 0..n {
        match find1(b, start, b'/') {
            Some(slash) => start = slash + 1,
            None => return Val::ABSENT,
        }
    }
    let end = find1(b, start, b'/').unwrap_or(e);
    if start == end {
        Val::ABSENT
    } else {
        Val::line(start, end)
    }
}
