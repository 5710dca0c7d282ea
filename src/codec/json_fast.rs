//! The fast path of JSON touch-point decoding: a hand-written scanner for the payloads
//! producers actually send (one flat object, strings without escapes, plain numbers, the
//! `customer` object and the `attributes` map), producing the same [`RawEvent`] as the serde
//! path in `json.rs` without building a `WireEvent` first.
//!
//! The contract is one-sided: [`scan`] returns `Some` only when serde_json would accept the
//! payload and yield exactly the same values. Anything it does not handle (an escape in a
//! string it keeps, a number outside the exactly-rounded range, a duplicate field, a type
//! mismatch, malformed or truncated JSON) gives `None`, and the caller runs the serde path,
//! which owns every error message. So this file never reports an error, and its tests compare
//! it with serde rather than with expected messages.

use super::validate::{RawEvent, RawProfile};

/// Exact powers of ten as `f64` (10^22 is the largest exact one).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Skipped unknown values nest at most this deep here (one bit per level in a `u64`); deeper
/// ones go to serde, which has no limit for ignored values.
const MAX_SKIP_DEPTH: u32 = 64;

/// Top-level fields, in the order producers write them (the simulator's, through
/// `WireEvent`'s `Serialize`). A field's index is its bit in the "seen" mask: serde rejects a
/// field given twice, so the scanner leaves that to it.
const FIELDS: [&str; 15] = [
    "event_id",
    "occurred_at",
    "customer_id",
    "channel",
    "touchpoint",
    "type",
    "outcome",
    "reference",
    "cause",
    "amount",
    "currency",
    "expected_by",
    "customer",
    "score",
    "attributes",
];
const PROFILE_FIELDS: [&str; 3] = ["since", "segment", "annual_value"];

/// Keys as they start after the opening quote: the name and the closing quote.
static KEYS: [Key; 15] = words(FIELDS, b"", b"\"");
static PROFILE_KEYS: [Key; 3] = words(PROFILE_FIELDS, b"", b"\"");
/// The whole step from one member to the next as producers write it: `,"name":`.
static SEPARATORS: [Key; 15] = words(FIELDS, b",\"", b"\":");
static PROFILE_SEPARATORS: [Key; 3] = words(PROFILE_FIELDS, b",\"", b"\":");

/// Bytes to recognise in one step: a little-endian 16-byte word and the mask of its bytes.
#[derive(Clone, Copy)]
struct Key {
    word: u128,
    mask: u128,
    /// Bytes to skip on a match.
    len: usize,
}

/// `prefix name suffix` for each name; all must fit in 16 bytes (checked at compile time).
const fn words<const N: usize>(names: [&str; N], prefix: &[u8], suffix: &[u8]) -> [Key; N] {
    let mut out = [Key {
        word: 0,
        mask: 0,
        len: 0,
    }; N];
    let mut k = 0;
    while k < N {
        let name = names[k].as_bytes();
        let len = prefix.len() + name.len() + suffix.len();
        assert!(len <= 16);
        let mut word = 0u128;
        let mut j = 0;
        while j < len {
            let byte = if j < prefix.len() {
                prefix[j]
            } else if j < prefix.len() + name.len() {
                name[j - prefix.len()]
            } else {
                suffix[j - prefix.len() - name.len()]
            };
            word |= (byte as u128) << (8 * j);
            j += 1;
        }
        out[k] = Key {
            word,
            mask: u128::MAX >> (8 * (16 - len)),
            len,
        };
        k += 1;
    }
    out
}

/// Scans `text` (already known to be UTF-8) into a [`RawEvent`], or `None` to fall back.
pub(super) fn scan(text: &str) -> Option<RawEvent<'_>> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    let mut raw = RawEvent::default();
    s.ws();
    s.expect(b'{')?;
    let mut seen = 0u32;
    // The field expected next: the one after the last, in the usual order.
    let mut next = 0;
    let mut member = if s.object_empty() {
        None
    } else {
        Some(s.key(&KEYS, 0, &FIELDS)?)
    };
    while let Some(field) = member {
        if field < FIELDS.len() {
            if seen & 1 << field != 0 {
                return None;
            }
            seen |= 1 << field;
            next = field + 1;
        }
        match field {
            0 => raw.event_id = s.opt_str()?,
            1 => raw.occurred_at = s.opt_str()?,
            2 => raw.customer_id = s.opt_str()?,
            3 => raw.channel = s.opt_str()?,
            4 => raw.touchpoint = s.opt_str()?,
            5 => raw.event_type = s.opt_str()?,
            6 => raw.outcome = s.opt_str()?.map(Ok),
            7 => raw.reference = s.opt_str()?,
            8 => raw.cause = s.opt_str()?.map(Ok),
            9 => raw.amount = s.opt_num()?,
            10 => raw.currency = s.opt_str()?,
            11 => raw.expected_by = s.opt_str()?,
            12 => raw.customer = s.profile()?,
            13 => raw.score = s.opt_num()?,
            14 => s.attributes(&mut raw.attributes)?,
            _ => s.skip_value()?,
        }
        member = s.next_member(&SEPARATORS, &KEYS, next, &FIELDS)?;
    }
    // Like `serde_json::from_str`: only whitespace may follow the value.
    s.ws();
    (s.i == s.b.len()).then_some(raw)
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    /// JSON whitespace, exactly serde_json's set.
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Consumes `c` (no whitespace skipped).
    #[inline(always)]
    fn expect(&mut self, c: u8) -> Option<()> {
        if self.peek()? == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// After `{`: consumes a `}` that closes an empty object.
    #[inline(always)]
    fn object_empty(&mut self) -> bool {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// After a member: `true` at the closing `}`, `false` after a `,`.
    #[inline(always)]
    fn object_next(&mut self) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(false)
            }
            b'}' => {
                self.i += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// The next 16 input bytes as a little-endian word.
    #[inline(always)]
    fn word(&self) -> Option<u128> {
        let bytes = self.b.get(self.i..self.i + 16)?;
        Some(u128::from_le_bytes(bytes.try_into().ok()?))
    }

    /// A member's key and the `:` after it, leaving the cursor before the value. Returns the
    /// key's index in `names` (`keys` holds the same names), or `names.len()` for an unknown
    /// key. `expected` is tried first; the key is only scanned as a string when it matches
    /// none of `keys`.
    #[inline(always)]
    fn key(&mut self, keys: &[Key], expected: usize, names: &[&str]) -> Option<usize> {
        self.ws();
        self.expect(b'"')?;
        let mut found = None;
        if let Some(w) = self.word() {
            let n = keys.len();
            for k in (expected..n).chain(0..expected.min(n)) {
                let key = keys[k];
                if w & key.mask == key.word {
                    self.i += key.len;
                    found = Some(k);
                    break;
                }
            }
        }
        let index = match found {
            Some(k) => k,
            None => {
                let name = self.plain_str()?;
                names.iter().position(|n| *n == name).unwrap_or(names.len())
            }
        };
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(index)
    }

    /// After a member's value: the next member's key as [`Scanner::key`] gives it, or `None`
    /// at the closing `}`. The usual `,"name":` (no whitespace, a known name at or after
    /// `expected`) is recognised in one compare per candidate.
    #[inline(always)]
    fn next_member(
        &mut self,
        separators: &[Key],
        keys: &[Key],
        expected: usize,
        names: &[&str],
    ) -> Option<Option<usize>> {
        if let Some(w) = self.word() {
            for (k, sep) in separators.iter().enumerate().skip(expected) {
                if w & sep.mask == sep.word {
                    self.i += sep.len;
                    self.ws();
                    return Some(Some(k));
                }
            }
        }
        if self.object_next()? {
            return Some(None);
        }
        self.key(keys, expected, names).map(Some)
    }

    /// An attribute's key and the `:` after it.
    #[inline(always)]
    fn any_key(&mut self) -> Option<&'a str> {
        self.ws();
        self.expect(b'"')?;
        let k = self.plain_str()?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(k)
    }

    /// The rest of a string after its opening quote, if it has no escapes and no control
    /// characters (serde rejects those; escapes it would have to decode).
    #[inline(always)]
    fn plain_str(&mut self) -> Option<&'a str> {
        let start = self.i;
        // Sixteen bytes at a time; the lowest flagged byte is the first special one.
        while let Some(w) = self.word() {
            let special = u128::from(special_bytes(w as u64))
                | u128::from(special_bytes((w >> 64) as u64)) << 64;
            if special != 0 {
                self.i += (special.trailing_zeros() / 8) as usize;
                return self.end_plain_str(start);
            }
            self.i += 16;
        }
        while !matches!(self.peek()?, b'"' | b'\\' | 0..=0x1f) {
            self.i += 1;
        }
        self.end_plain_str(start)
    }

    /// At the first special byte of a string: its end if that is the closing quote.
    #[inline(always)]
    fn end_plain_str(&mut self, start: usize) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        // Both ends are ASCII quotes, so the slice is on char boundaries.
        let s = self.text.get(start..self.i)?;
        self.i += 1;
        Some(s)
    }

    /// `"…"` or `null`, as `Option<Cow<str>>` deserializes.
    #[inline(always)]
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.plain_str().map(Some)
            }
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// A number or `null`, as `Option<f64>` deserializes.
    #[inline(always)]
    fn opt_num(&mut self) -> Option<Option<f64>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            _ => self.number().map(Some),
        }
    }

    /// A JSON number whose value serde_json computes exactly as here: a significand up to
    /// 2^53 and a decimal exponent within ±22, so both operands are exact and the one
    /// multiplication or division rounds correctly (with or without serde_json's
    /// `float_roundtrip`). Others go to serde.
    fn number(&mut self) -> Option<f64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let mut significand: u64 = 0;
        let mut digits = 0u32;
        match self.peek()? {
            b'0' => {
                self.i += 1;
                // One leading zero only.
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    significand = significand * 10 + u64::from(c - b'0');
                    digits += 1;
                    self.i += 1;
                    if digits > 16 {
                        return None;
                    }
                }
            }
            _ => return None,
        }
        let mut exponent: i32 = 0;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            float = true;
            let start = self.i;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                significand = significand * 10 + u64::from(c - b'0');
                digits += 1;
                exponent -= 1;
                self.i += 1;
                if digits > 16 {
                    return None;
                }
            }
            if self.i == start {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            float = true;
            let negative_exp = match self.peek()? {
                b'-' => {
                    self.i += 1;
                    true
                }
                b'+' => {
                    self.i += 1;
                    false
                }
                _ => false,
            };
            let start = self.i;
            let mut e: i32 = 0;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                e = e * 10 + i32::from(c - b'0');
                self.i += 1;
                if self.i - start > 3 {
                    return None;
                }
            }
            if self.i == start {
                return None;
            }
            exponent += if negative_exp { -e } else { e };
        }
        if significand > 1 << 53 {
            return None;
        }
        let magnitude = significand as f64;
        let value = if !float {
            // serde_json: u64 or i64, converted with `as f64` (exact here); `-0` is -0.0.
            magnitude
        } else {
            let pow = *POW10.get(exponent.unsigned_abs() as usize)?;
            if exponent >= 0 {
                magnitude * pow
            } else {
                magnitude / pow
            }
        };
        Some(if negative { -value } else { value })
    }

    /// `customer`: an object of the profile's fields, or `null`.
    fn profile(&mut self) -> Option<Option<RawProfile<'a>>> {
        match self.peek()? {
            b'n' => return self.literal(b"null").map(|()| None),
            b'{' => self.i += 1,
            // serde would also take an array (positional fields): let it.
            _ => return None,
        }
        let mut p = RawProfile::default();
        if self.object_empty() {
            return Some(Some(p));
        }
        let mut seen = 0u8;
        let mut next = 0;
        let mut member = Some(self.key(&PROFILE_KEYS, 0, &PROFILE_FIELDS)?);
        while let Some(field) = member {
            if field < PROFILE_FIELDS.len() {
                if seen & 1 << field != 0 {
                    return None;
                }
                seen |= 1 << field;
                next = field + 1;
            }
            match field {
                0 => p.since = self.opt_str()?,
                1 => p.segment = self.opt_str()?,
                2 => p.annual_value = self.opt_num()?,
                _ => self.skip_value()?,
            }
            member = self.next_member(&PROFILE_SEPARATORS, &PROFILE_KEYS, next, &PROFILE_FIELDS)?;
        }
        Some(Some(p))
    }

    /// `attributes`: an object of string values (kept in order, repeated keys included, as
    /// the serde visitor does), or `null`.
    fn attributes(&mut self, out: &mut Vec<(&'a str, &'a str)>) -> Option<()> {
        match self.peek()? {
            b'n' => return self.literal(b"null"),
            b'{' => self.i += 1,
            _ => return None,
        }
        if self.object_empty() {
            return Some(());
        }
        loop {
            let k = self.any_key()?;
            self.expect(b'"')?;
            let v = self.plain_str()?;
            out.push((k, v));
            if self.object_next()? {
                return Some(());
            }
        }
    }

    /// Skips any well-formed value, as serde's `IgnoredAny` does (escapes in skipped strings
    /// are fine, they are only checked).
    fn skip_value(&mut self) -> Option<()> {
        // One bit per open container: 1 = object, 0 = array.
        let mut stack: u64 = 0;
        let mut depth: u32 = 0;
        loop {
            // A value starts here.
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.skip_str()?;
                }
                b'-' | b'0'..=b'9' => self.skip_number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                open @ (b'{' | b'[') => {
                    self.i += 1;
                    if depth == MAX_SKIP_DEPTH {
                        return None;
                    }
                    stack = stack << 1 | u64::from(open == b'{');
                    depth += 1;
                    self.ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek()? != close {
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                    // Empty container: closed by the loop below.
                }
                _ => return None,
            }
            // After a value (or at an empty container's close): a comma or closing brackets.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let in_object = stack & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if in_object {
                            self.ws();
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                self.i += 1;
                stack >>= 1;
                depth -= 1;
            }
        }
    }

    /// A key of a skipped object and its `:`.
    fn skip_key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.skip_str()?;
        self.ws();
        self.expect(b':')
    }

    /// The rest of a skipped string: escapes are checked as serde checks them.
    fn skip_str(&mut self) -> Option<()> {
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// A skipped number: only its grammar matters.
    fn skip_number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => {
                self.i += 1;
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests;

/// Flags (high bit of the byte) the bytes of `w`, read little-endian, that are `"`, `\` or
/// control characters (< 0x20). Only the lowest flag is exact: the subtractions below can
/// also flag a byte above a true match (their borrow runs upwards), never one below, so the
/// lowest flagged byte is always the first special byte, and 0 means there is none.
#[inline]
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is below `n` (n <= 0x80): subtracting `n` borrows into its high bit, and
    // `!x` drops bytes that had the high bit set already.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let quote = below(w ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(w ^ (ONES * u64::from(b'\\')), 1);
    quote | backslash | below(w, 0x20)
}
