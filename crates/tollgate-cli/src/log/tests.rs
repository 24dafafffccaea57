//! Unit tests of the log parser: both formats, times, the caches, and mappings.
use jiff::Timestamp;

use super::error::excerpt;
use super::*;

const CLF: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?token=abc HTTP/1.0" 200 2326 "http://ref" "Mozilla/4.08""#;

fn json(spec: &str) -> Parser {
    Parser::new(&Mapping::parse(Format::JsonLines, spec).unwrap())
}

fn combined(spec: &str) -> Parser {
    Parser::new(&Mapping::parse(Format::Combined, spec).unwrap())
}

/// `(time, attrs)` of a line, owned.
fn parse(p: &mut Parser, line: &str) -> (i128, Vec<(String, String)>) {
    let r = p.parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let attrs = r
        .attrs()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    (r.time_unix_nanos, attrs)
}

fn get(p: &mut Parser, line: &str, name: &str) -> Option<String> {
    let r = p.parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    r.get(name).map(str::to_owned)
}

fn err(p: &mut Parser, line: &str) -> LineError {
    match p.parse(line) {
        Ok(r) => panic!("{line:?} parsed: {r:?}"),
        Err(e) => e,
    }
}

fn jiff_nanos(rfc3339: &str) -> i128 {
    rfc3339.parse::<Timestamp>().unwrap().as_nanosecond()
}

fn jiff_clf_nanos(clf: &str) -> i128 {
    jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", clf)
        .unwrap()
        .to_timestamp()
        .unwrap()
        .as_nanosecond()
}

// ---- JSON lines -----------------------------------------------------------------------

#[test]
fn json_default_mapping() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    let line = r#"{"time":"2026-11-22T10:00:00Z","method":"GET","path":"/v1/x","client":"10.0.0.1","token":"t1","tenant":"acme","user":"u","company":"c","other":"x"}"#;
    let (t, attrs) = parse(&mut p, line);
    assert_eq!(t, jiff_nanos("2026-11-22T10:00:00Z"));
    let expect = [
        ("method", "GET"),
        ("route", "/v1/x"),
        ("client", "10.0.0.1"),
        ("token", "t1"),
        ("tenant", "acme"),
        ("user", "u"),
        ("company", "c"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(attrs, expect);
}

#[test]
fn json_missing_attribute_is_absent() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    let (_, attrs) = parse(&mut p, r#"{"time":0,"token":"t"}"#);
    assert_eq!(attrs, vec![("token".to_owned(), "t".to_owned())]);
    let (_, attrs) = parse(&mut p, r#"  { "time" : 0 }  "#);
    assert!(attrs.is_empty());
}

#[test]
fn json_host_attributes_and_shared_fields() {
    let mut p = json("region=dc,client=user,time=ts");
    let line = r#"{"ts":1,"dc":"eu-1","user":"bob"}"#;
    let (t, attrs) = parse(&mut p, line);
    assert_eq!(t, 1_000_000_000);
    let attrs: Vec<(&str, &str)> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [("client", "bob"), ("user", "bob"), ("region", "eu-1")]
    );
}

#[test]
fn json_escapes_are_decoded() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    let cases = [
        r#""a\"b\\c\/d""#,
        r#""\b\f\n\r\t""#,
        r#""caf\u00e9 \u00E9""#,
        r#""\ud83d\ude00 smile""#,
        r#""\u0000 nul""#,
        r#""plain ünïcödé 😀""#,
        r#""""#,
    ];
    for raw in cases {
        let expect: String = serde_json::from_str(raw).unwrap();
        let line = format!(r#"{{"time":0,"token":{raw}}}"#);
        assert_eq!(
            get(&mut p, &line, "token").as_deref(),
            Some(&*expect),
            "{raw}"
        );
    }
    // An escaped key still matches its field.
    let line = r#"{"\u0074oken":"x","ti\u006de":5}"#;
    let (t, attrs) = parse(&mut p, line);
    assert_eq!(t, 5_000_000_000);
    assert_eq!(attrs, vec![("token".to_owned(), "x".to_owned())]);
    // Several escaped values share the buffer.
    let line = r#"{"time":0,"token":"a\tb","tenant":"c\nd","user":"e\"f"}"#;
    let r = p.parse(line).unwrap();
    assert_eq!(r.get("token"), Some("a\tb"));
    assert_eq!(r.get("tenant"), Some("c\nd"));
    assert_eq!(r.get("user"), Some("e\"f"));
}

#[test]
fn json_bad_escapes_are_errors() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    for raw in [
        r#""\x41""#,
        r#""\u12""#,
        r#""\ud83d""#,
        r#""\ude00""#,
        r#""\ud83d\u0041""#,
    ] {
        let line = format!(r#"{{"time":0,"token":{raw}}}"#);
        let e = err(&mut p, &line);
        assert_eq!(e.kind, LineErrorKind::Syntax, "{raw}");
        assert!(e.message.contains("escape"), "{raw}: {}", e.message);
    }
    // Unmapped fields are skipped without decoding them.
    assert!(p.parse(r#"{"time":0,"other":"\x"}"#).is_ok());
}

#[test]
fn json_numbers_literals_and_nested_values() {
    let mut p = json("n=n,f=f,t=t,z=z,o=o,a=a");
    let line = r#"{"time":0,"n":-12.5e3,"t":true,"f":false,"z":null,"o":{"a":[1,{"b":"}]\""}],"c":{}},"a":[[],[{}],"[{"]}"#;
    let (_, attrs) = parse(&mut p, line);
    let attrs: Vec<(&str, &str)> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(attrs, [("n", "-12.5e3"), ("f", "false"), ("t", "true")]);
    for bad in ["01", "1.", "-", "1e", ".5", "+1", "1.e3"] {
        let line = format!(r#"{{"time":0,"n":{bad}}}"#);
        assert_eq!(err(&mut p, &line).kind, LineErrorKind::Syntax, "{bad}");
    }
}

#[test]
fn json_duplicate_field_last_wins() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    let line = r#"{"time":1,"token":"a","token":"b","time":2}"#;
    let (t, attrs) = parse(&mut p, line);
    assert_eq!(t, 2_000_000_000);
    assert_eq!(attrs, vec![("token".to_owned(), "b".to_owned())]);
    let line = r#"{"time":1,"token":"a","token":null}"#;
    assert_eq!(parse(&mut p, line).1, vec![]);
}

#[test]
fn json_syntax_errors() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    let cases = [
        ("[1,2]", "line is not a JSON object"),
        ("hello", "line is not a JSON object"),
        (r#"{"time":0} x"#, "unexpected text after the JSON object"),
        (r#"{"time" 0}"#, "expected ':' after a field name"),
        (r#"{"time":0,}"#, "expected a field name"),
        (r#"{"time":0 "a":1}"#, "expected ',' or '}'"),
        (r#"{"time":0,"a":"b}"#, "unterminated string"),
        (r#"{"time":0,"a"#, "unterminated field name"),
        (r#"{"time":0,"a":[1,2}"#, "mismatched bracket"),
        (r#"{"time":0,"a":[1,2"#, "unclosed object or array"),
        (r#"{"time":0,"a":nul}"#, "invalid value"),
        (r#"{"time":"#, "line ends where a value should be"),
        (r#"{"time":0"#, "expected ',' or '}'"),
    ];
    for (line, why) in cases {
        let e = err(&mut p, line);
        assert_eq!(e.kind, LineErrorKind::Syntax, "{line}: {e}");
        assert!(e.message.starts_with(why), "{line}: {e}");
    }
    let deep = format!(r#"{{"time":0,"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    assert!(err(&mut p, &deep).message.contains("nested too deeply"));
    let ok = format!(r#"{{"time":0,"a":{}{}}}"#, "[".repeat(128), "]".repeat(128));
    assert!(p.parse(&ok).is_ok());
}

#[test]
fn json_time_forms() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    let rfc = [
        "2026-11-22T10:00:00Z",
        "2026-11-22t10:00:00z",
        "2026-11-22 10:00:00Z",
        "2026-11-22T10:00:00.1Z",
        "2026-11-22T10:00:00.123Z",
        "2026-11-22T10:00:00.123456789Z",
        "2026-11-22T10:00:00-07:00",
        "2026-11-22T10:00:00+05:30",
        "2026-11-22T23:59:59.999+14:00",
        "2026-11-22T00:00:00-12:00",
        "2016-12-31T23:59:60Z",
        "2016-12-31T23:59:60.5-01:00",
        "2024-02-29T12:00:00Z",
        "1969-12-31T23:59:59.5Z",
        "0001-01-01T00:00:00Z",
        "9999-12-30T00:00:00Z",
    ];
    for text in rfc {
        let line = format!(r#"{{"time":"{text}"}}"#);
        assert_eq!(parse(&mut p, &line).0, jiff_nanos(text), "{text}");
    }
    // Forms jiff does not read the same way, checked by hand.
    let base = jiff_nanos("2026-11-22T10:00:00+05:30");
    let line = r#"{"time":"2026-11-22T10:00:00+0530"}"#;
    assert_eq!(parse(&mut p, line).0, base);
    let line = r#"{"time":"2026-11-22T10:00:00.1234567891234+05:30"}"#;
    assert_eq!(parse(&mut p, line).0, base + 123_456_789);
    let line = r#"{"time":"2026-11-22T10:00:00\u002B05:30"}"#;
    assert_eq!(parse(&mut p, line).0, base);
}

#[test]
fn json_epoch_times() {
    let cases: [(&str, &str, i128); 14] = [
        ("s", "1700000000", 1_700_000_000_000_000_000),
        ("s", "1700000000.123456789", 1_700_000_000_123_456_789),
        ("s", "1700000000.1234567899", 1_700_000_000_123_456_789),
        ("s", "1.7e9", 1_700_000_000_000_000_000),
        ("s", "17E+8", 1_700_000_000_000_000_000),
        ("s", "-1.5", -1_500_000_000),
        ("s", "0", 0),
        ("s", "\"1700000000.5\"", 1_700_000_000_500_000_000),
        ("ms", "1700000000123", 1_700_000_000_123_000_000),
        ("ms", "1700000000123.456", 1_700_000_000_123_456_000),
        ("ms", "1.700000000123e12", 1_700_000_000_123_000_000),
        ("us", "1700000000123456", 1_700_000_000_123_456_000),
        ("ns", "1700000000123456789", 1_700_000_000_123_456_789),
        ("ns", "1.5e-3", 0),
    ];
    for (unit, text, nanos) in cases {
        let mut p = json(&format!("time_unit={unit}"));
        let line = format!(r#"{{"time":{text}}}"#);
        assert_eq!(parse(&mut p, &line).0, nanos, "{unit} {text}");
    }
    let mut p = Parser::with_defaults(Format::JsonLines);
    for text in ["1e20", "-1e20", "253402300800"] {
        let line = format!(r#"{{"time":{text}}}"#);
        let e = err(&mut p, &line);
        assert_eq!(e.kind, LineErrorKind::InvalidTime, "{text}");
        assert!(e.message.contains("out of range"), "{text}: {e}");
    }
    let max = Timestamp::MAX.as_second();
    let line = format!(r#"{{"time":{max}}}"#);
    assert_eq!(parse(&mut p, &line).0, i128::from(max) * 1_000_000_000);
}

#[test]
fn json_time_errors() {
    let mut p = Parser::with_defaults(Format::JsonLines);
    let cases = [
        (
            r#"{"token":"a"}"#,
            LineErrorKind::MissingTime,
            r#"no time field "time""#,
        ),
        (
            r#"{"time":null}"#,
            LineErrorKind::InvalidTime,
            r#"time field "time" is not a string or a number"#,
        ),
        (
            r#"{"time":{"s":1}}"#,
            LineErrorKind::InvalidTime,
            r#"time field "time" is not a string or a number"#,
        ),
        (
            r#"{"time":"xx"}"#,
            LineErrorKind::InvalidTime,
            r#"time "xx" is not RFC 3339"#,
        ),
        (
            r#"{"time":"2026-02-30T10:00:00Z"}"#,
            LineErrorKind::InvalidTime,
            r#"time "2026-02-30T10:00:00Z" is not a calendar date"#,
        ),
        (
            r#"{"time":"2025-02-29T10:00:00Z"}"#,
            LineErrorKind::InvalidTime,
            "is not a calendar date",
        ),
        (
            r#"{"time":"2026-11-22T24:00:00Z"}"#,
            LineErrorKind::InvalidTime,
            "is not RFC 3339",
        ),
        (
            r#"{"time":"2026-11-22T10:60:00Z"}"#,
            LineErrorKind::InvalidTime,
            "is not RFC 3339",
        ),
        (
            r#"{"time":"2026-11-22T10:00:61Z"}"#,
            LineErrorKind::InvalidTime,
            "is not RFC 3339",
        ),
        (
            r#"{"time":"2026-11-22T10:00:00"}"#,
            LineErrorKind::InvalidTime,
            "has no UTC offset",
        ),
        (
            r#"{"time":"2026-11-22T10:00:00+05:60"}"#,
            LineErrorKind::InvalidTime,
            "is not RFC 3339",
        ),
        (
            r#"{"time":"2026-11-22T10:00:00+26:00"}"#,
            LineErrorKind::InvalidTime,
            "out-of-range UTC offset",
        ),
        (
            r#"{"time":"2026-11-22T10:00:00.Z"}"#,
            LineErrorKind::InvalidTime,
            "is not RFC 3339",
        ),
        (
            r#"{"time":"2026-11-22T10:00:00Zjunk"}"#,
            LineErrorKind::InvalidTime,
            "is not RFC 3339",
        ),
        (
            r#"{"time":"2026-1-22T10:00:00Z"}"#,
            LineErrorKind::InvalidTime,
            "is not RFC 3339",
        ),
        (
            r#"{"time":"2026-13-01T10:00:00Z"}"#,
            LineErrorKind::InvalidTime,
            "is not a calendar date",
        ),
        (
            r#"{"time":"2026-00-01T10:00:00Z"}"#,
            LineErrorKind::InvalidTime,
            "is not a calendar date",
        ),
        (
            r#"{"time":"9999-12-31T23:00:00-10:00"}"#,
            LineErrorKind::InvalidTime,
            "is out of range",
        ),
    ];
    for (line, kind, why) in cases {
        let e = err(&mut p, line);
        assert_eq!(e.kind, kind, "{line}: {e}");
        assert!(e.message.contains(why), "{line}: {e}");
    }
    // The message quotes an excerpt, never a long value in full.
    let long = format!(r#"{{"time":"{}"}}"#, "y".repeat(10_000));
    assert!(err(&mut p, &long).message.len() < 100);
}

// ---- combined -------------------------------------------------------------------------

#[test]
fn combined_default_mapping() {
    let mut p = Parser::with_defaults(Format::Combined);
    let (t, attrs) = parse(&mut p, CLF);
    assert_eq!(t, 971_211_336_000_000_000);
    assert_eq!(t, jiff_clf_nanos("10/Oct/2000:13:55:36 -0700"));
    let attrs: Vec<(&str, &str)> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("client", "127.0.0.1"),
            ("user", "frank"),
            ("method", "GET"),
            ("route", "/apache_pb.gif"),
            ("token", "abc"),
        ]
    );
}

#[test]
fn combined_every_source() {
    let spec = "client=,user=,method=,route=,token=,tenant=,h=host,i=ident,u=user,t=time,\
                m=method,p=path,q=query:q,s0=path_segment:0,s1=path_segment:1,\
                s5=path_segment:5,pr=protocol,st=status,b=bytes,r=referer,ua=user_agent";
    let mut p = combined(spec);
    let line = r#"::1 id frank [10/Oct/2000:13:55:36 +0530] "POST /v1/acme/items?q=x%20y HTTP/1.1" 201 15 "http://ref/" "curl/8.0""#;
    let (t, attrs) = parse(&mut p, line);
    assert_eq!(t, jiff_clf_nanos("10/Oct/2000:13:55:36 +0530"));
    let attrs: Vec<(&str, &str)> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("h", "::1"),
            ("i", "id"),
            ("u", "frank"),
            ("t", "10/Oct/2000:13:55:36 +0530"),
            ("m", "POST"),
            ("p", "/v1/acme/items"),
            ("q", "x y"),
            ("s0", "v1"),
            ("s1", "acme"),
            ("pr", "HTTP/1.1"),
            ("st", "201"),
            ("b", "15"),
            ("r", "http://ref/"),
            ("ua", "curl/8.0"),
        ]
    );
}

#[test]
fn common_format_and_dashes() {
    let mut p = combined("b=bytes,r=referer,ua=user_agent,i=ident");
    let line = r#"10.1.2.3 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 304 -"#;
    let (_, attrs) = parse(&mut p, line);
    let attrs: Vec<(&str, &str)> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [("client", "10.1.2.3"), ("method", "GET"), ("route", "/")]
    );
    // Referer without user agent; a `-` referer; trailing nginx fields; `\r\n`.
    let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5 "-""#;
    assert_eq!(get(&mut p, line, "r"), None);
    let line = "h - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 5 \"ref\" \"ua\" \"1.2.3.4\" 0.003\r\n";
    assert_eq!(get(&mut p, line, "ua").as_deref(), Some("ua"));
    assert_eq!(get(&mut p, line, "b").as_deref(), Some("5"));
    // Runs of spaces between fields.
    let line = r#"h  -  u  [10/Oct/2000:13:55:36 -0700]  "GET /x HTTP/1.0"  200  5"#;
    assert_eq!(get(&mut p, line, "route").as_deref(), Some("/x"));
    assert_eq!(get(&mut p, line, "user").as_deref(), Some("u"));
}

#[test]
fn combined_query_parameters() {
    let mut p = combined("a=query:a,b=query:b,c=query:c,d=query:d k,e=query:e,f=query:f");
    let line =
        |q: &str| format!(r#"h - - [10/Oct/2000:13:55:36 -0700] "GET /p?{q} HTTP/1.0" 200 1"#);
    let cases: [(&str, &[(&str, &str)]); 7] = [
        ("a=1&b=2", &[("a", "1"), ("b", "2")]),
        ("a=x+y%2Bz&b=%e2%82%AC", &[("a", "x y+z"), ("b", "€")]),
        ("a=%zz%4&b=100%", &[("a", "%zz%4"), ("b", "100%")]),
        ("a=%ff%fe", &[("a", "\u{fffd}\u{fffd}")]),
        (
            "a=first&a=second&c&e=",
            &[("a", "first"), ("c", ""), ("e", "")],
        ),
        ("d+k=1&%61=2", &[("a", "2"), ("d", "1")]),
        ("f=1#a=2", &[("f", "1")]),
    ];
    for (q, expect) in cases {
        let (_, attrs) = parse(&mut p, &line(q));
        let got: Vec<(&str, &str)> = attrs
            .iter()
            .filter(|(k, _)| k.len() == 1)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expect, "{q}");
    }
}

#[test]
fn combined_paths_and_requests() {
    let mut p = combined("s0=path_segment:0,s1=path_segment:1,s2=path_segment:2,pr=protocol");
    let line = |req: &str| format!(r#"h - - [10/Oct/2000:13:55:36 -0700] "{req}" 400 0"#);
    let cases: [(&str, &[(&str, &str)]); 9] = [
        (
            "GET /a/b/c HTTP/1.1",
            &[
                ("method", "GET"),
                ("route", "/a/b/c"),
                ("s0", "a"),
                ("s1", "b"),
                ("s2", "c"),
                ("pr", "HTTP/1.1"),
            ],
        ),
        (
            "GET /a//c/ HTTP/1.1",
            &[
                ("method", "GET"),
                ("route", "/a//c/"),
                ("s0", "a"),
                ("s2", "c"),
                ("pr", "HTTP/1.1"),
            ],
        ),
        (
            "GET / HTTP/1.1",
            &[("method", "GET"), ("route", "/"), ("pr", "HTTP/1.1")],
        ),
        ("GET /x", &[("method", "GET"), ("route", "/x"), ("s0", "x")]),
        ("GET", &[("method", "GET")]),
        ("-", &[]),
        ("", &[]),
        (
            "GET http://example.com/v/1?a=b HTTP/1.1",
            &[
                ("method", "GET"),
                ("route", "/v/1"),
                ("s0", "v"),
                ("s1", "1"),
                ("pr", "HTTP/1.1"),
            ],
        ),
        (
            "CONNECT example.com:443 HTTP/1.1",
            &[
                ("method", "CONNECT"),
                ("route", "example.com:443"),
                ("s0", "example.com:443"),
                ("pr", "HTTP/1.1"),
            ],
        ),
    ];
    for (req, expect) in cases {
        let (_, attrs) = parse(&mut p, &line(req));
        let got: Vec<(&str, &str)> = attrs
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "client"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expect, "{req}");
    }
    assert_eq!(
        get(&mut p, &line("GET http://example.com HTTP/1.1"), "route").as_deref(),
        Some("/")
    );
    let e = err(&mut p, &line("\\x16\\x03\\x01 HTTP/1.1"));
    assert_eq!(e.kind, LineErrorKind::Syntax);
    assert!(e.message.contains("does not start with a method"), "{e}");
}

#[test]
fn combined_quoted_escapes() {
    let mut p = combined("r=referer,ua=user_agent");
    let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "a\"b\\c" "x\x22y \xc3\xa9 \t \q""#;
    let r = p.parse(line).unwrap();
    assert_eq!(r.get("r"), Some("a\"b\\c"));
    assert_eq!(r.get("ua"), Some("x\"y é \t \\q"));
    drop(r);
    // Escapes that decode to bytes that are not UTF-8 leave the field as written.
    let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "-" "\xff\xfe""#;
    assert_eq!(get(&mut p, line, "ua").as_deref(), Some(r"\xff\xfe"));
    // An escaped quote inside the request does not end it.
    let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET /a\"b HTTP/1.0" 200 1"#;
    assert_eq!(get(&mut p, line, "route").as_deref(), Some(r#"/a\"b"#));
}

#[test]
fn combined_times() {
    let mut p = combined("");
    let times = [
        "10/Oct/2000:13:55:36 -0700",
        "10/oct/2000:13:55:36 -0700",
        "01/Jan/1970:00:00:00 +0000",
        "31/Dec/1969:23:59:59 +0000",
        "29/Feb/2024:23:59:59 +1400",
        "01/Mar/2024:00:00:00 -1200",
        "31/Dec/2016:23:59:60 +0000",
    ];
    for text in times {
        let line = format!(r#"h - - [{text}] "GET / HTTP/1.0" 200 1"#);
        let expect = jiff_clf_nanos(&text.replace(":60 ", ":59 "));
        assert_eq!(parse(&mut p, &line).0, expect, "{text}");
    }
    let line = r#"h - - [10/Oct/2000:13:55:36.25 -07:00] "GET / HTTP/1.0" 200 1"#;
    assert_eq!(
        parse(&mut p, line).0,
        jiff_clf_nanos("10/Oct/2000:13:55:36 -0700") + 250_000_000
    );
}

#[test]
fn combined_errors() {
    let mut p = Parser::with_defaults(Format::Combined);
    let cases = [
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0 200 1"#,
            LineErrorKind::Syntax,
            "missing closing quote of the request",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700 "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::Syntax,
            "missing closing ']' of the time",
        ),
        (
            r#"h - - 10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::Syntax,
            "expected '[' before the time",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700] GET / HTTP/1.0 200 1"#,
            LineErrorKind::Syntax,
            "expected the quoted request",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 2000 1"#,
            LineErrorKind::Syntax,
            "status \"2000\" is not a 3-digit number",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200"#,
            LineErrorKind::Syntax,
            "byte count \"\" is not a number",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1k"#,
            LineErrorKind::Syntax,
            "byte count \"1k\"",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "ref"#,
            LineErrorKind::Syntax,
            "missing closing quote of the referer",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "ref" "ua"#,
            LineErrorKind::Syntax,
            "missing closing quote of the user agent",
        ),
        (
            r#" - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::Syntax,
            "line does not start with a host",
        ),
        (
            r#"h - - [10/Okt/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::InvalidTime,
            "is not dd/Mon/yyyy:HH:MM:SS ±hhmm",
        ),
        (
            r#"h - - [31/Apr/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::InvalidTime,
            "is not a calendar date",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::InvalidTime,
            "is not dd/Mon/yyyy",
        ),
        (
            r#"h - - [10/Oct/2000:25:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::InvalidTime,
            "is not dd/Mon/yyyy",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0760] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::InvalidTime,
            "is not dd/Mon/yyyy",
        ),
        (
            r#"h - - [10/Oct/2000:13:55:36 -0700x] "GET / HTTP/1.0" 200 1"#,
            LineErrorKind::InvalidTime,
            "is not dd/Mon/yyyy",
        ),
        (
            r#"{"time":"2026-11-22T10:00:00Z"}"#,
            LineErrorKind::Syntax,
            "expected '[' before the time",
        ),
    ];
    for (line, kind, why) in cases {
        let e = err(&mut p, line);
        assert_eq!(e.kind, kind, "{line}: {e}");
        assert!(e.message.contains(why), "{line}: {e}");
    }
}

// ---- both -----------------------------------------------------------------------------

#[test]
fn blank_lines_newlines_and_bytes() {
    for format in [Format::JsonLines, Format::Combined] {
        let mut p = Parser::with_defaults(format);
        for blank in ["", "   ", "\n", "\r\n", " \t \r\n"] {
            assert_eq!(err(&mut p, blank).kind, LineErrorKind::Blank, "{blank:?}");
        }
        let e = p.parse_bytes(b"{\"time\":\"\xff\"}").unwrap_err();
        assert_eq!(e.kind, LineErrorKind::InvalidUtf8);
        assert_eq!(e.message, "line is not UTF-8 (byte 9)");
    }
    let mut p = Parser::with_defaults(Format::JsonLines);
    let r = p
        .parse_bytes(b"{\"time\":1,\"token\":\"\xc3\xa9\"}\r\n")
        .unwrap();
    assert_eq!(
        (r.time_unix_nanos, r.get("token")),
        (1_000_000_000, Some("é"))
    );
}

#[test]
fn day_cache_follows_date_and_offset_changes() {
    // One parser across changes of date and of offset must agree with jiff on the
    // whole timestamp, and with a fresh parser (empty cache) on every line.
    let rfc = [
        "2026-11-22T10:00:00Z",
        "2026-11-22T23:59:59.999999999Z",
        "2026-11-23T00:00:00Z",
        "2026-11-23T00:00:00+01:00",
        "2026-11-23T00:00:00-01:00",
        "2026-11-23T05:00:00-01:00",
        "2026-11-23T05:00:00+0100",
        "2026-12-31T23:59:59Z",
        "2027-01-01T00:00:00Z",
        "2027-01-01T00:00:00+05:30",
        "2026-11-22T10:00:00Z",
    ];
    let mut warm = Parser::with_defaults(Format::JsonLines);
    for text in rfc {
        let line = format!(r#"{{"time":"{text}"}}"#);
        let t = parse(&mut warm, &line).0;
        assert_eq!(
            t,
            parse(&mut Parser::with_defaults(Format::JsonLines), &line).0
        );
        let jiff_text = text.replace("+0100", "+01:00");
        assert_eq!(t, jiff_nanos(&jiff_text), "{text}");
        assert_eq!(&warm.day.date[..10], &text.as_bytes()[..10]);
    }
    let clf = [
        "10/Oct/2000:13:55:36 -0700",
        "10/Oct/2000:23:59:59 -0700",
        "11/Oct/2000:00:00:00 -0700",
        "11/Oct/2000:00:00:00 +0000",
        "11/Oct/2000:00:00:00 +0530",
        "31/Dec/2000:23:59:59 +0530",
        "01/Jan/2001:00:00:00 +0530",
        "10/Oct/2000:13:55:36 -0700",
    ];
    let mut warm = Parser::with_defaults(Format::Combined);
    for text in clf {
        let line = format!(r#"h - - [{text}] "GET / HTTP/1.0" 200 1"#);
        let t = parse(&mut warm, &line).0;
        assert_eq!(
            t,
            parse(&mut Parser::with_defaults(Format::Combined), &line).0
        );
        assert_eq!(t, jiff_clf_nanos(text), "{text}");
        assert_eq!(&warm.day.date[..11], &text.as_bytes()[..11]);
    }
    // A bad date does not disturb the cache.
    assert!(warm
        .parse(r#"h - - [31/Feb/2001:00:00:00 +0530] "GET / HTTP/1.0" 200 1"#)
        .is_err());
    assert_eq!(&warm.day.date[..11], b"10/Oct/2000");
}

#[test]
fn warm_parsers_agree_with_fresh_ones() {
    // A parser learns the order of JSON field names and the last hour it read; one
    // parser carried across lines whose fields and times change in every way must
    // agree with a fresh parser on each line.
    let outcome = |p: &mut Parser, line: &str| match p.parse(line) {
        Ok(r) => Ok((
            r.time_unix_nanos,
            r.attrs()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )),
        Err(e) => Err((e.kind, e.message)),
    };
    let json = [
        r#"{"time":"2026-11-22T10:00:00Z","token":"a","tenant":"b","n":1}"#,
        r#"{"time":"2026-11-22T10:59:59.5Z","token":"a","tenant":"b","n":12}"#,
        r#"{"time":"2026-11-22T11:00:00Z","tenant":"b","token":"a","n":123}"#,
        r#"{"time":"2026-11-22T11:00:00+01:00","token":"a","user":"u","tenant":"b"}"#,
        r#"{"time":"2026-11-22T11:60:00Z","token":"a","tenant":"b"}"#,
        r#"{"time":"2026-11-22T11:05:61Z","token":"a","tenant":"b"}"#,
        r#"{"time":"2026-11-22T11:05:00Z","token":"a","tenant":"b","n":1234}"#,
        r#"{"time":"2026-11-22T11:05:00Z","tok":"a","tenant":"b","n":1}"#,
        r#"{"time":"2026-11-22T11:05:00Z" , "token" :"a","tenant": "b","n":1 }"#,
        r#"{"time":"2026-11-22T11:05:00Z","\u0074oken":"e","tenant":"b\"c"}"#,
        r#"{"time":"2026-11-22T11:05:00Z","token":"a","tenant":"b","n":1"#,
        r#"{"time":"2026-11-22T11:05:00Z","token":"a","tenant"#,
        r#"{"time":"2026-11-22T11:05:00Z","token":"a","a_rather_long_name":{"x":[1]}}"#,
        r#"{"time":"2026-11-23T11:05:00Z","token":"a","a_rather_long_name":1}"#,
        r#"{"token":"a","time":"2026-11-23T11:05:00.000000001Z","n":12345678901}"#,
        r#"{"time":"2026-11-22T10:00:00Z","token":"a","tenant":"b","n":1}"#,
    ];
    let mut warm = json_mapping_parser();
    for _ in 0..2 {
        for line in json {
            let fresh = outcome(&mut json_mapping_parser(), line);
            assert_eq!(outcome(&mut warm, line), fresh, "{line}");
        }
    }
    // Fields in no fixed order: the parser stops learning for a while, and still
    // agrees.
    let names = ["token", "tenant", "user", "n", "company", "client"];
    let mut warm = json_mapping_parser();
    for k in 0..200usize {
        let mut fields: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(j, _)| (k + j) % 5 != 0)
            .map(|(j, name)| format!(r#""{name}":"v{}""#, (k * 7 + j) % 11))
            .collect();
        let turn = k % fields.len();
        fields.rotate_left(turn);
        let line = format!(
            r#"{{"time":"2026-11-22T10:{:02}:00Z",{}}}"#,
            k % 60,
            fields.join(",")
        );
        let fresh = outcome(&mut json_mapping_parser(), &line);
        assert_eq!(outcome(&mut warm, &line), fresh, "{line}");
    }
    assert!(!warm.json.schema.active());
    let clf = [
        "01/Nov/2026:10:00:00 +0000",
        "01/Nov/2026:10:59:59 +0000",
        "01/Nov/2026:10:59:60 +0000",
        "01/Nov/2026:10:60:00 +0000",
        "01/Nov/2026:10:05:00 -0700",
        "01/Nov/2026:10:05:00.25 -07:00",
        "01/Nov/2026:11:00:00 -0700",
        "01/nov/2026:11:00:00 -0700",
        "02/Nov/2026:11:00:00 -0700",
        "02/Nov/2026:11:00:00 +0000x",
    ];
    let mut warm = Parser::with_defaults(Format::Combined);
    for _ in 0..2 {
        for text in clf {
            let line = format!(r#"h - - [{text}] "GET /?token=a&b=c HTTP/1.0" 200 1"#);
            let fresh = outcome(&mut Parser::with_defaults(Format::Combined), &line);
            assert_eq!(outcome(&mut warm, &line), fresh, "{line}");
        }
    }
}

#[test]
fn same_hour_with_a_numeric_offset() {
    // The same-hour fast path serves RFC 3339 times at any offset, as it does combined
    // ones: a warm parser agrees with jiff and with a fresh parser.
    let rfc = [
        "2026-11-22T10:00:00+05:30",
        "2026-11-22T10:17:42.25+05:30",
        "2026-11-22T10:17:42.25+0530",
        "2026-11-22T10:59:60-05:30",
        "2026-11-22T10:30:00-05:30",
        "2026-11-22T10:30:00Z",
        "2026-11-22T10:30:00+05:30",
    ];
    let mut warm = Parser::with_defaults(Format::JsonLines);
    for text in rfc {
        let line = format!(r#"{{"time":"{text}"}}"#);
        let t = parse(&mut warm, &line).0;
        let fresh = parse(&mut Parser::with_defaults(Format::JsonLines), &line).0;
        assert_eq!(t, fresh, "{text}");
        let jiff_text = text.replace("+0530", "+05:30").replace(":60-", ":59-");
        assert_eq!(t, jiff_nanos(&jiff_text), "{text}");
    }
    for bad in ["2026-11-22T10:30:00+05:60", "2026-11-22T10:30:00+05:3"] {
        let line = format!(r#"{{"time":"{bad}"}}"#);
        assert_eq!(
            err(&mut warm, &line).kind,
            LineErrorKind::InvalidTime,
            "{bad}"
        );
    }
}

#[test]
fn more_than_64_query_attributes() {
    // Query attributes are looked up 64 at a time; those past the 64th get the first
    // parameter of their name like the others.
    let spec: Vec<String> = (0..70).map(|k| format!("q{k}=query:p{k}")).collect();
    let mut p = combined(&spec.join(","));
    let query: Vec<String> = (0..70)
        .rev()
        .map(|k| format!("p{k}=v{k}%20x&p{k}=second"))
        .collect();
    let line = format!(
        r#"h - - [10/Oct/2000:13:55:36 -0700] "GET /a?{}#p1=frag HTTP/1.0" 200 1"#,
        query.join("&")
    );
    let r = p.parse(&line).unwrap();
    for k in 0..70 {
        assert_eq!(r.get(&format!("q{k}")), Some(&*format!("v{k} x")), "q{k}");
    }
}

fn json_mapping_parser() -> Parser {
    json("n=n,user=user,company=company,long=a_rather_long_name")
}

#[test]
fn records_reuse_the_attribute_list() {
    let mut p = Parser::with_defaults(Format::Combined);
    drop(p.parse(CLF).unwrap());
    let ptr = p.home.as_ptr();
    let cap = p.home.capacity();
    assert!(cap >= 5);
    for _ in 0..3 {
        let r = p.parse(CLF).unwrap();
        assert_eq!(r.attrs().len(), 5);
    }
    assert_eq!((p.home.as_ptr(), p.home.capacity()), (ptr, cap));
    assert!(p.home.is_empty());
}

#[test]
fn error_excerpts_stay_short() {
    assert_eq!(format!("{:?}", excerpt("a\"b'c")), r#""a\"b'c""#);
    assert_eq!(
        format!("{:?}", excerpt(&"x".repeat(40))),
        format!("\"{}\"", "x".repeat(40))
    );
    assert_eq!(
        format!("{:?}", excerpt(&"x".repeat(41))),
        format!("\"{}…\"", "x".repeat(40))
    );
    let controls = format!("{:?}", excerpt(&"\u{1f}".repeat(100)));
    assert!(controls.chars().count() <= 44, "{controls}");
    let mut p = Parser::with_defaults(Format::Combined);
    let line = format!("h - - [{}] \"GET / HTTP/1.0\" 200 1", "\u{1}".repeat(1000));
    assert!(err(&mut p, &line).message.chars().count() < 100);
}

// ---- mapping --------------------------------------------------------------------------

#[test]
fn mapping_spec() {
    let m = Mapping::parse(
        Format::Combined,
        " token = query:api_key , tenant=path_segment:1,user=,region=referer, ",
    )
    .unwrap();
    let attrs: Vec<(&str, String)> = m.attrs().map(|(n, s)| (n, s.to_string())).collect();
    let attrs: Vec<(&str, &str)> = attrs.iter().map(|(n, s)| (*n, s.as_str())).collect();
    assert_eq!(
        attrs,
        [
            ("client", "host"),
            ("method", "method"),
            ("route", "path"),
            ("token", "query:api_key"),
            ("tenant", "path_segment:1"),
            ("region", "referer"),
        ]
    );
    assert_eq!(m.time(), &Source::Time);
    assert_eq!(
        m.to_string(),
        "user=,client=host,method=method,route=path,token=query:api_key,\
         tenant=path_segment:1,region=referer,time=time"
    );
    assert_eq!(Mapping::parse(Format::Combined, &m.to_string()).unwrap(), m);

    let m = Mapping::parse(Format::JsonLines, "time=ts,time_unit=ms,route=uri,x=a:b").unwrap();
    assert_eq!(m.time(), &Source::Field("ts".to_owned()));
    assert_eq!(m.epoch_unit(), EpochUnit::Millis);
    assert_eq!(
        m.to_string(),
        "method=method,route=uri,client=client,token=token,tenant=tenant,user=user,\
         company=company,x=a:b,time=ts,time_unit=ms"
    );
    assert_eq!(
        Mapping::parse(Format::JsonLines, &m.to_string()).unwrap(),
        m
    );
    assert_eq!(
        Mapping::new(Format::Combined).to_string(),
        "client=,user=,method=,route=,token=,tenant=,time=time"
    );
    assert_eq!(
        Mapping::parse(Format::JsonLines, "").unwrap(),
        Mapping::defaults(Format::JsonLines)
    );
}

#[test]
fn mapping_errors() {
    let cases = [
        (
            Format::Combined,
            "token=query_token",
            "unknown source \"query_token\" for combined logs (expected host, ident",
        ),
        (Format::Combined, "token=query:", "needs a parameter name"),
        (
            Format::Combined,
            "t=path_segment:x",
            "\"x\" is not a segment number",
        ),
        (
            Format::Combined,
            "t=path_segment:-1",
            "is not a segment number",
        ),
        (
            Format::Combined,
            "time=host",
            "the time of a combined line comes from `time`",
        ),
        (
            Format::Combined,
            "time_unit=ms",
            "time_unit only applies to JSON lines",
        ),
        (Format::JsonLines, "time_unit=h", "unknown time unit \"h\""),
        (Format::JsonLines, "time=", "the time cannot be dropped"),
        (Format::JsonLines, "token", "is not ATTRIBUTE=SOURCE"),
        (Format::JsonLines, "=token", "attribute name \"\" is empty"),
    ];
    for (format, spec, why) in cases {
        let e = Mapping::parse(format, spec).unwrap_err();
        assert!(e.message.contains(why), "{spec}: {e}");
    }
    let mut m = Mapping::new(Format::JsonLines);
    assert!(m.set("token", Source::Host).is_err());
    assert!(m.set("token", Source::Field(String::new())).is_err());
    assert!(m.set("a,b", Source::Field("x".to_owned())).is_err());
    assert!(m.set("time_unit", Source::Field("x".to_owned())).is_err());
    let mut m = Mapping::new(Format::Combined);
    assert!(m.set("token", Source::Field("token".to_owned())).is_err());
    assert!(m.set("token", Source::Query(String::new())).is_err());
    assert_eq!("json".parse::<Format>(), Ok(Format::JsonLines));
    assert_eq!("common".parse::<Format>(), Ok(Format::Combined));
    assert!("xml".parse::<Format>().is_err());
}

#[test]
fn mapping_in_code() {
    let mut m = Mapping::new(Format::JsonLines);
    m.set("token", Source::Field("api_key".to_owned()))
        .unwrap()
        .set("token", Source::Field("key".to_owned()))
        .unwrap()
        .set("tenant", Source::Field("org".to_owned()))
        .unwrap()
        .set("time", Source::Field("@timestamp".to_owned()))
        .unwrap()
        .set_epoch_unit(EpochUnit::Millis)
        .remove("nothing");
    let mut p = Parser::new(&m);
    let (t, attrs) = parse(
        &mut p,
        r#"{"@timestamp":1500,"key":"k","api_key":"old","org":"o"}"#,
    );
    assert_eq!(t, 1_500_000_000);
    assert_eq!(
        attrs,
        vec![
            ("token".to_owned(), "k".to_owned()),
            ("tenant".to_owned(), "o".to_owned())
        ]
    );
    m.remove("token");
    assert_eq!(m.attrs().count(), 1);
}
