//! The combined-log scanner: the NCSA combined log format and the common log format
//! (the same without the quoted referer and user agent), read field by field
//! ([`fields`]), with the request line split ([`request`]) and query parameters looked
//! up ([`query`]) only as far as the mapping needs.
mod fields;
mod query;
mod request;

use self::fields::{dash_absent, quoted, quoted_val, skip_spaces, span_val, token};
use self::query::query_params;
use self::request::{path_segment, split_request, Path, Request};
use super::bytes::find1;
use super::error::{excerpt, LineError};
use super::mapping::{Mapping, Source};
use super::record::{Val, Values};
use super::time::{parse_clf_time, DayCache};

/// A combined-log [`Source`] as [`CombinedScanner::scan`] reads it: a small `Copy` value
/// (a `Source` holds a `String`, which makes telling its variants apart costly).
#[derive(Clone, Copy, Debug)]
enum Clf {
    Host,
    Ident,
    User,
    Time,
    Method,
    Path,
    /// A query parameter, which `query_params` finds.
    Query,
    PathSegment(usize),
    Protocol,
    Status,
    Bytes,
    Referer,
    UserAgent,
    /// Not a combined-log source.
    None,
}

impl Clf {
    fn new(source: &Source) -> Clf {
        match source {
            Source::Host => Clf::Host,
            Source::Ident => Clf::Ident,
            Source::User => Clf::User,
            Source::Time => Clf::Time,
            Source::Method => Clf::Method,
            Source::Path => Clf::Path,
            Source::Query(_) => Clf::Query,
            Source::PathSegment(n) => Clf::PathSegment(*n),
            Source::Protocol => Clf::Protocol,
            Source::Status => Clf::Status,
            Source::Bytes => Clf::Bytes,
            Source::Referer => Clf::Referer,
            Source::UserAgent => Clf::UserAgent,
            Source::Field(_) => Clf::None,
        }
    }
}

/// The compiled combined-log side of a mapping.
#[derive(Debug)]
pub(super) struct CombinedScanner {
    /// The source of each attribute, compiled.
    clf: Vec<Clf>,
    /// The attributes that read a query parameter (slot, parameter name).
    queries: Vec<(usize, Box<str>)>,
    /// Whether a source needs the request line split.
    needs_request: bool,
    /// Bytes being decoded.
    scratch: Vec<u8>,
}

impl CombinedScanner {
    /// The scanner of `mapping`'s combined-log sources (none for a JSON mapping).
    pub(super) fn new(mapping: &Mapping) -> CombinedScanner {
        let clf = mapping.attrs().map(|(_, s)| Clf::new(s)).collect();
        let queries = mapping
            .attrs()
            .enumerate()
            .filter_map(|(slot, (_, s))| match s {
                Source::Query(name) => Some((slot, name.as_str().into())),
                _ => None,
            })
            .collect();
        let needs_request = mapping.attrs().any(|(_, s)| {
            matches!(
                s,
                Source::Method
                    | Source::Path
                    | Source::Protocol
                    | Source::Query(_)
                    | Source::PathSegment(_)
            )
        });
        CombinedScanner {
            clf,
            queries,
            needs_request,
            scratch: Vec::new(),
        }
    }

    /// Scans a combined or common log line: the values of mapped sources go to `out`;
    /// returns its time.
    #[inline(never)]
    pub(super) fn scan(
        &mut self,
        line: &str,
        out: &mut Values,
        day: &mut DayCache,
    ) -> Result<i128, LineError> {
        let b = line.as_bytes();
        let host = token(b, 0);
        if host.0 == host.1 {
            return Err(LineError::syntax("line does not start with a host"));
        }
        let ident = token(b, skip_spaces(b, host.1));
        let user = token(b, skip_spaces(b, ident.1));
        let mut i = skip_spaces(b, user.1);
        if b.get(i) != Some(&b'[') {
            return Err(LineError::syntax_at("expected '[' before the time", i));
        }
        let time_start = i + 1;
        let time_end = find1(b, time_start, b']')
            .ok_or_else(|| LineError::syntax("missing closing ']' of the time"))?;
        i = skip_spaces(b, time_end + 1);
        if b.get(i) != Some(&b'"') {
            return Err(LineError::syntax_at("expected the quoted request", i));
        }
        let request = quoted(b, i + 1)
            .ok_or_else(|| LineError::syntax("missing closing quote of the request"))?;
        let status = token(b, skip_spaces(b, request.end + 1));
        let status_text = &line[status.0..status.1];
        if status_text.len() != 3 || !status_text.bytes().all(|c| c.is_ascii_digit()) {
            return Err(LineError::syntax(format!(
                "status {:?} is not a 3-digit number",
                excerpt(status_text)
            )));
        }
        let bytes = token(b, skip_spaces(b, status.1));
        let bytes_text = &line[bytes.0..bytes.1];
        if bytes_text.is_empty()
            || (bytes_text != "-" && !bytes_text.bytes().all(|c| c.is_ascii_digit()))
        {
            return Err(LineError::syntax(format!(
                "byte count {:?} is not a number or '-'",
                excerpt(bytes_text)
            )));
        }
        i = skip_spaces(b, bytes.1);
        let mut referer = None;
        let mut agent = None;
        if b.get(i) == Some(&b'"') {
            let q = quoted(b, i + 1)
                .ok_or_else(|| LineError::syntax("missing closing quote of the referer"))?;
            i = skip_spaces(b, q.end + 1);
            referer = Some(q);
            if b.get(i) == Some(&b'"') {
                let q = quoted(b, i + 1)
                    .ok_or_else(|| LineError::syntax("missing closing quote of the user agent"))?;
                agent = Some(q);
            }
        }

        let req = if self.needs_request {
            split_request(line, request.start, request.end)?
        } else {
            Request::default()
        };

        let CombinedScanner {
            clf,
            queries,
            scratch,
            ..
        } = self;
        let Values { vals, buf } = out;
        for (source, val) in clf.iter().zip(vals.iter_mut()) {
            *val = match *source {
                Clf::Host => dash_absent(line, host),
                Clf::Ident => dash_absent(line, ident),
                Clf::User => dash_absent(line, user),
                Clf::Time => Val::line(time_start, time_end),
                Clf::Status => Val::line(status.0, status.1),
                Clf::Bytes => dash_absent(line, bytes),
                Clf::Method => span_val(req.method),
                Clf::Path => match req.path {
                    Some(Path::Line(s, e)) => Val::line(s, e),
                    Some(Path::Root) => Val::ROOT,
                    None => Val::ABSENT,
                },
                Clf::Protocol => span_val(req.protocol),
                Clf::PathSegment(n) => match req.path {
                    Some(Path::Line(s, e)) => path_segment(line, s, e, n),
                    _ => Val::ABSENT,
                },
                // Filled by `query_params` below.
                Clf::Query => Val::ABSENT,
                Clf::Referer => quoted_val(line, referer, buf, scratch),
                Clf::UserAgent => quoted_val(line, agent, buf, scratch),
                Clf::None => Val::ABSENT,
            };
        }
        if let Some(query) = req.query {
            // One pass over the query for each 64 query attributes.
            for group in queries.chunks(64) {
                query_params(line, query, group, vals, buf, scratch);
            }
        }
        parse_clf_time(day, &line[time_start..time_end])
    }
}
