//! The JSON-lines scanner: one flat JSON object per line, the mapped top-level fields
//! picked out by name ([`keys`]), the order of the names learnt ([`schema`]) and the
//! values skipped or delimited by [`syntax`].
mod keys;
mod schema;
mod syntax;

use self::keys::{json_key, Field, JsonKey, KeyTable};
use self::schema::{Schema, NO_ENTRY};
use self::syntax::{scan_json_value, skip_ws, unescape_json, JsonVal};
use super::bytes::{closing_quote, short_word};
use super::error::{excerpt, LineError, LineErrorKind};
use super::mapping::{EpochUnit, Format, Mapping, Source};
use super::record::{Val, Values};
use super::time::{parse_epoch, parse_text_time, DayCache, Rfc3339};

/// The compiled JSON side of a mapping and what the scanner learnt from the lines so far.
#[derive(Debug)]
pub(super) struct JsonScanner {
    /// The distinct fields read.
    keys: Vec<JsonKey>,
    /// What each of `keys` feeds.
    fields: Vec<Field>,
    key_table: KeyTable,
    pub(super) schema: Schema,
    time_field: Box<str>,
    epoch_unit: EpochUnit,
    /// Decoded escaped keys and times.
    key_buf: String,
}

impl JsonScanner {
    /// The scanner of `mapping`'s JSON fields (none for a combined mapping).
    pub(super) fn new(mapping: &Mapping) -> JsonScanner {
        let mut keys: Vec<JsonKey> = Vec::new();
        let mut time_field: Box<str> = "time".into();
        if mapping.format() == Format::JsonLines {
            for (slot, (_, source)) in mapping.attrs().enumerate() {
                if let Source::Field(name) = source {
                    let k = json_key(&mut keys, name);
                    keys[k].slots.push(slot);
                }
            }
            if let Source::Field(name) = mapping.time() {
                let k = json_key(&mut keys, name);
                keys[k].time = true;
                time_field = name.as_str().into();
            }
        }
        let key_table = KeyTable::new(&keys);
        let fields = keys
            .iter()
            .enumerate()
            .map(|(k, key)| Field::new(k, &key.slots, key.time))
            .collect();
        JsonScanner {
            keys,
            fields,
            key_table,
            schema: Schema::new(),
            time_field,
            epoch_unit: mapping.epoch_unit(),
            key_buf: String::new(),
        }
    }

    /// Scans a JSON line: the values of mapped fields go to `out`; returns its time.
    #[inline]
    pub(super) fn scan(
        &mut self,
        line: &str,
        out: &mut Values,
        day: &mut DayCache,
    ) -> Result<i128, LineError> {
        let time = self.scan_fields(line, out)?;
        self.json_time(line, time, day)
    }

    /// The fields of a JSON line: the values of mapped fields go to `out`, and the time
    /// field's value is returned.
    #[inline(always)]
    fn scan_fields(&mut self, line: &str, out: &mut Values) -> Result<Option<JsonVal>, LineError> {
        let b = line.as_bytes();
        let mut i = 0;
        if b.first() != Some(&b'{') {
            i = skip_ws(b, 0);
            if b.get(i) != Some(&b'{') {
                return Err(LineError::syntax("line is not a JSON object"));
            }
        }
        i += 1;
        if b.get(i) != Some(&b'"') {
            i = skip_ws(b, i);
        }
        let mut time: Option<JsonVal> = None;
        // The schema entry of the previous field, and the one expected here.
        let mut prev = NO_ENTRY;
        let learn = self.schema.active();
        let mut expect = if learn { self.schema.first } else { NO_ENTRY };
        let mut misses = 0;
        let mut first = true;
        if b.get(i) == Some(&b'}') {
            i += 1;
        } else {
            if b.get(i) != Some(&b'"') {
                return Err(LineError::syntax_at("expected a field name", i));
            }
            // Here `b[i]` opens a field name.
            loop {
                let field = match self.schema.entries.get(expect) {
                    // The name that previous lines had here: `i` moves past its ':'.
                    Some(entry) if entry.matches(b, i) => {
                        i += entry.len;
                        prev = expect;
                        expect = entry.next;
                        entry.field
                    }
                    _ => {
                        misses += 1;
                        let (field, after) =
                            self.json_name(line, i, learn && first, &mut prev, &mut expect)?;
                        i = after;
                        field
                    }
                };
                first = false;
                let end = if b.get(i) == Some(&b'"') {
                    let (end, escaped) = closing_quote(b, i + 1)
                        .ok_or_else(|| LineError::syntax_at("unterminated string", i))?;
                    if field.simple() && !escaped {
                        if let Some(slot) = out.vals.get_mut(field.slot_index()) {
                            *slot = Val::line(i + 1, end);
                        }
                    } else if field.mapped() {
                        let value = JsonVal::Str(i + 1, end, escaped);
                        self.json_field(line, field, value, &mut time, out)?;
                    }
                    end + 1
                } else {
                    i = skip_ws(b, i);
                    let (value, end) = scan_json_value(b, i, field.mapped())?;
                    if field.mapped() {
                        self.json_field(line, field, value, &mut time, out)?;
                    }
                    end
                };
                match b.get(end) {
                    Some(b',') => i = end + 1,
                    Some(b'}') => {
                        i = end + 1;
                        break;
                    }
                    _ => {
                        i = skip_ws(b, end);
                        match b.get(i) {
                            Some(b',') => i += 1,
                            Some(b'}') => {
                                i += 1;
                                break;
                            }
                            _ => return Err(LineError::syntax_at("expected ',' or '}'", i)),
                        }
                    }
                }
                if b.get(i) != Some(&b'"') {
                    i = skip_ws(b, i);
                    if b.get(i) != Some(&b'"') {
                        return Err(LineError::syntax_at("expected a field name", i));
                    }
                }
            }
        }
        if i != b.len() && skip_ws(b, i) != b.len() {
            return Err(LineError::syntax_at(
                "unexpected text after the JSON object",
                i,
            ));
        }
        self.schema.end_line(misses);
        Ok(time)
    }

    /// Takes the value of a mapped field: as the time and/or as the attributes it feeds.
    #[inline(always)]
    fn json_field(
        &mut self,
        line: &str,
        field: Field,
        value: JsonVal,
        time: &mut Option<JsonVal>,
        out: &mut Values,
    ) -> Result<(), LineError> {
        if field.time() {
            *time = Some(value);
        }
        if field.slot().is_some() {
            let val = json_val(line, value, &mut out.buf)?;
            self.set_val(field, val, &mut out.vals);
        }
        Ok(())
    }

    /// The field name at `line[i]` (a quote) when it is not the one the schema expected:
    /// what it maps to, and the index after its ':'. Unless the schema rests, learns the
    /// name, links it after the previous field's entry (`prev`, or first if `first`),
    /// then moves `prev` and `expect` on.
    #[inline(never)]
    fn json_name(
        &mut self,
        line: &str,
        i: usize,
        first: bool,
        prev: &mut usize,
        expect: &mut usize,
    ) -> Result<(Field, usize), LineError> {
        let b = line.as_bytes();
        let (key_end, key_escaped) = closing_quote(b, i + 1)
            .ok_or_else(|| LineError::syntax_at("unterminated field name", i))?;
        let hit = self.match_key(line, i + 1, key_end, key_escaped)?;
        let field = self.field(hit);
        if self.schema.active() {
            let learnt = if key_escaped || b.get(key_end + 1) != Some(&b':') {
                NO_ENTRY
            } else {
                self.schema.learn(b, i, key_end, field)
            };
            if let Some(p) = self.schema.entries.get_mut(*prev) {
                p.next = learnt;
            } else if first {
                self.schema.first = learnt;
            }
            *prev = learnt;
            *expect = self.schema.entries.get(learnt).map_or(NO_ENTRY, |e| e.next);
        }
        let mut i = key_end + 1;
        if b.get(i) != Some(&b':') {
            i = skip_ws(b, i);
            if b.get(i) != Some(&b':') {
                return Err(LineError::syntax_at("expected ':' after a field name", i));
            }
        }
        Ok((field, i + 1))
    }

    /// What the mapped field `hit` (an index into `keys`) feeds.
    #[inline(always)]
    fn field(&self, hit: Option<usize>) -> Field {
        hit.and_then(|k| self.fields.get(k).copied())
            .unwrap_or(Field::UNMAPPED)
    }

    /// Stores the value of a mapped field in the slots of the attributes it feeds.
    #[inline(always)]
    fn set_val(&self, field: Field, val: Val, vals: &mut [Val]) {
        if let Some(slot) = field.slot().and_then(|s| vals.get_mut(s)) {
            *slot = val;
        }
        if field.more() {
            if let Some(key) = self.keys.get(field.key()) {
                for &slot in &key.slots[1..] {
                    vals[slot] = val;
                }
            }
        }
    }

    /// The time of a JSON line from the value of its time field.
    #[inline]
    fn json_time(
        &mut self,
        line: &str,
        time: Option<JsonVal>,
        day: &mut DayCache,
    ) -> Result<i128, LineError> {
        match time {
            None => Err(LineError::new(
                LineErrorKind::MissingTime,
                format!("no time field {:?}", excerpt(&self.time_field)),
            )),
            Some(JsonVal::Str(s, e, escaped)) => {
                // The common case first: an RFC 3339 time of the hour seen last.
                if let Some(t) = (!escaped)
                    .then(|| line.as_bytes().get(s..e))
                    .flatten()
                    .and_then(|b| day.same_hour::<Rfc3339>(b))
                {
                    return Ok(t);
                }
                let text = if escaped {
                    self.key_buf.clear();
                    unescape_json(&line[s..e], &mut self.key_buf)
                        .map_err(|why| LineError::syntax_at(why, s))?;
                    self.key_buf.as_str()
                } else {
                    &line[s..e]
                };
                parse_text_time(day, text, self.epoch_unit)
            }
            Some(JsonVal::Num(s, e)) => {
                parse_epoch(&line[s..e], self.epoch_unit).ok_or_else(|| {
                    LineError::new(
                        LineErrorKind::InvalidTime,
                        format!("time {:?} is out of range", excerpt(&line[s..e])),
                    )
                })
            }
            Some(_) => Err(LineError::new(
                LineErrorKind::InvalidTime,
                format!(
                    "time field {:?} is not a string or a number",
                    excerpt(&self.time_field)
                ),
            )),
        }
    }

    /// Which mapped field (index into `keys`) the key `line[s..e]` is.
    #[inline]
    fn match_key(
        &mut self,
        line: &str,
        s: usize,
        e: usize,
        escaped: bool,
    ) -> Result<Option<usize>, LineError> {
        if !escaped {
            return Ok(self.find_key(line.as_bytes(), s, e));
        }
        self.key_buf.clear();
        unescape_json(&line[s..e], &mut self.key_buf)
            .map_err(|why| LineError::syntax_at(why, s))?;
        let key = self.key_buf.as_bytes();
        Ok(self.find_key(key, 0, key.len()))
    }

    /// Which mapped field (index into `keys`) the key `b[s..e]` (without escapes)
    /// is.
    #[inline(always)]
    fn find_key(&self, b: &[u8], s: usize, e: usize) -> Option<usize> {
        let len = e - s;
        if len <= 8 {
            let w = short_word(b, s, len);
            if let (1.., Some(hit)) = (len, self.key_table.find(w, len)) {
                return hit;
            }
            self.keys
                .iter()
                .position(|k| k.word == w && k.key.len() == len)
        } else {
            let key = &b[s..e];
            self.keys.iter().position(|k| k.key.as_bytes() == key)
        }
    }
}

/// The value of a mapped field for an attribute; an escaped string is decoded onto `buf`.
#[inline(always)]
fn json_val(line: &str, value: JsonVal, buf: &mut String) -> Result<Val, LineError> {
    Ok(match value {
        JsonVal::Str(s, e, false) | JsonVal::Num(s, e) => Val::line(s, e),
        JsonVal::Str(s, e, true) => {
            let start = buf.len();
            unescape_json(&line[s..e], buf).map_err(|why| LineError::syntax_at(why, s))?;
            Val::buf(start, buf.len())
        }
        JsonVal::True => Val::TRUE,
        JsonVal::False => Val::FALSE,
        JsonVal::Null | JsonVal::Nested => Val::ABSENT,
    })
}
