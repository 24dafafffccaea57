//! What every entry point shares: panics caught at the boundary, this thread's last
//! error message, and the checks that turn C pointers into Rust references.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::types::tollgate_result;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A failed call: its result code and the message tollgate_last_error() gives.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) code: tollgate_result,
    pub(crate) message: String,
}

impl Fail {
    pub(crate) fn new(code: tollgate_result, message: impl Into<String>) -> Self {
        Fail {
            code,
            message: message.into(),
        }
    }
}

pub(crate) type Outcome = Result<tollgate_result, Fail>;

/// Runs an entry point's body: a failure's message becomes this thread's last error,
/// and a panic is caught and returned as `Panic` instead of unwinding into C.
pub(crate) fn guard(body: impl FnOnce() -> Outcome) -> tollgate_result {
    // The result goes through a local of its own size rather than through
    // `catch_unwind`'s return slot, whose mixed-width store and load stalled the hot path.
    let mut code = tollgate_result::Panic;
    let caught = catch_unwind(AssertUnwindSafe(|| match body() {
        Ok(c) => code = c,
        Err(fail) => {
            code = fail.code;
            set_last_error(fail.message);
        }
    }));
    match caught {
        Ok(()) => code,
        Err(payload) => {
            set_last_error(panic_message(payload.as_ref()));
            tollgate_result::Panic
        }
    }
}

/// The message of a panic caught at the boundary.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_owned());
    format!("internal error (panic caught at the C boundary): {what}")
}

/// As [`guard`], for the entry points with an error buffer (`err`, `err_len`,
/// `err_n`): the failure's message is also written there, so a caller whose calls move
/// between threads (a goroutine) reads the message of its own call. See
/// [`write_message`] for what is written.
///
/// # Safety
/// `err` must be NULL or point to `err_len` writable bytes; `err_n` must be NULL or
/// writable.
pub(crate) unsafe fn guard_err(
    err: *mut c_char,
    err_len: usize,
    err_n: *mut usize,
    body: impl FnOnce() -> Outcome,
) -> tollgate_result {
    let caught = catch_unwind(AssertUnwindSafe(body));
    let (code, message) = match caught {
        Ok(Ok(code)) => (code, String::new()),
        Ok(Err(fail)) => (fail.code, fail.message),
        Err(payload) => (tollgate_result::Panic, panic_message(payload.as_ref())),
    };
    if code != tollgate_result::Ok {
        set_last_error(message.clone());
    }
    // Writing the message allocates only when it holds a NUL; a panic there (out of
    // memory aborts anyway) must still not unwind into C.
    // SAFETY: the caller's promises, forwarded.
    let written = catch_unwind(AssertUnwindSafe(|| unsafe {
        write_message(&message, err, err_len, err_n)
    }));
    match written {
        Ok(()) => code,
        Err(_) => tollgate_result::Panic,
    }
}

/// Writes an error message into an optional caller buffer, never failing: when `err`
/// is not NULL and `err_len` is not 0, as much of the message as fits in `err_len - 1`
/// bytes (cut at a character boundary; a NUL inside written as `\0`) and a NUL; when
/// `err_n` is not NULL, the whole message's length without the NUL into `*err_n` (the
/// message was cut when `*err_n >= err_len`). An empty message writes `""` and 0.
///
/// # Safety
/// `err` must be NULL or point to `err_len` writable bytes; `err_n` must be NULL or
/// writable.
pub(crate) unsafe fn write_message(
    message: &str,
    err: *mut c_char,
    err_len: usize,
    err_n: *mut usize,
) {
    let escaped;
    let message = if message.as_bytes().contains(&0) {
        escaped = message.replace('\0', "\\0");
        escaped.as_str()
    } else {
        message
    };
    if !err.is_null() && err_len > 0 {
        let mut n = message.len().min(err_len - 1);
        while !message.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: err is non-null with room for err_len > n bytes (the caller's
        // promise), and a caller's buffer cannot overlap our own string.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), err.cast::<u8>(), n);
            err.add(n).write(0);
        }
    }
    if !err_n.is_null() {
        // SAFETY: non-null, and the caller promises it is writable.
        unsafe { err_n.write(message.len()) };
    }
}

fn set_last_error(message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

/// A required pointer argument: `Err(NullParameter)` naming it when NULL.
pub(crate) fn non_null<T>(p: *const T, what: &str) -> Result<*const T, Fail> {
    if p.is_null() {
        Err(Fail::new(
            tollgate_result::NullParameter,
            format!("{what} is NULL"),
        ))
    } else {
        Ok(p)
    }
}

/// A required output pointer.
pub(crate) fn non_null_mut<T>(p: *mut T, what: &str) -> Result<*mut T, Fail> {
    non_null(p.cast_const(), what).map(|_| p)
}

/// Why a `(pointer, length)` pair is not usable: the message is built only on failure,
/// off the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadText {
    /// NULL with a non-zero length.
    Null,
    /// A length no object can have.
    TooLong(usize),
    /// Not UTF-8: the offset of the first invalid byte.
    Utf8(usize),
}

impl BadText {
    /// The failure, naming the argument.
    #[cold]
    #[inline(never)]
    pub(crate) fn fail(self, what: &str) -> Fail {
        match self {
            BadText::Null => Fail::new(tollgate_result::NullParameter, format!("{what} is NULL")),
            BadText::TooLong(len) => Fail::new(
                tollgate_result::InvalidArgument,
                format!("{what}: length {len} is larger than any object can be"),
            ),
            BadText::Utf8(at) => Fail::new(
                tollgate_result::InvalidUtf8,
                format!("{what} is not UTF-8 (invalid byte at offset {at})"),
            ),
        }
    }
}

/// The bytes at `(ptr, len)`; NULL with length 0 is the empty string.
///
/// # Safety
/// Unless NULL, `ptr` must point to `len` readable bytes that stay valid and unchanged
/// for `'a`.
#[inline]
pub(crate) unsafe fn try_bytes<'a>(ptr: *const c_char, len: usize) -> Result<&'a [u8], BadText> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(BadText::Null);
    }
    if len > isize::MAX as usize {
        return Err(BadText::TooLong(len));
    }
    // SAFETY: non-null, the length fits an object, and the caller promises `len`
    // readable bytes valid for 'a; u8 has no alignment requirement.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// The UTF-8 text at `(ptr, len)`.
///
/// # Safety
/// As for [`try_bytes`].
#[inline]
pub(crate) unsafe fn try_text<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, BadText> {
    // SAFETY: forwarded from the caller.
    let b = unsafe { try_bytes(ptr, len) }?;
    if is_ascii(b) {
        // SAFETY: every byte is below 0x80: ASCII, which is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).map_err(|e| BadText::Utf8(e.valid_up_to()))
}

/// Whether every byte is ASCII, eight at a time: request attributes (tokens, ids,
/// methods) are short and almost always ASCII, where `str::from_utf8`'s general path
/// costs more than the rest of the boundary together. The tail is read as one more
/// (overlapping) word instead of byte by byte.
#[inline]
pub(crate) fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let half = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let n = b.len();
    if n >= 8 {
        let mut acc = word(n - 8);
        let mut i = 0;
        while i + 8 <= n {
            acc |= word(i);
            i += 8;
        }
        acc & HIGH == 0
    } else if n >= 4 {
        (half(0) | half(n - 4)) & 0x8080_8080 == 0
    } else if n > 0 {
        // Bytes 0, n/2 and n-1 cover every byte of one to three.
        (b[0] | b[n / 2] | b[n - 1]) < 0x80
    } else {
        true
    }
}

/// [`try_bytes`], failing with a message that names the argument.
///
/// # Safety
/// As for [`try_bytes`].
pub(crate) unsafe fn bytes<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Fail> {
    // SAFETY: forwarded from the caller.
    unsafe { try_bytes(ptr, len) }.map_err(|e| e.fail(what))
}

/// [`try_text`], failing with a message that names the argument.
///
/// # Safety
/// As for [`try_bytes`].
pub(crate) unsafe fn text<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a str, Fail> {
    // SAFETY: forwarded from the caller.
    unsafe { try_text(ptr, len) }.map_err(|e| e.fail(what))
}

/// Writes `s` (a NUL inside it as `\\0`) and a NUL into the caller's buffer `(buf, len)` and its length into
/// `*out_n`; when it does not fit, writes only the size needed into `*out_n` and fails
/// with `BufferTooSmall`.
///
/// # Safety
/// Unless NULL, `buf` must point to `len` writable bytes and `out_n` to a writable
/// `size_t`.
pub(crate) unsafe fn write_text(
    s: &str,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Outcome {
    let out_n = non_null_mut(out_n, "out_n")?;
    // Messages can echo the caller's input; a NUL inside would cut the text short for C
    // readers, so it is written as the two characters `\0`.
    let escaped;
    let s = if s.as_bytes().contains(&0) {
        escaped = s.replace('\0', "\\0");
        escaped.as_str()
    } else {
        s
    };
    let needed = s.len() + 1;
    if len < needed {
        // SAFETY: out_n is non-null and the caller promises it is writable.
        unsafe { out_n.write(needed) };
        return Err(Fail::new(
            tollgate_result::BufferTooSmall,
            format!("the buffer holds {len} bytes; {needed} are needed"),
        ));
    }
    let buf = non_null_mut(buf, "buf")?;
    // SAFETY: buf is non-null with room for len >= s.len() + 1 bytes (the caller's
    // promise), and a caller's buffer cannot overlap our own string.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        buf.add(s.len()).write(0);
        out_n.write(s.len());
    }
    Ok(tollgate_result::Ok)
}

/// Copies this thread's last error message (the message of the most recent call on
/// this thread that failed; successful calls leave it as it is) into `buf`, as
/// NUL-terminated text, and its length into `*out_n`. The message is empty when no call
/// on this thread has failed.
///
/// The message belongs to the OS thread: a caller whose calls may run on different
/// threads (a Go goroutine between two cgo calls) uses tollgate_result_message() and
/// the error buffers of the `_err` entry points instead.
///
/// # Safety
/// `buf` must point to `len` writable bytes and `out_n` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_last_error(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tollgate_result {
    // Not through `guard`: a failure here must not replace the message being read.
    let message = LAST_ERROR.with(|e| e.borrow().clone());
    // SAFETY: the caller's promises, forwarded.
    match catch_unwind(AssertUnwindSafe(|| unsafe {
        write_text(&message, buf, len, out_n)
    })) {
        Ok(Ok(code)) => code,
        Ok(Err(fail)) => fail.code,
        Err(_) => tollgate_result::Panic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let mut buf = [0 as c_char; 256];
        let mut n = 0usize;
        // SAFETY: a local buffer of the stated size and a local out_n.
        let r = unsafe { tollgate_last_error(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, tollgate_result::Ok);
        let b: Vec<u8> = buf[..n].iter().map(|&c| c as u8).collect();
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn a_panic_becomes_a_result_and_a_message() {
        let r = guard(|| panic!("boom"));
        assert_eq!(r, tollgate_result::Panic);
        assert!(last_error().contains("boom"), "{}", last_error());
    }

    #[test]
    fn failures_set_the_message_success_keeps_it() {
        let r = guard(|| Err(Fail::new(tollgate_result::InvalidArgument, "bad thing")));
        assert_eq!(r, tollgate_result::InvalidArgument);
        assert_eq!(guard(|| Ok(tollgate_result::Ok)), tollgate_result::Ok);
        assert_eq!(last_error(), "bad thing");
    }

    #[test]
    fn guard_err_catches_panics_and_writes_the_message() {
        let mut buf = [0x55 as c_char; 64];
        let mut n = 0usize;
        // SAFETY: a local buffer of the stated size and a local err_n.
        let r = unsafe { guard_err(buf.as_mut_ptr(), buf.len(), &mut n, || panic!("boom")) };
        assert_eq!(r, tollgate_result::Panic);
        let msg: String = buf[..n].iter().map(|&c| c as u8 as char).collect();
        assert!(msg.contains("boom"), "{msg}");
        assert_eq!(buf[n], 0);
        assert_eq!(last_error(), msg);
    }

    #[test]
    fn write_message_cuts_at_a_character_and_reports_the_whole_length() {
        let mut buf = [0x55 as c_char; 4];
        let mut n = 0usize;
        // "aé€": 1 + 2 + 3 bytes. Three bytes of room: "aé" (the euro cannot be cut).
        // SAFETY: a local buffer of the stated size and a local err_n.
        unsafe { write_message("a\u{e9}\u{20ac}", buf.as_mut_ptr(), 4, &mut n) };
        assert_eq!(n, 6);
        assert_eq!(&buf, &[0x61, 0xc3_u8 as c_char, 0xa9_u8 as c_char, 0]);
        // Two bytes of room: "a" (the é cannot be cut).
        // SAFETY: as above.
        unsafe { write_message("a\u{e9}", buf.as_mut_ptr(), 3, &mut n) };
        assert_eq!(n, 3);
        assert_eq!(&buf[..2], &[0x61, 0]);
        // A NUL inside is written as \0; a NULL buffer or length 0 writes nothing.
        let mut big = [0x55 as c_char; 8];
        // SAFETY: as above.
        unsafe { write_message("a\0b", big.as_mut_ptr(), big.len(), &mut n) };
        assert_eq!(n, 4);
        assert_eq!(&big[..5], &[97, 92, 48, 98, 0].map(|b: u8| b as c_char));
        let mut untouched = [0x55 as c_char; 2];
        // SAFETY: length 0 writes nothing; NULL pointers are allowed.
        unsafe {
            write_message("xyz", untouched.as_mut_ptr(), 0, &mut n);
            assert_eq!(n, 3);
            write_message("xyz", std::ptr::null_mut(), 99, std::ptr::null_mut());
        }
        assert_eq!(untouched, [0x55 as c_char; 2]);
        // SAFETY: as above.
        unsafe { write_message("", buf.as_mut_ptr(), 4, &mut n) };
        assert_eq!((n, buf[0]), (0, 0));
    }

    #[test]
    fn text_checks_null_length_and_utf8() {
        // SAFETY: every pointer below is NULL or points to the stated number of bytes.
        unsafe {
            assert_eq!(text(std::ptr::null(), 0, "x").unwrap(), "");
            assert_eq!(
                text(std::ptr::null(), 3, "x").unwrap_err().code,
                tollgate_result::NullParameter
            );
            let bad = [b'a' as c_char, 0xff_u8 as c_char];
            let e = text(bad.as_ptr(), 2, "value").unwrap_err();
            assert_eq!(e.code, tollgate_result::InvalidUtf8);
            assert!(e.message.contains("offset 1"), "{}", e.message);
            let big = text(bad.as_ptr(), usize::MAX, "x").unwrap_err();
            assert_eq!(big.code, tollgate_result::InvalidArgument);
            assert_eq!(text(bad.as_ptr(), 1, "x").unwrap(), "a");
        }
    }

    #[test]
    fn ascii_fast_path_agrees_with_from_utf8() {
        let samples: [&[u8]; 8] = [
            b"",
            b"GET",
            b"0123456\x80",
            b"01234567",
            b"0123456789abcdef\xc3\xa9",
            "d3ccdbd9-31f0-4912-bdb7-8ccd92a1504d".as_bytes(),
            "caf\u{e9} \u{1f600}".as_bytes(),
            b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7",
        ];
        for s in samples {
            // SAFETY: a live slice and its length.
            let got = unsafe { try_text(s.as_ptr().cast(), s.len()) };
            let want = std::str::from_utf8(s).map_err(|e| BadText::Utf8(e.valid_up_to()));
            assert_eq!(got, want, "{s:?}");
            assert_eq!(is_ascii(s), s.is_ascii(), "{s:?}");
        }
        // Every length, with one non-ASCII byte at every position (the overlapping
        // tail reads must still see each byte).
        for len in 0..40 {
            let clean = vec![b'a'; len];
            assert!(is_ascii(&clean));
            for at in 0..len {
                let mut dirty = clean.clone();
                dirty[at] = 0x80;
                assert!(!is_ascii(&dirty), "len {len}, at {at}");
            }
        }
    }

    #[test]
    fn write_text_fits_or_says_how_much_is_needed() {
        let mut buf = [0x55 as c_char; 4];
        let mut n = 0usize;
        // SAFETY: local buffers of the stated sizes.
        unsafe {
            let e = write_text("hello", buf.as_mut_ptr(), buf.len(), &mut n).unwrap_err();
            assert_eq!(e.code, tollgate_result::BufferTooSmall);
            assert_eq!(n, 6);
            assert!(buf.iter().all(|&c| c == 0x55), "nothing written");
            assert_eq!(
                write_text("abc", buf.as_mut_ptr(), 4, &mut n).unwrap(),
                tollgate_result::Ok
            );
            assert_eq!(n, 3);
            assert_eq!(buf, [b'a' as c_char, b'b' as c_char, b'c' as c_char, 0]);
            let mut big = [0 as c_char; 8];
            write_text("a\0b", big.as_mut_ptr(), big.len(), &mut n).unwrap();
            assert_eq!(n, 4);
            assert_eq!(&big[..5], &[97, 92, 48, 98, 0].map(|b: u8| b as c_char));
            let e = write_text("", std::ptr::null_mut(), 1, &mut n).unwrap_err();
            assert_eq!(e.code, tollgate_result::NullParameter);
            let e = write_text("", buf.as_mut_ptr(), 1, std::ptr::null_mut()).unwrap_err();
            assert_eq!(e.code, tollgate_result::NullParameter);
        }
    }
}
