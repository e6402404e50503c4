//! The encoding of one block of plugin history: rows of two timestamps and
//! a fixed number of scalar columns (the leaves of a plugin's data, in the
//! order of its layout), packed into one byte vector.
//!
//! A row is:
//! - `at` and `received`, each in the integer form of numbers below and as
//!   the delta-of-delta of that form (zigzag LEB128, shifted left once, so
//!   even), or the odd escape `1`, a mode byte and the full value: hbc's
//!   times are milliseconds and hbd stamps `received` in milliseconds, so
//!   regular intervals cost a byte or two;
//! - a bitmap with one bit per column, set where the value differs from the
//!   row before: a value that stays put costs one bit;
//! - for each changed column, a token: either the zigzag delta of the
//!   column's integer form (shifted left once, so even), or the odd escape
//!   `1` followed by a mode byte and the full value.
//!
//! Every value has an integer form and a mode: an integer (i64, or a u64
//! beyond i64 kept as its bits), a float that is a decimal with k ≤ 9
//! digits after the point (kept as the integer `v × 10^k`, checked to give
//! back the same f64 bits), any other float (its bits), a string, a
//! boolean or null. So `12` comes back as `12`, `12.0` as `12.0`,
//! `71.35` as `71.35`, and a delta is small when the value moves a little.
//! A column keeps its number of decimals while its values fit in it (71.4
//! after 71.35 is 7140 at two digits, the same f64), so a value that happens
//! to end in a zero does not cost an escape.
//! Strings, booleans and nulls are written only where they change.
//!
//! Blocks of state files of version 2 kept times as the delta-of-delta of
//! their f64 bit patterns; [`Chunk::from_v2_parts`] reads those.
//!
//! Invariants: the first row of a block escapes every column, so a block
//! decodes on its own; decoding never trusts the bytes (a state file may be
//! damaged): every read is checked and ends in [`Corrupt`], never a panic.

use serde_json::Number;

/// Bytes that do not decode as a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

const INT: u8 = 0;
const BIG: u8 = 1;
/// `DEC + k`: a decimal with k digits after the point.
const DEC: u8 = 2;
const MAX_DIGITS: u8 = 9;
const RAW: u8 = DEC + MAX_DIGITS + 1;
const STR: u8 = RAW + 1;
const TRUE: u8 = STR + 1;
const FALSE: u8 = TRUE + 1;
const NULL: u8 = FALSE + 1;

const POW10: [f64; MAX_DIGITS as usize + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers up to here are exact in an f64.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// A number as the store keeps it: a mode and an integer form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num {
    mode: u8,
    m: i64,
}

impl Num {
    pub fn from_json(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num { mode: INT, m: i }
        } else if let Some(u) = n.as_u64() {
            Num { mode: BIG, m: u as i64 }
        } else {
            Num::from_f64(n.as_f64().unwrap_or(0.0))
        }
    }

    fn from_f64(v: f64) -> Num {
        for k in 0..=MAX_DIGITS {
            let m = (v * POW10[k as usize]).round();
            if m.abs() > EXACT {
                break;
            }
            // Through i64 and back, as decoding goes: -0.0 stays a raw float.
            let m = m as i64;
            if (m as f64 / POW10[k as usize]).to_bits() == v.to_bits() {
                return Num { mode: DEC + k, m };
            }
        }
        Num { mode: RAW, m: v.to_bits() as i64 }
    }

    /// The same number with the digits after the point of `mode`, when that
    /// is a decimal mode with at least as many as this one's and the integer
    /// form stays exact. Both forms then divide to the same f64 (each is the
    /// correctly rounded quotient of the same rational), so the number reads
    /// back the same.
    fn at_digits_of(self, mode: u8) -> Option<Num> {
        if !(DEC..RAW).contains(&self.mode) || !(self.mode..RAW).contains(&mode) {
            return None;
        }
        let m = self.m.checked_mul(10i64.pow(u32::from(mode - self.mode)))?;
        (m.unsigned_abs() <= EXACT as u64).then_some(Num { mode, m })
    }

    /// The JSON number; None only for a float that is not finite, which
    /// JSON cannot hold (and which only damaged bytes produce).
    pub fn to_json(self) -> Option<Number> {
        match self.mode {
            INT => Some(Number::from(self.m)),
            BIG => Some(Number::from(self.m as u64)),
            RAW => Number::from_f64(f64::from_bits(self.m as u64)),
            k => Number::from_f64(self.m as f64 / POW10[usize::from(k - DEC)]),
        }
    }
}

/// One value of a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Num(Num),
    Str(&'a str),
    Bool(bool),
    Null,
}

/// What the encoder remembers of a column: its mode, integer form and,
/// for a string, where it lies in the block.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    mode: u8,
    m: i64,
    text: (usize, usize),
}

/// One block: `rows` rows of `cols` columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    cols: u32,
    rows: u32,
    bytes: Vec<u8>,
}

/// What the coder remembers of a time column: its mode, integer form and
/// last delta.
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    mode: u8,
    m: i64,
    delta: i64,
}

impl Clock {
    fn time(&self) -> f64 {
        match self.mode {
            RAW => f64::from_bits(self.m as u64),
            INT | BIG => self.m as f64,
            k => self.m as f64 / POW10[usize::from(k - DEC).min(MAX_DIGITS as usize)],
        }
    }
}

/// Where a decoder stands: the previous row's values.
struct Cursor {
    pos: usize,
    at: Clock,
    received: Clock,
    cells: Vec<Cell>,
    /// Times in the form of state files of version 2.
    v2_times: bool,
    /// The row being encoded, kept from row to row: a full history encodes
    /// its whole block again at every sample.
    row: Vec<u8>,
}

impl Chunk {
    pub fn new(cols: usize) -> Chunk {
        Chunk { cols: cols as u32, rows: 0, bytes: Vec::new() }
    }

    /// A block read back from a state file; checked by decoding it whole.
    pub fn from_parts(cols: usize, rows: usize, bytes: Vec<u8>) -> Result<Chunk, Corrupt> {
        let chunk = Chunk { cols: u32::try_from(cols).map_err(|_| Corrupt)?, rows: rows as u32, bytes };
        let mut cursor = chunk.cursor();
        for _ in 0..rows {
            chunk.step(&mut cursor)?;
        }
        if cursor.pos != chunk.bytes.len() {
            return Err(Corrupt);
        }
        Ok(chunk)
    }

    /// A block of a version-2 state file (times as f64 bit patterns),
    /// encoded again in today's form.
    pub fn from_v2_parts(cols: usize, rows: usize, bytes: Vec<u8>) -> Result<Chunk, Corrupt> {
        let old = Chunk { cols: u32::try_from(cols).map_err(|_| Corrupt)?, rows: rows as u32, bytes };
        let mut read = Cursor { v2_times: true, ..old.cursor() };
        let (mut new, mut write) = (Chunk::new(cols), Chunk::new(cols).cursor());
        let mut values = Vec::with_capacity(cols);
        for _ in 0..rows {
            old.step(&mut read)?;
            values.clear();
            for cell in &read.cells {
                values.push(old.scalar(cell)?);
            }
            new.push_at(&mut write, read.at.time(), read.received.time(), &values)?;
        }
        if read.pos != old.bytes.len() {
            return Err(Corrupt);
        }
        new.seal();
        Ok(new)
    }

    pub fn rows(&self) -> usize {
        self.rows as usize
    }

    pub fn cols(&self) -> usize {
        self.cols as usize
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives back the slack of a block that will not grow any more.
    pub fn seal(&mut self) {
        self.bytes.shrink_to_fit();
    }

    fn cursor(&self) -> Cursor {
        Cursor {
            pos: 0,
            at: Clock::default(),
            received: Clock::default(),
            cells: vec![Cell::default(); self.cols()],
            v2_times: false,
            row: Vec::new(),
        }
    }

    /// Appends a row. `values` has one entry per column.
    pub fn push(&mut self, at: f64, received: f64, values: &[Scalar]) -> Result<(), Corrupt> {
        let mut cursor = self.cursor();
        for _ in 0..self.rows {
            self.step(&mut cursor)?;
        }
        self.push_at(&mut cursor, at, received, values)
    }

    /// Appends rows in one pass, each `(at, received, values)`.
    pub fn extend<'a>(&mut self, rows: impl IntoIterator<Item = (f64, f64, Vec<Scalar<'a>>)>) -> Result<(), Corrupt> {
        let mut cursor = self.cursor();
        for _ in 0..self.rows {
            self.step(&mut cursor)?;
        }
        for (at, received, values) in rows {
            self.push_at(&mut cursor, at, received, &values)?;
        }
        self.seal();
        Ok(())
    }

    /// The same rows without the oldest `n`, then `row` if there is one
    /// (`(at, received, values)`), encoded again: the new first row becomes
    /// the key frame. The result is one allocation of exactly its size,
    /// made once: a full history does this on every sample, and growing it
    /// row by row would leave the heap strewn with the sizes in between.
    pub fn rewritten(&self, n: usize, row: Option<(f64, f64, &[Scalar])>) -> Result<Chunk, Corrupt> {
        let mut out = self.encoded_without(n, row)?;
        out.bytes = out.bytes.as_slice().to_vec();
        Ok(out)
    }

    /// [`Chunk::rewritten`] in place: the bytes go into the buffer this
    /// block already has, which grows (to exactly their size) only when
    /// they do not fit. A full history does this on every sample; its
    /// block then keeps its place in the heap for as long as it lives.
    pub fn shift(&mut self, n: usize, row: Option<(f64, f64, &[Scalar])>) -> Result<(), Corrupt> {
        let out = self.encoded_without(n, row)?;
        if out.bytes.len() > self.bytes.capacity() {
            self.bytes = out.bytes.as_slice().to_vec();
        } else {
            self.bytes.clear();
            self.bytes.extend_from_slice(&out.bytes);
        }
        self.rows = out.rows;
        Ok(())
    }

    /// The rows after the oldest `n`, then `row`, in a buffer with room to
    /// spare (to be copied into one of the right size).
    fn encoded_without(&self, n: usize, row: Option<(f64, f64, &[Scalar])>) -> Result<Chunk, Corrupt> {
        let mut out = Chunk { bytes: Vec::with_capacity(self.bytes.len() + 64), ..Chunk::new(self.cols()) };
        let mut cursor = out.cursor();
        let (mut index, mut pushed) = (0, Ok(()));
        self.decode(|at, received, values| {
            if index >= n && pushed.is_ok() {
                pushed = out.push_at(&mut cursor, at, received, values);
            }
            index += 1;
        })?;
        pushed?;
        if let Some((at, received, values)) = row {
            out.push_at(&mut cursor, at, received, values)?;
        }
        Ok(out)
    }

    /// Appends a row, `cursor` standing after the last one.
    fn push_at(&mut self, cursor: &mut Cursor, at: f64, received: f64, values: &[Scalar]) -> Result<(), Corrupt> {
        if values.len() != self.cols() {
            return Err(Corrupt);
        }
        let first = self.rows == 0;
        let mut row = std::mem::take(&mut cursor.row);
        row.clear();
        put_time(&mut row, &mut cursor.at, at, first);
        put_time(&mut row, &mut cursor.received, received, first);
        let bitmap_at = row.len();
        row.resize(bitmap_at + self.cols().div_ceil(8), 0);
        for (i, (value, cell)) in values.iter().zip(cursor.cells.iter_mut()).enumerate() {
            let (mode, m) = match *value {
                Scalar::Num(n) => {
                    let n = n.at_digits_of(cell.mode).unwrap_or(n);
                    (n.mode, n.m)
                }
                Scalar::Str(_) => (STR, 0),
                Scalar::Bool(true) => (TRUE, 0),
                Scalar::Bool(false) => (FALSE, 0),
                Scalar::Null => (NULL, 0),
            };
            let same = !first
                && cell.mode == mode
                && match value {
                    Scalar::Str(s) => self.bytes.get(cell.text.0..cell.text.0 + cell.text.1) == Some(s.as_bytes()),
                    _ => cell.m == m,
                };
            if same {
                continue;
            }
            row[bitmap_at + i / 8] |= 1 << (i % 8);
            if !first && cell.mode == mode && mode <= RAW {
                put_varint(&mut row, u128::from(zigzag(m.wrapping_sub(cell.m))) << 1);
                cell.m = m;
                continue;
            }
            put_varint(&mut row, 1);
            row.push(mode);
            *cell = Cell { mode, m, text: (0, 0) };
            match value {
                Scalar::Num(_) => put_number(&mut row, mode, m),
                Scalar::Str(s) => {
                    put_varint(&mut row, s.len() as u128);
                    cell.text = (self.bytes.len() + row.len(), s.len());
                    row.extend_from_slice(s.as_bytes());
                }
                _ => {}
            }
        }
        // Exact growth: most blocks are small and many; doubling would waste
        // a third. (A buffer made with room to spare keeps it.)
        self.bytes.reserve_exact(row.len());
        self.bytes.extend_from_slice(&row);
        cursor.row = row;
        self.rows += 1;
        cursor.pos = self.bytes.len();
        Ok(())
    }

    /// Calls `each` with every row, oldest first.
    pub fn decode(&self, mut each: impl FnMut(f64, f64, &[Scalar])) -> Result<(), Corrupt> {
        let mut cursor = self.cursor();
        let mut values = Vec::with_capacity(self.cols());
        for _ in 0..self.rows {
            self.step(&mut cursor)?;
            values.clear();
            for cell in &cursor.cells {
                values.push(self.scalar(cell)?);
            }
            each(cursor.at.time(), cursor.received.time(), &values);
        }
        Ok(())
    }

    fn scalar(&self, cell: &Cell) -> Result<Scalar<'_>, Corrupt> {
        Ok(match cell.mode {
            STR => {
                let bytes = self.bytes.get(cell.text.0..cell.text.0 + cell.text.1).ok_or(Corrupt)?;
                Scalar::Str(std::str::from_utf8(bytes).map_err(|_| Corrupt)?)
            }
            TRUE => Scalar::Bool(true),
            FALSE => Scalar::Bool(false),
            NULL => Scalar::Null,
            mode => Scalar::Num(Num { mode, m: cell.m }),
        })
    }

    /// Reads one row into `cursor`.
    fn step(&self, cursor: &mut Cursor) -> Result<(), Corrupt> {
        let first = cursor.pos == 0;
        let bytes = &self.bytes;
        if cursor.v2_times {
            get_v2_time(bytes, &mut cursor.pos, &mut cursor.at, first)?;
            get_v2_time(bytes, &mut cursor.pos, &mut cursor.received, first)?;
        } else {
            get_time(bytes, &mut cursor.pos, &mut cursor.at, first)?;
            get_time(bytes, &mut cursor.pos, &mut cursor.received, first)?;
        }
        let bitmap_at = cursor.pos;
        cursor.pos += self.cols().div_ceil(8);
        if cursor.pos > bytes.len() {
            return Err(Corrupt);
        }
        for i in 0..self.cols() {
            if bytes[bitmap_at + i / 8] & (1 << (i % 8)) == 0 {
                continue;
            }
            let cell = &mut cursor.cells[i];
            let token = get_varint(bytes, &mut cursor.pos)?;
            if token & 1 == 0 {
                if first || cell.mode > RAW {
                    return Err(Corrupt);
                }
                let delta = unzigzag(u64::try_from(token >> 1).map_err(|_| Corrupt)?);
                cell.m = cell.m.wrapping_add(delta);
                continue;
            }
            if token != 1 {
                return Err(Corrupt);
            }
            let mode = *bytes.get(cursor.pos).ok_or(Corrupt)?;
            cursor.pos += 1;
            *cell = Cell { mode, m: 0, text: (0, 0) };
            match mode {
                INT..=RAW => cell.m = get_number(bytes, &mut cursor.pos, mode)?,
                STR => {
                    let len = usize::try_from(get_varint(bytes, &mut cursor.pos)?).map_err(|_| Corrupt)?;
                    if len > bytes.len() - cursor.pos {
                        return Err(Corrupt);
                    }
                    cell.text = (cursor.pos, len);
                    cursor.pos += len;
                }
                TRUE | FALSE | NULL => {}
                _ => return Err(Corrupt),
            }
        }
        Ok(())
    }
}

/// A number's integer form after its mode byte: 8 raw bytes for the modes
/// whose forms are bit patterns, else zigzag LEB128.
fn put_number(out: &mut Vec<u8>, mode: u8, m: i64) {
    if mode == BIG || mode == RAW {
        out.extend_from_slice(&m.to_le_bytes());
    } else {
        put_varint(out, u128::from(zigzag(m)));
    }
}

fn get_number(bytes: &[u8], pos: &mut usize, mode: u8) -> Result<i64, Corrupt> {
    if mode == BIG || mode == RAW {
        let raw = bytes.get(*pos..*pos + 8).ok_or(Corrupt)?;
        *pos += 8;
        Ok(i64::from_le_bytes(raw.try_into().map_err(|_| Corrupt)?))
    } else {
        Ok(unzigzag(u64::try_from(get_varint(bytes, pos)?).map_err(|_| Corrupt)?))
    }
}

fn put_time(out: &mut Vec<u8>, clock: &mut Clock, t: f64, first: bool) {
    let n = Num::from_f64(t);
    let n = if first { n } else { n.at_digits_of(clock.mode).unwrap_or(n) };
    if !first && n.mode == clock.mode {
        let delta = n.m.wrapping_sub(clock.m);
        put_varint(out, u128::from(zigzag(delta.wrapping_sub(clock.delta))) << 1);
        *clock = Clock { mode: n.mode, m: n.m, delta };
    } else {
        put_varint(out, 1);
        out.push(n.mode);
        put_number(out, n.mode, n.m);
        *clock = Clock { mode: n.mode, m: n.m, delta: 0 };
    }
}

fn get_time(bytes: &[u8], pos: &mut usize, clock: &mut Clock, first: bool) -> Result<(), Corrupt> {
    let token = get_varint(bytes, pos)?;
    if token & 1 == 0 {
        if first {
            return Err(Corrupt);
        }
        let dod = unzigzag(u64::try_from(token >> 1).map_err(|_| Corrupt)?);
        let delta = clock.delta.wrapping_add(dod);
        *clock = Clock { mode: clock.mode, m: clock.m.wrapping_add(delta), delta };
        return Ok(());
    }
    if token != 1 {
        return Err(Corrupt);
    }
    let mode = *bytes.get(*pos).ok_or(Corrupt)?;
    *pos += 1;
    if mode > RAW || mode == BIG {
        return Err(Corrupt);
    }
    *clock = Clock { mode, m: get_number(bytes, pos, mode)?, delta: 0 };
    Ok(())
}

/// A time of a version-2 block: the delta-of-delta of its f64 bits.
fn get_v2_time(bytes: &[u8], pos: &mut usize, clock: &mut Clock, first: bool) -> Result<(), Corrupt> {
    let v = unzigzag(u64::try_from(get_varint(bytes, pos)?).map_err(|_| Corrupt)?);
    let (m, delta) = if first {
        (v, 0)
    } else {
        let delta = clock.delta.wrapping_add(v);
        (clock.m.wrapping_add(delta), delta)
    };
    *clock = Clock { mode: RAW, m, delta };
    Ok(())
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// LEB128: seven bits a byte, low bits first.
pub fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u128, Corrupt> {
    let mut v: u128 = 0;
    for shift in (0..128).step_by(7) {
        let byte = *bytes.get(*pos).ok_or(Corrupt)?;
        *pos += 1;
        v |= u128::from(byte & 0x7f).checked_shl(shift).ok_or(Corrupt)?;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Corrupt)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn num(text: &str) -> Scalar<'static> {
        let n: Number = serde_json::from_str(text).unwrap();
        Scalar::Num(Num::from_json(&n))
    }

    fn back(s: &Scalar) -> String {
        match s {
            Scalar::Num(n) => n.to_json().map_or("null?".into(), |n| n.to_string()),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".into(),
        }
    }

    fn rows_of(chunk: &Chunk) -> Vec<(f64, f64, Vec<String>)> {
        let mut out = Vec::new();
        chunk.decode(|at, rec, values| out.push((at, rec, values.iter().map(back).collect()))).unwrap();
        out
    }

    #[test]
    fn numbers_come_back_as_the_same_json_numbers() {
        let cases = [
            "0",
            "12",
            "-7",
            "12.0",
            "0.0",
            "-0.0",
            "71.35",
            "1e300",
            "5e-324",
            "1.7976931348623157e308",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "9007199254740993",
            "0.1",
            "123456.789012345",
            "1711234567.1234567",
            "3.141592653589793",
            "100000000000000000000",
        ];
        let mut chunk = Chunk::new(1);
        for (i, text) in cases.iter().enumerate() {
            chunk.push(i as f64, i as f64, &[num(text)]).unwrap();
        }
        let rows = rows_of(&chunk);
        for (text, (_, _, values)) in cases.iter().zip(&rows) {
            let expected: Number = serde_json::from_str(text).unwrap();
            assert_eq!(values[0], expected.to_string(), "{text}");
        }
    }

    #[test]
    fn unchanged_values_cost_a_bit_and_small_moves_a_byte() {
        let mut chunk = Chunk::new(16);
        let row: Vec<Scalar> = (0..16).map(|i| num(&format!("{}.5", 1000 + i))).collect();
        chunk.push(1100.0, 1100.0, &row).unwrap();
        let first = chunk.bytes().len();
        chunk.push(1160.0, 1160.0, &row).unwrap();
        assert!(chunk.bytes().len() - first <= 2 * 9 + 2, "the first interval and an empty bitmap");
        let second = chunk.bytes().len();
        chunk.push(1220.0, 1220.0, &row).unwrap();
        assert_eq!(chunk.bytes().len() - second, 1 + 1 + 2, "the same interval and an empty bitmap");
        let mut moved = row.clone();
        moved[3] = num("1003.7");
        let before = chunk.bytes().len();
        chunk.push(1280.0, 1280.0, &moved).unwrap();
        assert_eq!(chunk.bytes().len() - before, 2 + 2 + 1, "regular times, bitmap, one small delta");
    }

    #[test]
    fn a_column_keeps_its_decimals_and_millisecond_times_cost_a_byte_or_two() {
        let mut chunk = Chunk::new(1);
        let t0 = 1_795_993_245.852;
        let values = ["71.35", "71.4", "71.45", "71.5", "71", "71.0"];
        let mut sizes = Vec::new();
        for (i, text) in values.iter().enumerate() {
            // hbc's times: milliseconds, 60 s apart with jitter.
            let at = ((t0 + 60.0 * i as f64 + [0.0, 0.031, -0.02, 0.049, 0.0, 0.012][i]) * 1000.0).round() / 1000.0;
            let received = ((at + 0.004) * 1000.0).round() / 1000.0;
            let before = chunk.bytes().len();
            chunk.push(at, received, &[num(text)]).unwrap();
            sizes.push(chunk.bytes().len() - before);
        }
        let back = rows_of(&chunk);
        let texts: Vec<&str> = back.iter().map(|r| r.2[0].as_str()).collect();
        assert_eq!(texts, values);
        // After the first interval: two times of at most 2 bytes, the bitmap,
        // a delta of at most 2 bytes (71.4 and 71.5 are 7140 and 7150 at two
        // digits: no escape; 71 is an integer, and 71.0 a float again: escapes).
        assert!(sizes[2] <= 2 + 2 + 1 + 2 && sizes[3] <= 2 + 2 + 1 + 2, "{sizes:?}");
        assert!(back
            .iter()
            .enumerate()
            .all(|(i, r)| (r.1 - r.0 - 0.004).abs() < 1e-6 && (r.0 - t0 - 60.0 * i as f64).abs() < 0.06));
    }

    #[test]
    fn damaged_version_2_blocks_are_an_error_not_a_panic() {
        let mut rng = XorShift(11);
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            let _ = Chunk::from_v2_parts(1 + rng.below(4) as usize, rng.below(5) as usize, bytes);
        }
    }

    #[test]
    fn strings_and_kinds_may_change_between_rows() {
        let mut chunk = Chunk::new(2);
        let rows: Vec<[Scalar; 2]> = vec![
            [Scalar::Str("OK"), num("1")],
            [Scalar::Str("OK"), Scalar::Str("NaN")],
            [Scalar::Str("WARNING - disk 91%"), num("1.5")],
            [Scalar::Bool(true), Scalar::Null],
            [Scalar::Str(""), num("-1")],
            [Scalar::Str("ünïcødé ✓"), num("1e-7")],
        ];
        for (i, row) in rows.iter().enumerate() {
            chunk.push(i as f64, 2.0 * i as f64, row).unwrap();
        }
        let back = rows_of(&chunk);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(back[i].2, row.iter().map(super::tests::back).collect::<Vec<_>>());
            assert_eq!((back[i].0, back[i].1), (i as f64, 2.0 * i as f64));
        }
    }

    #[test]
    fn dropping_the_oldest_rows_keeps_the_rest() {
        let mut chunk = Chunk::new(2);
        for i in 0..10 {
            chunk
                .push(
                    f64::from(i),
                    1.5 * f64::from(i),
                    &[num(&format!("{}.25", i * i)), Scalar::Str(["a", "b"][i as usize % 3 / 2])],
                )
                .unwrap();
        }
        let all = rows_of(&chunk);
        for n in 0..=10 {
            let rest = chunk.rewritten(n, None).unwrap();
            assert_eq!(rows_of(&rest), all[n..], "without {n}");
            let row = [num("1"), Scalar::Str("b")];
            let mut grown = rest.clone();
            grown.push(99.0, 99.0, &row).unwrap();
            assert_eq!(rows_of(&grown).len(), 11 - n);
            let shifted = chunk.rewritten(n, Some((99.0, 99.0, &row))).unwrap();
            assert_eq!(shifted, grown, "dropping and appending in one pass encodes as the two steps do");
            assert_eq!(shifted.bytes.capacity(), shifted.bytes.len(), "one allocation of exactly its size");
            let mut in_place = chunk.clone();
            in_place.shift(n, Some((99.0, 99.0, &row))).unwrap();
            assert_eq!(in_place, grown);
            let fits = grown.bytes.len() <= chunk.bytes.capacity();
            let expected = if fits { chunk.bytes.capacity() } else { grown.bytes.len() };
            assert_eq!(in_place.bytes.capacity(), expected, "the same buffer when it fits, else one exact");
        }
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let mut chunk = Chunk::new(3);
        for i in 0..5 {
            chunk.push(i as f64, i as f64, &[num(&i.to_string()), Scalar::Str("x"), num("2.5")]).unwrap();
        }
        let bytes = chunk.bytes().to_vec();
        assert!(Chunk::from_parts(3, 5, bytes.clone()).is_ok());
        for cut in 0..bytes.len() {
            assert!(Chunk::from_parts(3, 5, bytes[..cut].to_vec()).is_err());
        }
        let mut rng = XorShift(7);
        for _ in 0..2000 {
            let mut b = bytes.clone();
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next() as u8;
            let _ = Chunk::from_parts(3, 5, b); // must not panic
        }
    }

    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Random series of every kind of value, pushed and read back.
    #[test]
    fn random_series_round_trip() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let words = ["OK", "CRITICAL", "NaN", "Infinity", "-0", "", "1e999"];
        for round in 0..300 {
            let cols = 1 + rng.below(12) as usize;
            let rows = 1 + rng.below(40) as usize;
            let mut texts: Vec<Vec<String>> = Vec::new();
            let mut chunk = Chunk::new(cols);
            let mut times = Vec::new();
            let mut t = rng.next() as f64 / 1e9;
            let mut previous: Vec<String> = vec!["0".into(); cols];
            for _ in 0..rows {
                t += (rng.below(100_000) as f64) / 1000.0;
                let received = if rng.below(10) == 0 { f64::from_bits(rng.next()) } else { t + 0.25 };
                let row: Vec<String> = (0..cols)
                    .map(|c| match rng.below(12) {
                        0 => previous[c].clone(),
                        1 => words[rng.below(words.len() as u64) as usize].to_string(),
                        2 => ["true", "false", "null"][rng.below(3) as usize].to_string(),
                        3 => (rng.next() as i64).to_string(),
                        4 => rng.next().to_string(),
                        5 => {
                            let f = f64::from_bits(rng.next());
                            if f.is_finite() {
                                format!("{f:?}")
                            } else {
                                "1.5".into()
                            }
                        }
                        6 => format!("{}.{:02}", rng.below(1000), rng.below(100)),
                        7 => format!("{:e}", (rng.below(1 << 53) as f64) * 1e-200),
                        8 => format!("{:.1}", (rng.below(2000) as f64) - 1000.0),
                        _ => previous[c].clone(),
                    })
                    .collect();
                previous = row.clone();
                texts.push(row);
                times.push((t, received));
            }
            for (row, (at, received)) in texts.iter().zip(&times) {
                let values: Vec<Scalar> = row
                    .iter()
                    .map(|text| match serde_json::from_str::<serde_json::Value>(text) {
                        Ok(serde_json::Value::Number(n)) => Scalar::Num(Num::from_json(&n)),
                        Ok(serde_json::Value::Bool(b)) => Scalar::Bool(b),
                        Ok(serde_json::Value::Null) => Scalar::Null,
                        _ => Scalar::Str(text),
                    })
                    .collect();
                chunk.push(*at, *received, &values).unwrap();
            }
            let back = rows_of(&chunk);
            assert_eq!(back.len(), rows);
            for ((row, time), got) in texts.iter().zip(&times).zip(&back) {
                assert_eq!((got.0.to_bits(), got.1.to_bits()), (time.0.to_bits(), time.1.to_bits()), "round {round}");
                for (text, got) in row.iter().zip(&got.2) {
                    let expected = match serde_json::from_str::<serde_json::Value>(text) {
                        Ok(serde_json::Value::String(_)) | Err(_) => format!("{text:?}"),
                        Ok(v) => v.to_string(),
                    };
                    assert_eq!(got, &expected, "round {round}");
                }
            }
            let copy = Chunk::from_parts(cols, rows, chunk.bytes().to_vec()).unwrap();
            assert_eq!(copy, chunk);
        }
    }
}
