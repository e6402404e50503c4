//! The decoder's fast path: the fields of a message in its commonest shape,
//! read by one pass over the text without serde.
//!
//! [`fields`] either returns exactly what `serde_json::from_str` would make
//! of the text, or None, and then the decoder asks serde_json, which decides
//! as it always did (every rejection, with its reason, comes from there).
//! So the fast path only has to be right about what it accepts, and it
//! accepts little: a JSON object whose strings have no escapes, with `ID`
//! and `name` (strings), `interval`, `latency_ms` (numbers, not negative, no
//! exponent), `seq` (an integer), `client` (a string), each at most once,
//! and any other members that are not among the message's fields
//! (validated, then passed over, as serde_json passes over them). Anything
//! else (a plugin, a tag, a job field, `null`, an escape, a nesting deeper
//! than [`MAX_DEPTH`], a line break, a byte out of place) is None.
//!
//! Why: serde's derived field matching and its generic skipping were more
//! than half of the udp thread's instructions per heartbeat (BENCHMARKS.md,
//! issue 25).

use std::borrow::Cow;

use super::decode::WireMessage;

/// Deeper nesting in a passed-over member goes to serde_json (which allows
/// 128).
const MAX_DEPTH: usize = 32;

/// The message's fields, or None: see the module's documentation.
pub(super) fn fields(text: &str) -> Option<WireMessage<'_>> {
    let mut s = Scanner { text, bytes: text.as_bytes(), at: 0 };
    let mut message = WireMessage::empty();
    let (mut id, mut name) = (None, None);
    s.skip_space();
    s.expect(b'{')?;
    s.skip_space();
    if s.peek()? != b'}' {
        loop {
            let key = s.string()?;
            s.skip_space();
            s.expect(b':')?;
            s.skip_space();
            match key {
                "ID" => once(&mut id, Cow::Borrowed(s.string()?))?,
                "name" => once(&mut name, Cow::Borrowed(s.string()?))?,
                "interval" => once(&mut message.interval, s.unsigned_f64()?)?,
                "latency_ms" => once(&mut message.latency_ms, s.unsigned_f64()?)?,
                "seq" => once(&mut message.seq, s.unsigned_integer()?)?,
                "client" => once(&mut message.client, Cow::Borrowed(s.string()?))?,
                key if WireMessage::FIELDS.contains(&key) => return None,
                _ => s.skip_value(0)?,
            }
            s.skip_space();
            match s.next()? {
                b',' => s.skip_space(),
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        s.at += 1;
    }
    s.skip_space();
    if s.at != s.bytes.len() {
        return None;
    }
    message.id = id?;
    message.name = name?;
    Some(message)
}

/// Sets `slot` to `value`, or None if it was set: serde refuses a field
/// given twice.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Spaces and tabs. JSON's other whitespace, `\n` and `\r`, is left to
    /// serde_json, and so is every control character in a string: a text
    /// the fast path reads has no line break, and the decoder need not look
    /// for one.
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters, borrowed from the
    /// text (as serde_json borrows one). Eight bytes at a time to the first
    /// quote, backslash or control character, then that byte decides.
    fn string(&mut self) -> Option<&'a str> {
        const ONES: u64 = u64::from_le_bytes([0x01; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        // The high bit of each byte of `w` that is zero, or below 0x20.
        // Borrows can mark bytes after the first one that is, never before
        // it: the lowest mark is exact.
        let zero_in = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
        let below_space = |w: u64| w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        self.expect(b'"')?;
        let start = self.at;
        while let Some(word) = self.bytes.get(self.at..self.at + 8) {
            let w = u64::from_le_bytes(<[u8; 8]>::try_from(word).ok()?);
            let marks = zero_in(w ^ (ONES * u64::from(b'"'))) | zero_in(w ^ (ONES * u64::from(b'\\'))) | below_space(w);
            if marks != 0 {
                // Little-endian: the first byte in the text is the lowest.
                self.at += (marks.trailing_zeros() / 8) as usize;
                break;
            }
            self.at += 8;
        }
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
        // Both ends are ASCII quotes, so char boundaries of the valid text.
        self.text.get(start..self.at - 1)
    }

    /// A number's text, checked against JSON's grammar: `-`? int frac? exp?
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digit()?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digit()?;
            self.digits();
        }
        self.text.get(start..self.at)
    }

    fn digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then_some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// A number without sign or exponent, as the f64 serde_json makes of
    /// it: both it (with `float_roundtrip`) and `str::parse` round
    /// correctly, and an integer's conversion rounds as parsing it does. A
    /// sign (`-0` becomes 0.0 in serde_json) or an exponent (out of range
    /// is an error there, infinity here) goes to serde_json.
    fn unsigned_f64(&mut self) -> Option<f64> {
        let text = self.number()?;
        if text.bytes().any(|b| matches!(b, b'-' | b'e' | b'E')) {
            return None;
        }
        text.parse().ok()
    }

    /// An integer that fits a u64 (no sign, fraction or exponent).
    fn unsigned_integer(&mut self) -> Option<u64> {
        let text = self.number()?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    }

    /// Passes over one value, checking it as serde_json does when it
    /// ignores a member.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                self.skip_space();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.skip_space();
                    match self.next()? {
                        b',' => self.skip_space(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'{' if depth < MAX_DEPTH => {
                self.at += 1;
                self.skip_space();
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.skip_space();
                    self.expect(b':')?;
                    self.skip_space();
                    self.skip_value(depth + 1)?;
                    self.skip_space();
                    match self.next()? {
                        b',' => self.skip_space(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the decoder reads of a message, comparable.
    fn seen(m: &WireMessage) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            m.id,
            m.name,
            m.interval.map(f64::to_bits),
            m.seq,
            m.latency_ms.map(f64::to_bits),
            m.client,
            m.plugins.as_ref().map(|p| p.iter().map(|(k, v)| (k.clone(), v.get())).collect::<Vec<_>>()),
            m.plugin_intervals.map(|r| r.get()),
            m.tags.map(|r| r.get()),
            m.event,
            m.exit_code,
            m.signal,
            m.duration_s.map(f64::to_bits),
            m.output,
            m.message,
            m.grace.map(f64::to_bits),
            m.timeout.map(f64::to_bits),
        )
    }

    /// Whatever the fast path accepts, serde_json reads the same way.
    fn agrees(text: &str) -> bool {
        let Some(fast) = fields(text) else { return false };
        match serde_json::from_str::<WireMessage>(text) {
            Ok(slow) => assert_eq!(seen(&fast), seen(&slow), "{text:?}"),
            Err(e) => panic!("fast path accepted what serde_json refuses ({e}): {text:?}"),
        }
        true
    }

    /// A deterministic stream of numbers, for reproducible random inputs.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    const LOADGEN: &str = r#"{"ID":"HTB","name":"host-00042","interval":30,"seq":7,"os":{"system":"Linux","release":"6.1.0-28-amd64","machine":"x86_64"},"uptime":864123,"load":[0.42,0.35,0.3],"pad":"xxxxxxxx"}"#;

    #[test]
    fn the_common_shapes_take_the_fast_path() {
        for text in [
            LOADGEN,
            r#"{"ID":"HTB","name":"a"}"#,
            r#" { "name" : "a" , "ID" : "PLG" } "#,
            "{\"ID\":\"HTB\",\t\"name\":\"Web-1\",\"interval\":10.5,\"latency_ms\":0.25,\"client\":\"hbc 0.1.0\"}",
            r#"{"ID":"HTB","name":"a","x":"0123456","w":"","y":"01234567","z":"012345678901234567890123äöü€"}"#,
            r#"{"ID":"HTB","name":"a","x":[],"y":{},"z":[true,false,null,-1.5e-3,0,{"a":[1]}]}"#,
            r#"{"ID":"HTB","name":"a","seq":18446744073709551615,"interval":0.000}"#,
            r#"{"ID":"HTB","name":"a","interval":123456789012345678901234567890}"#,
            r#"{"name":"ä","ID":"XYZ","client":"","":""}"#,
        ] {
            assert!(agrees(text), "{text}");
        }
    }

    /// Strings end at their quote wherever it falls in the eight-byte
    /// steps, and an escape or a control character anywhere in them is
    /// left to serde_json.
    #[test]
    fn strings_of_every_length() {
        for len in 0..40 {
            for fill in ["x", "ä", "\u{7f}", "€"] {
                let value: String = fill.repeat(len);
                assert!(agrees(&format!(r#"{{"ID":"HTB","name":"a","x":"{value}","y":1}}"#)), "{len} {fill}");
                for at in 0..=value.len() {
                    if !value.is_char_boundary(at) {
                        continue;
                    }
                    for odd in ["\\", "\n", "\u{1f}", "\u{0}", "\\\""] {
                        let text = format!(r#"{{"ID":"HTB","name":"a","x":"{}{odd}{}"}}"#, &value[..at], &value[at..]);
                        assert!(fields(&text).is_none(), "{text:?}");
                    }
                }
            }
        }
    }

    /// The fields the fast path knows are the ones serde's derive reads.
    #[test]
    fn field_names_are_the_derived_ones() {
        use serde::de::{Error, Visitor};
        struct Capture(&'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for &mut Capture {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(Error::custom("captured"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
                unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let mut capture = Capture(&[]);
        assert!(<WireMessage as serde::Deserialize>::deserialize(&mut capture).is_err());
        let (mut derived, mut known) = (capture.0.to_vec(), WireMessage::FIELDS.to_vec());
        derived.sort_unstable();
        known.sort_unstable();
        assert_eq!(derived, known);
    }

    #[test]
    fn anything_else_goes_to_serde_json() {
        for text in [
            r#"{"ID":"HTB"}"#,
            r#"{"ID":"HTB","name":"a","name":"b"}"#,
            r#"{"ID":"HTB","name":"a","tags":["db"]}"#,
            r#"{"ID":"HTB","name":"a","plugins":{}}"#,
            r#"{"ID":"JOB","name":"a","event":"ok"}"#,
            r#"{"ID":"HTB","name":"a","interval":null}"#,
            r#"{"ID":"HTB","name":"a","interval":-0}"#,
            r#"{"ID":"HTB","name":"a","interval":1e0}"#,
            r#"{"ID":"HTB","name":"a","latency_ms":1E400}"#,
            r#"{"ID":"HTB","name":"a","seq":1.0}"#,
            r#"{"ID":"HTB","name":"a","seq":18446744073709551616}"#,
            r#"{"ID":"HTB","name":"a\u0062"}"#,
            r#"{"ID":"HTB","n\u0061me":"a"}"#,
            r#"{"ID":"HTB","name":"a","x":"\n"}"#,
            r#"{"ID":"HTB","name":"a","x":01}"#,
            r#"{"ID":"HTB","name":"a","x":1.}"#,
            r#"{"ID":"HTB","name":"a","x":[1,]}"#,
            r#"{"ID":"HTB","name":"a",}"#,
            r#"{"ID":"HTB","name":"a"} x"#,
            r#"{"ID":"HTB","name":"a"}}"#,
            r#"["HTB","a"]"#,
            "{\"ID\":\"HTB\",\"name\":\"a\",\"x\":\"\x01\"}",
            "{\"ID\":\"HTB\",\"name\":\"a\",\"x\":\"0123456789\x1f\"}",
            "{\"ID\":\"HTB\",\"name\":\"a\",\"x\":\"01234567\\\\89\"}",
            "{\"ID\":\"HTB\",\n\"name\":\"a\"}",
            "{\"ID\":\"HTB\",\"name\":\"a\"}\r\n",
            &format!(r#"{{"ID":"HTB","name":"a","x":{}1{}}}"#, "[".repeat(40), "]".repeat(40)),
        ] {
            assert!(fields(text).is_none(), "{text}");
        }
    }

    /// Numbers read as serde_json reads them, to the bit.
    #[test]
    fn numbers_round_as_serde_json_rounds_them() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..20_000 {
            let (a, b) = (next(), next());
            let digits = (a % 25 + 1) as usize;
            let whole: String = format!("{a}{b}").chars().take(digits).collect();
            let whole = whole.trim_start_matches('0');
            let whole = if whole.is_empty() { "0" } else { whole };
            let fraction: String = format!("{b}").chars().take((a >> 40) as usize % 20).collect();
            let number = if fraction.is_empty() { whole.to_string() } else { format!("{whole}.{fraction}") };
            let text = format!(r#"{{"ID":"HTB","name":"a","interval":{number},"latency_ms":{number}}}"#);
            assert!(agrees(&text), "{text}");
            if fraction.is_empty() && number.len() < 20 {
                assert!(agrees(&format!(r#"{{"ID":"HTB","name":"a","seq":{number}}}"#)));
            }
        }
    }

    /// Bytes changed, cut and inserted at random: the fast path never
    /// accepts what serde_json reads otherwise or refuses.
    #[test]
    fn mutated_messages_never_disagree() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let alphabet = b"{}[]:,\"\\ \n-+.eE0159tfnaIDnameseqinterval";
        let bases = [
            LOADGEN,
            r#"{"ID":"HTB","name":"web-1","interval":30,"seq":12,"latency_ms":1.25,"client":"hbc 0.1.0"}"#,
            r#"{"ID":"PLG","name":"a","x":[true,false,null,{"y":-0.5e+2}]}"#,
        ];
        let mut accepted = 0;
        for round in 0..60_000 {
            let mut bytes = bases[round % bases.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % (bytes.len() as u64 + 1)) as usize;
                let b = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 if at < bytes.len() => bytes[at] = b,
                    1 if at < bytes.len() => drop(bytes.remove(at)),
                    _ => bytes.insert(at, b),
                }
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                accepted += usize::from(agrees(text));
            }
        }
        assert!(accepted > 1000, "only {accepted} mutants took the fast path");
    }
}
