//! Access-log lines: arbitrary bytes, read lossily as lines (and as raw byte lines),
//! through the JSON-lines and combined parsers of `tollgate-cli`, each with its default
//! mapping and with a mapping that reads every kind of source.
//!
//! Never panics; every error has a short, non-empty message; every value of an accepted
//! record is a sub-slice of the line, or a decoded copy only where the line has something
//! to decode (`\` escapes, `%` or `+` in a query); combined fields have their shape (the
//! method is ASCII letters, the status three digits, ...); the time is in jiff's range and,
//! for a plain combined time, equals jiff's reading of it; a fresh parser (empty date
//! cache) gives the same record as the parser that has seen the previous lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_cli::log::{Format, Mapping, Parser};

const JSON_SPEC: &str = "region=dc,n=n,flag=flag,time=ts,time_unit=ms";
const COMBINED_SPEC: &str = "h=host,i=ident,u=user,t=time,m=method,p=path,q=query:q,\
                             s0=path_segment:0,s1=path_segment:1,pr=protocol,st=status,\
                             b=bytes,r=referer,ua=user_agent";

type Owned = (i128, Vec<(String, String)>);

/// The parsers checked: JSON and combined, each with its defaults and with a mapping
/// that reads every kind of source.
const PARSERS: usize = 4;

fn parser(i: usize) -> Parser {
    match i {
        0 => Parser::with_defaults(Format::JsonLines),
        1 => Parser::new(&Mapping::parse(Format::JsonLines, JSON_SPEC).unwrap()),
        2 => Parser::with_defaults(Format::Combined),
        _ => Parser::new(&Mapping::parse(Format::Combined, COMBINED_SPEC).unwrap()),
    }
}

fn within(line: &str, value: &str) -> bool {
    let start = line.as_ptr() as usize;
    let at = value.as_ptr() as usize;
    at >= start && at + value.len() <= start + line.len()
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// Checks one accepted record against its line; returns it owned.
fn check(format: Format, line: &str, time: i128, attrs: &[(&str, &str)]) -> Owned {
    let range = jiff::Timestamp::MIN.as_nanosecond()..=jiff::Timestamp::MAX.as_nanosecond();
    assert!(range.contains(&time), "{line:?}: time {time} out of range");
    for &(name, value) in attrs {
        let copied = !within(line, value);
        match format {
            Format::JsonLines => assert!(
                !copied || line.contains('\\') || value == "true" || value == "false",
                "{line:?}: {name}={value:?} is neither in the line nor decoded"
            ),
            Format::Combined => {
                let shape = match name {
                    "method" | "m" => {
                        !value.is_empty() && value.bytes().all(|c| c.is_ascii_alphabetic())
                    }
                    "st" => value.len() == 3 && is_digits(value),
                    "b" => is_digits(value),
                    "client" | "h" | "i" | "u" | "user" => {
                        !value.is_empty() && value != "-" && !value.contains(' ')
                    }
                    "route" | "p" => !value.is_empty() && !value.contains(['?', '#']),
                    "s0" | "s1" => !value.is_empty() && !value.contains(['/', '?', '#']),
                    "r" | "ua" => !value.is_empty(),
                    _ => true,
                };
                assert!(shape, "{line:?}: {name}={value:?} has the wrong shape");
                let decoded_ok = match name {
                    "token" | "tenant" | "q" => line.contains(['%', '+']),
                    "r" | "ua" => line.contains('\\'),
                    "route" | "p" => value == "/",
                    _ => false,
                };
                assert!(
                    !copied || decoded_ok,
                    "{line:?}: {name}={value:?} is not from the line"
                );
            }
        }
    }
    if format == Format::Combined {
        if let Some(&(_, text)) = attrs.iter().find(|(n, _)| *n == "t") {
            let offset = &text.as_bytes()[text.len().saturating_sub(6)..];
            let plain = !text.contains('.') && !text.contains(":60 ") && !offset.contains(&b':');
            if let (true, Ok(tm)) = (
                plain,
                jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", text),
            ) {
                if let Ok(ts) = tm.to_timestamp() {
                    assert_eq!(
                        ts.as_nanosecond(),
                        time,
                        "{line:?}: jiff reads {text:?} differently"
                    );
                }
            }
        }
    }
    let attrs = attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    (time, attrs)
}

fn run(parsers: &mut [Parser], line: &str) {
    for (i, p) in parsers.iter_mut().enumerate() {
        let format = p.format();
        let warm = match p.parse(line) {
            Ok(r) => Ok(check(format, line, r.time_unix_nanos, r.attrs())),
            Err(e) => {
                assert!(!e.message.is_empty(), "{line:?}: empty message for {e:?}");
                assert!(
                    e.message.chars().count() <= 160,
                    "{line:?}: long message {:?}",
                    e.message
                );
                Err(e)
            }
        };
        let fresh = parser(i).parse(line).map(|r| {
            let attrs: Vec<(String, String)> = r
                .attrs()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            (r.time_unix_nanos, attrs)
        });
        assert_eq!(warm, fresh, "{line:?}: a fresh parser disagrees");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ps: Vec<Parser> = (0..PARSERS).map(parser).collect();
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        run(&mut ps, line);
    }
    // The raw bytes, line by line: errors only for blank or non-UTF-8 lines or as above.
    for line in data.split(|&b| b == b'\n') {
        for p in ps.iter_mut() {
            let format = p.format();
            match p.parse_bytes(line) {
                Ok(r) => {
                    let text = std::str::from_utf8(line).expect("accepted bytes are UTF-8");
                    check(format, text, r.time_unix_nanos, r.attrs());
                }
                Err(e) => assert!(!e.message.is_empty()),
            }
        }
    }
});
