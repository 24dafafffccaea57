//! The order of the field names in the JSON lines seen so far ([`Schema`]), so that a
//! line shaped like the previous ones has each name checked with a word comparison.
use super::super::bytes::word;
use super::keys::Field;

/// No [`Schema`] entry.
pub(super) const NO_ENTRY: usize = usize::MAX;

/// The most field names a [`Schema`] learns.
const SCHEMA_MAX: usize = 64;

/// The shape of the JSON lines seen so far: for each field name met (without escapes,
/// of up to 14 bytes, and followed directly by `:`), the field that came after it last
/// time. Lines of a log mostly have the same fields in the same order, so the scan
/// checks that the expected name is there with two word comparisons instead of
/// searching for its end and looking it up.
#[derive(Clone, Debug)]
pub(crate) struct Schema {
    pub(super) entries: Vec<SchemaEntry>,
    /// The entry of the first field, or [`NO_ENTRY`].
    pub(super) first: usize,
    /// Lines and names not as expected in the current window of [`SCHEMA_WINDOW`] lines.
    lines: u32,
    misses: u32,
    /// How many more lines to scan without the schema: a log whose fields come in no
    /// fixed order makes it learn all the time, for nothing.
    resting: u32,
}

/// The lines over which a [`Schema`] counts names not as expected: more than two a line
/// on average, and it rests for [`SCHEMA_REST`] lines.
const SCHEMA_WINDOW: u32 = 16;
const SCHEMA_REST: u32 = 4096;

#[derive(Clone, Copy, Debug)]
pub(super) struct SchemaEntry {
    /// The bytes `NAME":` (after the opening quote), little-endian, and a mask of them.
    text: u128,
    mask: u128,
    /// The length of `"NAME":`.
    pub(super) len: usize,
    /// What the field feeds.
    pub(super) field: Field,
    /// The entry of the field that followed last time, or [`NO_ENTRY`].
    pub(super) next: usize,
}

impl SchemaEntry {
    /// Whether `b[i..]` starts with `"NAME":`.
    #[inline(always)]
    pub(super) fn matches(&self, b: &[u8], i: usize) -> bool {
        if self.mask >> 64 == 0 {
            // `NAME":` fits in a word.
            if let Some(w) = word(b, i + 1) {
                return w & self.mask as u64 == self.text as u64;
            }
        }
        let end = i + 17;
        let w = match b.get(i + 1..end).and_then(|w| <[u8; 16]>::try_from(w).ok()) {
            Some(w) => u128::from_le_bytes(w),
            // Near the end of the line: the last 16 bytes, shifted down to `b[i + 1]`.
            None => match b.len().checked_sub(16).and_then(|s| b.get(s..)) {
                Some(last) if i + 1 < b.len() => {
                    let last: [u8; 16] = last.try_into().unwrap_or_default();
                    u128::from_le_bytes(last) >> (8 * (end - b.len()))
                }
                _ => return false,
            },
        };
        w & self.mask == self.text
    }
}

impl Schema {
    pub(super) fn new() -> Schema {
        Schema {
            entries: Vec::new(),
            first: NO_ENTRY,
            lines: 0,
            misses: 0,
            resting: 0,
        }
    }

    /// Whether to use the schema for the next line.
    #[inline(always)]
    pub(crate) fn active(&self) -> bool {
        self.resting == 0
    }

    /// Counts a line scanned with `misses` names not as expected.
    #[inline]
    pub(super) fn end_line(&mut self, misses: u32) {
        if self.resting > 0 {
            self.resting -= 1;
            return;
        }
        self.lines += 1;
        self.misses += misses;
        if self.lines == SCHEMA_WINDOW {
            if self.misses > 2 * SCHEMA_WINDOW {
                self.resting = SCHEMA_REST;
            }
            self.lines = 0;
            self.misses = 0;
        }
    }

    /// The entry of the name `b[open + 1..close]` (without escapes; `b[close]` is its
    /// closing quote and `b[close + 1]` a ':'), added if missing; [`NO_ENTRY`] if the
    /// name is too long or the schema is full.
    #[cold]
    pub(super) fn learn(&mut self, b: &[u8], open: usize, close: usize, field: Field) -> usize {
        let n = close + 2 - (open + 1);
        let Some(text) = b.get(open + 1..close + 2).filter(|_| n <= 16) else {
            return NO_ENTRY;
        };
        let mut bytes = [0u8; 16];
        bytes[..n].copy_from_slice(text);
        let text = u128::from_le_bytes(bytes);
        let mask = u128::MAX >> (128 - 8 * n);
        if let Some(at) = self
            .entries
            .iter()
            .position(|e| e.text == text && e.mask == mask)
        {
            return at;
        }
        if self.entries.len() == SCHEMA_MAX {
            return NO_ENTRY;
        }
        self.entries.push(SchemaEntry {
            text,
            mask,
            len: n + 1,
            field,
            next: NO_ENTRY,
        });
        self.entries.len() - 1
    }
}
