//! The mapped JSON field names: what each one feeds ([`Field`], one word) and a perfect
//! hash table ([`KeyTable`]) that finds a short name in one multiplication.
use super::super::bytes::short_word;

/// A distinct JSON field that the mapping reads.
#[derive(Clone, Debug)]
pub(super) struct JsonKey {
    pub(super) key: Box<str>,
    /// A key of up to 8 bytes as a little-endian word padded with zeros (else 0), so
    /// that most keys compare in one instruction.
    pub(super) word: u64,
    pub(super) time: bool,
    pub(super) slots: Vec<usize>,
}

/// What a JSON field feeds, packed in a word so that it moves in one register: the index
/// in `JsonScanner::keys` of a mapped field, the first attribute slot it feeds, whether
/// it is the time, and whether it feeds more than one attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Field(u64);

impl Field {
    const SLOT: u64 = u32::MAX as u64;
    /// The largest key index (29 bits, after the 32 of the slot).
    const KEY: u64 = (1 << 29) - 1;
    const SIMPLE: u64 = 1 << 61;
    const TIME: u64 = 1 << 62;
    const MORE: u64 = 1 << 63;
    pub(super) const UNMAPPED: Field = Field(Field::SLOT);

    /// Field `key` of `json_keys`, feeding `slots`. (A mapping would need billions of
    /// attributes for `key` or a slot not to fit.)
    pub(super) fn new(key: usize, slots: &[usize], time: bool) -> Field {
        let key = u64::try_from(key).unwrap_or(u64::MAX);
        let slot = slots.first().map_or(Ok(u32::MAX), |&s| u32::try_from(s));
        let (true, Ok(slot)) = (key <= Field::KEY, slot) else {
            return Field::UNMAPPED;
        };
        let simple = if !time && slots.len() == 1 {
            Field::SIMPLE
        } else {
            0
        };
        let more = if slots.len() > 1 { Field::MORE } else { 0 };
        let time = if time { Field::TIME } else { 0 };
        Field(u64::from(slot) | (key << 32) | simple | time | more)
    }

    /// Whether the field feeds exactly one attribute and is not the time.
    #[inline(always)]
    pub(super) fn simple(self) -> bool {
        self.0 & Field::SIMPLE != 0
    }

    /// The slot of a [`Field::simple`] field.
    #[inline(always)]
    pub(super) fn slot_index(self) -> usize {
        (self.0 & Field::SLOT) as usize
    }

    /// Whether the field is read at all.
    #[inline(always)]
    pub(super) fn mapped(self) -> bool {
        self.0 != Field::SLOT
    }

    /// The first slot the field feeds, if any.
    #[inline(always)]
    pub(super) fn slot(self) -> Option<usize> {
        let slot = self.0 & Field::SLOT;
        (slot != Field::SLOT).then_some(slot as usize)
    }

    #[inline(always)]
    pub(super) fn key(self) -> usize {
        ((self.0 >> 32) & Field::KEY) as usize
    }

    #[inline(always)]
    pub(super) fn time(self) -> bool {
        self.0 & Field::TIME != 0
    }

    #[inline(always)]
    pub(super) fn more(self) -> bool {
        self.0 & Field::MORE != 0
    }
}

/// A perfect hash table from the mapped JSON keys of 1 to 8 bytes to their index in
/// `JsonScanner::keys`, so that a key costs one multiplication and one comparison
/// rather than a walk over the mapped keys.
#[derive(Clone, Debug)]
pub(super) struct KeyTable {
    mul: u64,
    shift: u32,
    /// `1 << (64 - shift)` slots; empty if no perfect hash was found (a search then
    /// walks the keys).
    slots: Box<[KeySlot]>,
}

/// A slot of a [`KeyTable`]; `len == 0` marks an empty one.
#[derive(Clone, Copy, Debug, Default)]
struct KeySlot {
    word: u64,
    len: u32,
    key: u32,
}

impl KeyTable {
    /// The slot of a key of `len` bytes (1 to 8) whose bytes are the little-endian `word`.
    #[inline(always)]
    fn hash(mul: u64, shift: u32, word: u64, len: usize) -> usize {
        ((word ^ ((len as u64) << 59)).wrapping_mul(mul) >> shift) as usize
    }

    pub(super) fn new(keys: &[JsonKey]) -> KeyTable {
        let short: Vec<(usize, &JsonKey)> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| (1..=8).contains(&k.key.len()))
            .collect();
        let mut seed = 0x243F_6A88_85A3_08D3_u64;
        let min_bits = (usize::BITS - short.len().leading_zeros() + 1).max(1);
        if u32::try_from(keys.len()).is_ok() {
            for bits in min_bits..=min_bits + 4 {
                for _ in 0..64 {
                    let mul = splitmix(&mut seed) | 1;
                    let shift = 64 - bits;
                    let mut slots = vec![KeySlot::default(); 1 << bits];
                    let perfect = short.iter().all(|&(index, k)| {
                        let slot = &mut slots[KeyTable::hash(mul, shift, k.word, k.key.len())];
                        if slot.len != 0 {
                            return false;
                        }
                        *slot = KeySlot {
                            word: k.word,
                            len: k.key.len() as u32,
                            key: index as u32,
                        };
                        true
                    });
                    if perfect {
                        return KeyTable {
                            mul,
                            shift,
                            slots: slots.into(),
                        };
                    }
                }
            }
        }
        KeyTable {
            mul: 0,
            shift: 63,
            slots: Box::new([]),
        }
    }

    /// The index of the key of `len` bytes (1 to 8) whose word is `word`: `Some(None)` if
    /// it is not mapped, `None` if the table cannot tell.
    #[inline(always)]
    pub(super) fn find(&self, word: u64, len: usize) -> Option<Option<usize>> {
        let slot = self
            .slots
            .get(KeyTable::hash(self.mul, self.shift, word, len))?;
        Some((slot.word == word && slot.len as usize == len).then_some(slot.key as usize))
    }
}

/// The next number of the SplitMix64 sequence.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The index of `name` in `keys`, added if missing.
pub(super) fn json_key(keys: &mut Vec<JsonKey>, name: &str) -> usize {
    if let Some(i) = keys.iter().position(|k| &*k.key == name) {
        return i;
    }
    keys.push(JsonKey {
        key: name.into(),
        word: short_word(name.as_bytes(), 0, name.len()),
        time: false,
        slots: Vec::new(),
    });
    keys.len() - 1
}
