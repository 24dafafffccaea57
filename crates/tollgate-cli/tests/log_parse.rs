//! Property tests of the access-log parser: records rendered as JSON lines and as
//! combined/common log lines parse back to the same time and attributes, one parser
//! carrying its date cache across the lines; arbitrary and corrupted lines never panic.

use jiff::tz::Offset;
use jiff::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tollgate_cli::log::{Format, LineErrorKind, Mapping, Parser};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

// ---- times ----------------------------------------------------------------------------------

/// An instant, the UTC offset it is written at, and how it is written.
#[derive(Clone, Debug)]
struct TimeCase {
    secs: i64,
    nanos: i32,
    offset_minutes: i32,
    /// Fractional digits written (0..=9).
    digits: u32,
    /// Style choices: separator, `Z` vs `+00:00`, offset colon.
    style: u8,
}

impl TimeCase {
    /// The nanoseconds the written form stands for (the fraction truncated).
    fn expected(&self) -> i128 {
        let keep = 10i32.pow(9 - self.digits);
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos / keep * keep)
    }

    fn civil(&self) -> jiff::civil::DateTime {
        let ts = Timestamp::new(self.secs, self.nanos).unwrap();
        Offset::from_seconds(self.offset_minutes * 60)
            .unwrap()
            .to_datetime(ts)
    }

    fn fraction(&self, dt: &jiff::civil::DateTime) -> String {
        if self.digits == 0 {
            return String::new();
        }
        let keep = 10i32.pow(9 - self.digits);
        format!(
            ".{:0width$}",
            dt.subsec_nanosecond() / keep,
            width = self.digits as usize
        )
    }

    fn offset(&self, colon: bool) -> String {
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let (h, m) = (
            self.offset_minutes.abs() / 60,
            self.offset_minutes.abs() % 60,
        );
        if colon {
            format!("{sign}{h:02}:{m:02}")
        } else {
            format!("{sign}{h:02}{m:02}")
        }
    }

    fn rfc3339(&self) -> String {
        let dt = self.civil();
        let sep = ["T", "t", " "][usize::from(self.style % 3)];
        let offset = match (self.offset_minutes, self.style / 3 % 4) {
            (0, 0) => "Z".to_owned(),
            (0, 1) => "z".to_owned(),
            (_, 2) => self.offset(false),
            _ => self.offset(true),
        };
        format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}{}{offset}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            self.fraction(&dt)
        )
    }

    fn clf(&self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let dt = self.civil();
        format!(
            "{:02}/{}/{:04}:{:02}:{:02}:{:02}{} {}",
            dt.day(),
            MONTHS[dt.month() as usize - 1],
            dt.year(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            self.fraction(&dt),
            self.offset(self.style.is_multiple_of(5))
        )
    }

    /// The instant as a decimal number of `unit_nanos` units (exact, no rounding).
    fn epoch(&self, unit_nanos: i128) -> String {
        let total = self.expected();
        let sign = if total < 0 { "-" } else { "" };
        let abs = total.abs();
        let width = unit_nanos.ilog10() as usize;
        if width == 0 {
            return format!("{sign}{abs}");
        }
        format!(
            "{sign}{}.{:0width$}",
            abs / unit_nanos,
            abs % unit_nanos,
            width = width
        )
    }
}

fn time_case() -> impl Strategy<Value = TimeCase> {
    // Whole UTC days kept away from the ends so that every offset stays in years
    // 0001..=9999; offsets of RFC 3339 (hours 00..=23).
    let min = Timestamp::from_second(-62_135_596_800 + 2 * 86_400)
        .unwrap()
        .as_second();
    let max = Timestamp::from_second(253_402_214_400 - 2 * 86_400)
        .unwrap()
        .as_second();
    let secs = prop_oneof![
        min..=max,
        // Recent years, where consecutive lines share dates.
        1_600_000_000i64..1_900_000_000,
        1_700_000_000i64..1_700_200_000,
    ];
    (
        secs,
        0i32..1_000_000_000,
        prop_oneof![Just(0), -1439i32..=1439, Just(-420), Just(330)],
        0u32..=9,
        any::<u8>(),
    )
        .prop_map(|(secs, nanos, offset_minutes, digits, style)| TimeCase {
            secs,
            nanos,
            offset_minutes,
            digits,
            style,
        })
}

// ---- JSON lines -----------------------------------------------------------------------------

/// The request attributes of the JSON mapping, in mapping order, with the field each one
/// is read from.
const JSON_ATTRS: [(&str, &str); 8] = [
    ("method", "method"),
    ("route", "path"),
    ("client", "client"),
    ("token", "token"),
    ("tenant", "tenant"),
    ("user", "user"),
    ("company", "company"),
    ("region", "dc"),
];

#[derive(Clone, Debug)]
enum JsonValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl JsonValue {
    fn text(&self) -> String {
        match self {
            JsonValue::Str(s) => s.clone(),
            JsonValue::Int(n) => n.to_string(),
            JsonValue::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
enum JsonTime {
    Rfc3339,
    /// A JSON number of this many nanoseconds per unit (1e9, 1e6, 1e3, 1).
    Number(i128),
    /// The same number in a string.
    NumberString(i128),
}

#[derive(Clone, Debug)]
struct JsonRecord {
    time: TimeCase,
    time_form: JsonTime,
    attrs: Vec<Option<JsonValue>>,
    /// Unmapped fields, rendered as JSON.
    extra: Vec<(String, serde_json::Value)>,
    /// Sort keys that shuffle the fields.
    order: Vec<u32>,
    /// Per-character escaping choices for strings.
    escapes: Vec<u8>,
    spaces: Vec<u8>,
}

fn json_value() -> impl Strategy<Value = JsonValue> {
    prop_oneof![
        6 => any::<String>().prop_map(JsonValue::Str),
        1 => "[a-z0-9 ./_-]{0,16}".prop_map(JsonValue::Str),
        // Characters that JSON escapes, or may.
        2 => "[\"\\\\/\\x00-\\x1f\\x7f a-zé😀]{0,12}".prop_map(JsonValue::Str),
        1 => any::<i64>().prop_map(JsonValue::Int),
        1 => any::<bool>().prop_map(JsonValue::Bool),
    ]
}

fn extra_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::String),
        "[\\[\\]{}\",:\\\\]{0,6}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-z]{0,4}", inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn json_record() -> impl Strategy<Value = JsonRecord> {
    (
        time_case(),
        prop_oneof![
            4 => Just(JsonTime::Rfc3339),
            1 => prop::sample::select(vec![1_000_000_000i128, 1_000_000, 1_000, 1]).prop_map(JsonTime::Number),
            1 => prop::sample::select(vec![1_000_000_000i128, 1_000_000]).prop_map(JsonTime::NumberString),
        ],
        prop::collection::vec(prop::option::weighted(0.8, json_value()), JSON_ATTRS.len()),
        prop::collection::vec(("x_[a-z]{0,6}", extra_value()), 0..4),
        prop::collection::vec(any::<u32>(), 16),
        prop::collection::vec(any::<u8>(), 64),
        prop::collection::vec(any::<u8>(), 48),
    )
        .prop_map(
            |(time, time_form, attrs, extra, order, escapes, spaces)| JsonRecord {
                time,
                time_form,
                attrs,
                extra,
                order,
                escapes,
                spaces,
            },
        )
}

/// A JSON string literal for `s`, escaping characters in different legal ways according
/// to `choices`.
fn json_string(s: &str, choices: &[u8], salt: usize) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let choice = choices
            .get((i + salt) % choices.len().max(1))
            .copied()
            .unwrap_or(0);
        match c {
            '"' => out.push_str(if choice % 2 == 0 { "\\\"" } else { "\\u0022" }),
            '\\' => out.push_str("\\\\"),
            '\n' if choice % 2 == 0 => out.push_str("\\n"),
            '\t' if choice % 2 == 0 => out.push_str("\\t"),
            '\r' if choice % 2 == 0 => out.push_str("\\r"),
            '\u{8}' if choice % 2 == 0 => out.push_str("\\b"),
            '\u{c}' if choice % 2 == 0 => out.push_str("\\f"),
            '/' if choice % 3 == 0 => out.push_str("\\/"),
            c if (c as u32) < 0x20 || choice % 7 == 0 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if choice % 2 == 0 {
                        out.push_str(&format!("\\u{unit:04x}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render_json(rec: &JsonRecord) -> String {
    let mut fields: Vec<(String, String)> = Vec::new();
    let time = match rec.time_form {
        JsonTime::Rfc3339 => json_string(&rec.time.rfc3339(), &rec.escapes, 7),
        JsonTime::Number(unit) => rec.time.epoch(unit),
        JsonTime::NumberString(unit) => format!("\"{}\"", rec.time.epoch(unit)),
    };
    fields.push(("time".to_owned(), time));
    for (i, (value, (_, field))) in rec.attrs.iter().zip(JSON_ATTRS).enumerate() {
        let Some(value) = value else { continue };
        let text = match value {
            JsonValue::Str(s) => json_string(s, &rec.escapes, i * 5),
            JsonValue::Int(n) => n.to_string(),
            JsonValue::Bool(b) => b.to_string(),
        };
        fields.push((field.to_owned(), text));
    }
    for (name, value) in &rec.extra {
        fields.push((name.clone(), serde_json::to_string(value).unwrap()));
    }
    let mut keyed: Vec<(u32, (String, String))> = fields
        .into_iter()
        .enumerate()
        .map(|(i, f)| (rec.order[i % rec.order.len()], f))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    let space = |i: usize| match rec.spaces[i % rec.spaces.len()] % 8 {
        0 => " ",
        1 => "\t",
        2 => "  ",
        _ => "",
    };
    let mut line = format!("{}{{", space(0));
    for (i, (_, (name, value))) in keyed.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(space(4 * i + 1));
        line.push_str(&json_string(name, &rec.escapes, i));
        line.push_str(space(4 * i + 2));
        line.push(':');
        line.push_str(space(4 * i + 3));
        line.push_str(value);
    }
    line.push_str(space(47));
    line.push('}');
    line
}

fn json_parser(unit: Option<i128>) -> Parser {
    let unit = match unit {
        Some(1_000_000) => "ms",
        Some(1_000) => "us",
        Some(1) => "ns",
        _ => "s",
    };
    Parser::new(&Mapping::parse(Format::JsonLines, &format!("region=dc,time_unit={unit}")).unwrap())
}

fn json_expected(rec: &JsonRecord) -> Vec<(String, String)> {
    rec.attrs
        .iter()
        .zip(JSON_ATTRS)
        .filter_map(|(v, (name, _))| v.as_ref().map(|v| (name.to_owned(), v.text())))
        .collect()
}

// ---- combined -------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ClfRecord {
    time: TimeCase,
    host: String,
    ident: Option<String>,
    user: Option<String>,
    method: String,
    segments: Vec<String>,
    token: Option<String>,
    tenant: Option<String>,
    other_params: Vec<(String, String)>,
    order: Vec<u32>,
    /// Write `+` for spaces, and percent-encode the parameter name.
    plus: bool,
    encode_name: bool,
    protocol: Option<String>,
    status: u16,
    bytes: Option<u64>,
    /// `None`: common log format.
    referer_agent: Option<(String, String)>,
    /// Escape non-ASCII characters as `\xHH`, nginx style.
    hex_escape: bool,
}

fn clf_record() -> impl Strategy<Value = ClfRecord> {
    let word = "[A-Za-z0-9_.@]{1,12}";
    (
        (
            time_case(),
            "[0-9a-f.:]{1,39}",
            prop::option::of(word),
            prop::option::of(word),
            "[A-Z]{1,10}",
            prop::collection::vec("[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,10}", 0..5),
        ),
        (
            prop::option::of(any::<String>()),
            prop::option::of(any::<String>()),
            prop::collection::vec(("p_[a-z]{0,4}", "[a-z0-9]{0,6}"), 0..3),
            prop::collection::vec(any::<u32>(), 8),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            prop::option::of(prop::sample::select(vec![
                "HTTP/1.0", "HTTP/1.1", "HTTP/2.0",
            ])),
            100u16..600,
            prop::option::of(any::<u64>()),
            prop::option::of((any::<String>(), any::<String>())),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (time, host, ident, user, method, segments),
                (token, tenant, other_params, order, plus, encode_name),
                (protocol, status, bytes, referer_agent, hex_escape),
            )| ClfRecord {
                time,
                host,
                ident,
                user,
                method,
                segments,
                token,
                tenant,
                other_params,
                order,
                plus,
                encode_name,
                protocol: protocol.map(str::to_owned),
                status,
                bytes,
                referer_agent,
                hex_escape,
            },
        )
}

fn percent_encode(s: &str, plus: bool) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A quoted log field, escaped as Apache and nginx do.
fn clf_quoted(s: &str, hex_escape: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || (hex_escape && !c.is_ascii()) => {
                let mut bytes = [0u8; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ClfRecord {
    fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    fn render(&self) -> String {
        let mut params: Vec<(String, String)> = self.other_params.clone();
        for (name, value) in [("token", &self.token), ("tenant", &self.tenant)] {
            if let Some(v) = value {
                let name = if self.encode_name {
                    format!("%{:02x}{}", name.as_bytes()[0], &name[1..])
                } else {
                    name.to_owned()
                };
                params.push((name, percent_encode(v, self.plus)));
            }
        }
        let mut keyed: Vec<(u32, (String, String))> = params
            .into_iter()
            .enumerate()
            .map(|(i, p)| (self.order[i % self.order.len()], p))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        let query: Vec<String> = keyed
            .into_iter()
            .map(|(_, (n, v))| format!("{n}={v}"))
            .collect();
        let mut target = self.path();
        if !query.is_empty() {
            target.push('?');
            target.push_str(&query.join("&"));
        }
        let request = match &self.protocol {
            Some(p) => format!("{} {target} {p}", self.method),
            None => format!("{} {target}", self.method),
        };
        let mut line = format!(
            "{} {} {} [{}] \"{request}\" {} {}",
            self.host,
            self.ident.as_deref().unwrap_or("-"),
            self.user.as_deref().unwrap_or("-"),
            self.time.clf(),
            self.status,
            self.bytes.map_or("-".to_owned(), |b| b.to_string()),
        );
        if let Some((referer, agent)) = &self.referer_agent {
            line.push(' ');
            line.push_str(&clf_quoted(referer, self.hex_escape));
            line.push(' ');
            line.push_str(&clf_quoted(agent, self.hex_escape));
        }
        line
    }

    fn expected(&self) -> Vec<(String, String)> {
        let absent_if_dash = |s: &str| (!s.is_empty() && s != "-").then(|| s.to_owned());
        let segment = |n: usize| self.segments.get(n).filter(|s| !s.is_empty()).cloned();
        let (referer, agent) = match &self.referer_agent {
            Some((r, a)) => (absent_if_dash(r), absent_if_dash(a)),
            None => (None, None),
        };
        let values: [(&str, Option<String>); 13] = [
            ("client", Some(self.host.clone())),
            ("user", self.user.clone()),
            ("method", Some(self.method.clone())),
            ("route", Some(self.path())),
            ("token", self.token.clone()),
            ("tenant", self.tenant.clone()),
            ("ident", self.ident.clone()),
            ("s0", segment(0)),
            ("s2", segment(2)),
            ("protocol", self.protocol.clone()),
            ("status", Some(self.status.to_string())),
            ("referer", referer),
            ("agent", agent),
        ];
        values
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .chain(self.bytes.map(|b| ("bytes".to_owned(), b.to_string())))
            .collect()
    }
}

fn clf_parser() -> Parser {
    let spec = "ident=ident,s0=path_segment:0,s2=path_segment:2,protocol=protocol,\
                status=status,referer=referer,agent=user_agent,bytes=bytes";
    Parser::new(&Mapping::parse(Format::Combined, spec).unwrap())
}

// ---- checks ---------------------------------------------------------------------------------

fn owned(r: &tollgate_cli::log::Record<'_>) -> Vec<(String, String)> {
    r.attrs()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parsers() -> Vec<Parser> {
    vec![
        Parser::with_defaults(Format::JsonLines),
        json_parser(Some(1_000_000)),
        Parser::with_defaults(Format::Combined),
        clf_parser(),
    ]
}

/// Parses with every parser, both as `&str` and as bytes; must not panic, and an error
/// must have a short, non-empty message.
fn no_panic(parsers: &mut [Parser], line: &str) {
    for p in parsers.iter_mut() {
        for r in [
            p.parse(line).map(|r| owned(&r)),
            p.parse_bytes(line.as_bytes()).map(|r| owned(&r)),
        ] {
            if let Err(e) = r {
                assert!(!e.message.is_empty());
                assert!(
                    e.message.chars().count() <= 120,
                    "long message: {}",
                    e.message
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn json_lines_round_trip(recs in prop::collection::vec(json_record(), 1..6)) {
        // One parser per unit, kept across the records so its date cache sees changes.
        let mut by_unit: Vec<(Option<i128>, Parser)> = Vec::new();
        for rec in &recs {
            let line = render_json(rec);
            serde_json::from_str::<serde_json::Value>(&line).expect("the test renders valid JSON");
            let unit = match rec.time_form {
                JsonTime::Rfc3339 => None,
                JsonTime::Number(u) | JsonTime::NumberString(u) => Some(u),
            };
            let i = match by_unit.iter().position(|(u, _)| *u == unit) {
                Some(i) => i,
                None => {
                    by_unit.push((unit, json_parser(unit)));
                    by_unit.len() - 1
                }
            };
            let parser = &mut by_unit[i].1;
            let r = parser.parse(&line).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
            prop_assert_eq!(r.time_unix_nanos, rec.time.expected(), "{}", line);
            prop_assert_eq!(owned(&r), json_expected(rec), "{}", line);
            drop(r);
            let fresh = json_parser(unit).parse(&line).map(|r| r.time_unix_nanos);
            prop_assert_eq!(fresh, Ok(rec.time.expected()));
        }
    }

    #[test]
    fn combined_lines_round_trip(recs in prop::collection::vec(clf_record(), 1..6)) {
        let mut parser = clf_parser();
        let mut defaults = Parser::with_defaults(Format::Combined);
        for rec in &recs {
            let line = rec.render();
            let r = parser.parse(&line).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
            prop_assert_eq!(r.time_unix_nanos, rec.time.expected(), "{}", line);
            prop_assert_eq!(owned(&r), rec.expected(), "{}", line);
            drop(r);
            let r = defaults.parse(&line).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
            prop_assert_eq!(r.time_unix_nanos, rec.time.expected());
            prop_assert_eq!(r.get("token"), rec.token.as_deref());
            let path = rec.path();
            prop_assert_eq!(r.get("route"), Some(path.as_str()));
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(line in any::<String>()) {
        no_panic(&mut parsers(), &line);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for p in parsers().iter_mut() {
            if let Err(e) = p.parse_bytes(&bytes) {
                prop_assert!(!e.message.is_empty());
                if std::str::from_utf8(&bytes).is_err() {
                    prop_assert_eq!(e.kind, LineErrorKind::InvalidUtf8);
                }
            }
        }
    }

    #[test]
    fn corrupted_lines_never_panic(
        json in json_record(),
        clf in clf_record(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..4),
    ) {
        let mut parsers = parsers();
        for line in [render_json(&json), clf.render()] {
            let mut line: Vec<char> = line.chars().collect();
            for (at, op, c) in &edits {
                if line.is_empty() {
                    break;
                }
                let i = at.index(line.len());
                match op {
                    0 => { line.remove(i); }
                    1 => line.insert(i, *c),
                    2 => line[i] = *c,
                    _ => line.truncate(i),
                }
            }
            let line: String = line.into_iter().collect();
            no_panic(&mut parsers, &line);
        }
    }
}
