//! A zlib encoder (RFC 1950 around RFC 1951) sized to the message, for the
//! datagrams hbc sends once a second.
//!
//! Why not flate2's encoder: miniz_oxide's state is 253 KiB of fixed
//! tables (the 32 KiB window, two 64 KiB hash tables, a 64 KiB token
//! buffer) whatever the input's size, and `reset` zero-fills all of it.
//! Kept between messages it was the largest thing in hbc's RSS; made anew
//! for each, it added 0.55 ms to a cycle of 0.82 (BENCHMARKS.md, "hbc at
//! 3947d17"). This one allocates 16 KiB of hash heads plus up to 8 bytes
//! per input byte, and writes the same kind of stream miniz_oxide's best level
//! does: LZ77 over a 32 KiB window with hash chains and lazy matching, then
//! one block, dynamic or fixed Huffman codes, whichever is shorter. Any
//! inflater reads it: hbd's (flate2) and the Python hbd's (zlib).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Farthest back a match may reach (the window the zlib header declares).
const WINDOW: usize = 32 * 1024;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
/// zlib's rule: a 3-byte match farther back than this costs more bits
/// than its three literals.
const FAR_FOR_SHORT_MATCH: usize = 4096;
/// Candidates tried per position: hbc's messages are a few KiB, so a long
/// chain costs little and finds the repeated member names.
const MAX_CHAIN: usize = 256;
/// A match this long is taken without looking one byte further for a
/// longer one.
const LAZY_BELOW: usize = 32;
const HASH_BITS: u32 = 12;
const NO_POSITION: u32 = u32::MAX;

/// Lengths 3..=258 as codes 257..=285: the first length of each code and
/// its extra bits (RFC 1951, 3.2.5).
const LENGTH_BASE: [u16; 29] =
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA: [u8; 29] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
/// Distances 1..=32768 as codes 0..=29.
const DISTANCE_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];
const DISTANCE_EXTRA: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/// The order in which a dynamic block's header lists the code-length
/// code's lengths (RFC 1951, 3.2.7).
const CODE_LENGTH_ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const END_OF_BLOCK: usize = 256;

/// `text` as one zlib stream. Positions are kept as `u32`: past 4 GiB the
/// stream stays correct but finds no more matches (hbc's are a few KiB).
pub fn zlib(text: &[u8]) -> Vec<u8> {
    let tokens = lz77(text);
    let mut bits = BitWriter { out: Vec::with_capacity(text.len() / 2 + 64), pending: 0, count: 0 };
    // CMF: deflate with a 32 KiB window; FLG: "maximum compression", no
    // dictionary, and the check bits that make CMF·256 + FLG a multiple of 31.
    bits.out.extend_from_slice(&[0x78, 0xDA]);
    write_block(&mut bits, &tokens);
    let mut out = bits.finish();
    out.extend_from_slice(&adler32(text).to_be_bytes());
    out
}

/// A literal byte, or a match packed as `MATCH | (length - 3) << 16 | distance`.
type Token = u32;
const MATCH: Token = 1 << 31;

fn match_token(length: usize, distance: usize) -> Token {
    MATCH | ((length - MIN_MATCH) as u32) << 16 | distance as u32
}

/// Hash chains over the positions seen so far: `head` the latest position
/// of each 3-byte hash, `previous` the one before it with the same hash.
struct Matcher<'a> {
    text: &'a [u8],
    head: Vec<u32>,
    previous: Vec<u32>,
}

impl Matcher<'_> {
    fn hash(&self, at: usize) -> usize {
        let t = self.text;
        let three = u32::from(t[at]) | u32::from(t[at + 1]) << 8 | u32::from(t[at + 2]) << 16;
        (three.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
    }

    fn insert(&mut self, at: usize) {
        if at + MIN_MATCH <= self.text.len() {
            let hash = self.hash(at);
            self.previous[at] = self.head[hash];
            self.head[hash] = at as u32;
        }
    }

    /// The longest earlier match for the bytes at `at` as (length,
    /// distance), or None.
    fn longest(&self, at: usize) -> Option<(usize, usize)> {
        if at + MIN_MATCH > self.text.len() {
            return None;
        }
        let here = &self.text[at..];
        let most = here.len().min(MAX_MATCH);
        let mut best = (0, 0);
        let mut candidate = self.head[self.hash(at)];
        for _ in 0..MAX_CHAIN {
            if candidate == NO_POSITION || at - candidate as usize > WINDOW {
                break;
            }
            let there = &self.text[candidate as usize..];
            // Only a match that beats the best so far is worth comparing.
            if there[best.0] == here[best.0] {
                let length = here[..most].iter().zip(there).take_while(|(a, b)| a == b).count();
                if length > best.0 {
                    best = (length, at - candidate as usize);
                    if length == most {
                        break;
                    }
                }
            }
            candidate = self.previous[candidate as usize];
        }
        let (length, distance) = best;
        let worth = length > MIN_MATCH || (length == MIN_MATCH && distance <= FAR_FOR_SHORT_MATCH);
        worth.then_some(best)
    }
}

/// `text` as literals and back-references, greedy with one step of lazy
/// evaluation: a match is put off by a literal when the next position
/// starts a longer one.
fn lz77(text: &[u8]) -> Vec<Token> {
    let mut matcher =
        Matcher { text, head: vec![NO_POSITION; 1 << HASH_BITS], previous: vec![NO_POSITION; text.len()] };
    let mut tokens = Vec::with_capacity(text.len() / 3);
    let mut at = 0;
    while at < text.len() {
        let found = matcher.longest(at);
        matcher.insert(at);
        let Some((length, distance)) = found else {
            tokens.push(Token::from(text[at]));
            at += 1;
            continue;
        };
        if length < LAZY_BELOW && matcher.longest(at + 1).is_some_and(|(next, _)| next > length) {
            tokens.push(Token::from(text[at]));
            at += 1;
            continue;
        }
        tokens.push(match_token(length, distance));
        for skipped in at + 1..at + length {
            matcher.insert(skipped);
        }
        at += length;
    }
    tokens
}

/// The code of `value` in a table of first values (the last whose first
/// value is not above it).
fn code_of(bases: &[u16], value: usize) -> usize {
    bases.partition_point(|&base| usize::from(base) <= value) - 1
}

/// A symbol of one of the two alphabets and the extra bits after it.
#[derive(Clone, Copy)]
struct Coded {
    symbol: usize,
    extra: u32,
    extra_bits: u8,
}

/// A token as its literal/length symbol and, for a match, its distance's.
fn symbols(token: Token) -> (Coded, Option<Coded>) {
    if token & MATCH == 0 {
        return (Coded { symbol: token as usize, extra: 0, extra_bits: 0 }, None);
    }
    let length = ((token >> 16) & 0xFF) as usize + MIN_MATCH;
    let distance = (token & 0xFFFF) as usize;
    let lc = code_of(&LENGTH_BASE, length);
    let dc = code_of(&DISTANCE_BASE, distance);
    (
        Coded { symbol: 257 + lc, extra: (length - usize::from(LENGTH_BASE[lc])) as u32, extra_bits: LENGTH_EXTRA[lc] },
        Some(Coded {
            symbol: dc,
            extra: (distance - usize::from(DISTANCE_BASE[dc])) as u32,
            extra_bits: DISTANCE_EXTRA[dc],
        }),
    )
}

/// One final block with the tokens and the end-of-block code, in the
/// shorter of the two encodings: codes made for these tokens (whose
/// tables the block must carry) or the fixed codes.
fn write_block(bits: &mut BitWriter, tokens: &[Token]) {
    let mut literal_freq = [0u32; 286];
    let mut distance_freq = [0u32; 30];
    let mut extra_bits = 0u64;
    literal_freq[END_OF_BLOCK] = 1;
    for &token in tokens {
        let (literal, distance) = symbols(token);
        literal_freq[literal.symbol] += 1;
        extra_bits += u64::from(literal.extra_bits);
        if let Some(distance) = distance {
            distance_freq[distance.symbol] += 1;
            extra_bits += u64::from(distance.extra_bits);
        }
    }
    at_least_two_used(&mut literal_freq);
    at_least_two_used(&mut distance_freq);
    let literal_lengths = code_lengths(&literal_freq, 15);
    let distance_lengths = code_lengths(&distance_freq, 15);
    let header = DynamicHeader::new(&literal_lengths, &distance_lengths);

    let (fixed_literal, fixed_distance) = fixed_lengths();
    let cost = |literal: &[u8], distance: &[u8]| -> u64 {
        let sum = |freq: &[u32], lengths: &[u8]| -> u64 {
            freq.iter().zip(lengths).map(|(&f, &l)| u64::from(f) * u64::from(l)).sum()
        };
        sum(&literal_freq, literal) + sum(&distance_freq, distance) + extra_bits
    };
    let dynamic_cost = header.bits() + cost(&literal_lengths, &distance_lengths);
    let fixed_cost = cost(&fixed_literal, &fixed_distance);

    bits.put(1, 1); // BFINAL: the only block
    let (literal_lengths, distance_lengths) = if dynamic_cost < fixed_cost {
        bits.put(2, 2);
        header.write(bits);
        (literal_lengths, distance_lengths)
    } else {
        bits.put(1, 2);
        (fixed_literal, fixed_distance)
    };
    let literal_codes = canonical_codes(&literal_lengths);
    let distance_codes = canonical_codes(&distance_lengths);
    let put = |bits: &mut BitWriter, codes: &[u16], lengths: &[u8], coded: Coded| {
        bits.put(codes[coded.symbol].into(), lengths[coded.symbol]);
        bits.put(coded.extra, coded.extra_bits);
    };
    for &token in tokens {
        let (literal, distance) = symbols(token);
        put(bits, &literal_codes, &literal_lengths, literal);
        if let Some(distance) = distance {
            put(bits, &distance_codes, &distance_lengths, distance);
        }
    }
    bits.put(literal_codes[END_OF_BLOCK].into(), literal_lengths[END_OF_BLOCK]);
}

/// The fixed codes' lengths (RFC 1951, 3.2.6).
fn fixed_lengths() -> (Vec<u8>, Vec<u8>) {
    let literal = (0..288).map(|s| match s {
        0..=143 => 8,
        144..=255 => 9,
        256..=279 => 7,
        _ => 8,
    });
    (literal.collect(), vec![5; 30])
}

/// Makes sure a code has two symbols at least, as zlib's deflate does:
/// RFC 1951 describes a one-symbol code only for distances, and some
/// inflaters reject one elsewhere.
fn at_least_two_used(freq: &mut [u32]) {
    for symbol in 0..2 {
        if freq.iter().filter(|&&f| f > 0).count() >= 2 {
            break;
        }
        freq[symbol] = freq[symbol].max(1);
    }
}

/// Huffman code lengths for `freq`, none longer than `limit`. When the
/// optimal code is too deep (rare at a few KiB) the frequencies are
/// halved, which flattens the tree, until it fits: all ones give depth
/// log2(symbols), 9 for 286 symbols.
fn code_lengths(freq: &[u32], limit: u8) -> Vec<u8> {
    let mut freq = freq.to_vec();
    loop {
        let lengths = huffman_lengths(&freq);
        if lengths.iter().all(|&l| l <= limit) {
            return lengths;
        }
        for f in freq.iter_mut().filter(|f| **f > 0) {
            *f = f.div_ceil(2);
        }
    }
}

/// Unlimited Huffman code lengths: each symbol's depth in the tree built
/// by joining the two least frequent nodes. Unused symbols get 0.
fn huffman_lengths(freq: &[u32]) -> Vec<u8> {
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> =
        freq.iter().enumerate().filter(|(_, &f)| f > 0).map(|(symbol, &f)| Reverse((u64::from(f), symbol))).collect();
    // Nodes are the symbols, then the joins in order; each points to its parent.
    let mut parent = vec![usize::MAX; freq.len()];
    while queue.len() > 1 {
        let (Some(Reverse((fa, a))), Some(Reverse((fb, b)))) = (queue.pop(), queue.pop()) else { break };
        let join = parent.len();
        parent.push(usize::MAX);
        parent[a] = join;
        parent[b] = join;
        queue.push(Reverse((fa + fb, join)));
    }
    // A parent comes after its children, so one pass from the root down.
    let mut depth = vec![0u32; parent.len()];
    for node in (0..parent.len()).rev() {
        if parent[node] != usize::MAX {
            depth[node] = depth[parent[node]] + 1;
        }
    }
    depth[..freq.len()].iter().map(|&d| u8::try_from(d).unwrap_or(u8::MAX)).collect()
}

/// The canonical code of each symbol (RFC 1951, 3.2.2), bit-reversed,
/// since the stream packs bits from the least significant but Huffman
/// codes go most significant bit first.
fn canonical_codes(lengths: &[u8]) -> Vec<u16> {
    let mut count = [0u16; 16];
    for &l in lengths {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lengths
        .iter()
        .map(|&l| match l {
            0 => 0,
            _ => {
                let code = next[usize::from(l)];
                next[usize::from(l)] += 1;
                code.reverse_bits() >> (16 - l)
            }
        })
        .collect()
}

/// A dynamic block's header: how many codes of each alphabet it lists, and
/// their lengths run-length encoded with the code-length code.
struct DynamicHeader {
    literals: usize,
    distances: usize,
    /// (code-length symbol 0..=18, its repeat count's extra value).
    runs: Vec<(u8, u8)>,
    lengths: Vec<u8>,
    listed: usize,
}

impl DynamicHeader {
    fn new(literal_lengths: &[u8], distance_lengths: &[u8]) -> DynamicHeader {
        let used = |lengths: &[u8], least: usize| {
            lengths.iter().rposition(|&l| l > 0).map_or(least, |last| last + 1).max(least)
        };
        let literals = used(literal_lengths, 257);
        let distances = used(distance_lengths, 1);
        let all: Vec<u8> = literal_lengths[..literals].iter().chain(&distance_lengths[..distances]).copied().collect();
        let runs = run_lengths(&all);
        let mut freq = [0u32; 19];
        for &(symbol, _) in &runs {
            freq[usize::from(symbol)] += 1;
        }
        at_least_two_used(&mut freq);
        let lengths = code_lengths(&freq, 7);
        let listed = CODE_LENGTH_ORDER.iter().rposition(|&s| lengths[s] > 0).map_or(4, |last| last + 1).max(4);
        DynamicHeader { literals, distances, runs, lengths, listed }
    }

    fn bits(&self) -> u64 {
        let runs: u64 = self
            .runs
            .iter()
            .map(|&(symbol, _)| u64::from(self.lengths[usize::from(symbol)]) + repeat_bits(symbol))
            .sum();
        5 + 5 + 4 + 3 * self.listed as u64 + runs
    }

    fn write(&self, bits: &mut BitWriter) {
        bits.put((self.literals - 257) as u32, 5);
        bits.put((self.distances - 1) as u32, 5);
        bits.put((self.listed - 4) as u32, 4);
        for &symbol in &CODE_LENGTH_ORDER[..self.listed] {
            bits.put(self.lengths[symbol].into(), 3);
        }
        let codes = canonical_codes(&self.lengths);
        for &(symbol, repeat) in &self.runs {
            let s = usize::from(symbol);
            bits.put(codes[s].into(), self.lengths[s]);
            bits.put(repeat.into(), repeat_bits(symbol) as u8);
        }
    }
}

/// Extra bits after a code-length symbol: 16 repeats the previous length
/// 3–6 times, 17 writes 3–10 zeros, 18 writes 11–138.
fn repeat_bits(symbol: u8) -> u64 {
    match symbol {
        16 => 2,
        17 => 3,
        18 => 7,
        _ => 0,
    }
}

/// `lengths` in the code-length alphabet (RFC 1951, 3.2.7).
fn run_lengths(lengths: &[u8]) -> Vec<(u8, u8)> {
    let mut runs = Vec::new();
    let mut previous = None;
    let mut at = 0;
    while at < lengths.len() {
        let length = lengths[at];
        let run = lengths[at..].iter().take_while(|&&l| l == length).count();
        let taken = if length == 0 && run >= 11 {
            let n = run.min(138);
            runs.push((18, (n - 11) as u8));
            n
        } else if length == 0 && run >= 3 {
            let n = run.min(10);
            runs.push((17, (n - 3) as u8));
            n
        } else if previous == Some(length) && run >= 3 {
            let n = run.min(6);
            runs.push((16, (n - 3) as u8));
            n
        } else {
            runs.push((length, 0));
            1
        };
        previous = Some(length);
        at += taken;
    }
    runs
}

/// Packs bit fields into bytes from the least significant bit up.
struct BitWriter {
    out: Vec<u8>,
    pending: u64,
    count: u32,
}

impl BitWriter {
    /// `value`, which is below 2^`n`, in `n` (at most 16) bits.
    fn put(&mut self, value: u32, n: u8) {
        debug_assert!(n <= 16 && u64::from(value) < 1 << n);
        self.pending |= u64::from(value) << self.count;
        self.count += u32::from(n);
        while self.count >= 8 {
            self.out.push(self.pending as u8);
            self.pending >>= 8;
            self.count -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.out.push(self.pending as u8);
        }
        self.out
    }
}

/// RFC 1950's checksum of the uncompressed data.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // The most bytes summed before `b` could pass u32::MAX.
    const CHUNK: usize = 5552;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(CHUNK) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    b << 16 | a
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate(bytes: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut text).expect("a valid zlib stream");
        text
    }

    fn round_trip(text: &[u8]) -> usize {
        let zipped = zlib(text);
        assert_eq!(inflate(&zipped), text, "{} bytes", text.len());
        zipped.len()
    }

    /// Deterministic noise from a seed.
    fn xorshift(seed: u32) -> impl Iterator<Item = u32> {
        let mut x = seed.max(1);
        std::iter::repeat_with(move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
    }

    #[test]
    fn edge_cases_decode_to_their_text() {
        round_trip(b"");
        round_trip(b"x");
        round_trip(b"ab");
        round_trip(b"abc");
        round_trip(b"abcabc");
        // Literals only (no distance used), every byte value.
        round_trip(&(0..=255u8).collect::<Vec<_>>());
        // One symbol over and over: matches of the longest length, distance 1.
        assert!(round_trip(&[b'a'; 100_000]) < 1000);
        // Repeats farther apart than the window must not be referenced.
        let block: Vec<u8> = xorshift(7).take(40_000).map(|x| x as u8).collect();
        let twice = [block.as_slice(), block.as_slice()].concat();
        round_trip(&twice);
        // Noise: larger than the text, which callers then send as it is.
        round_trip(&xorshift(3).take(4096).map(|x| x as u8).collect::<Vec<_>>());
    }

    /// Texts from small alphabets and copied pieces, so that every length
    /// and distance code, both block kinds and every run-length symbol of
    /// the header turn up.
    fn generated_texts(count: usize) -> Vec<Vec<u8>> {
        let mut random = xorshift(0x5eed);
        let mut next = move || random.next().unwrap_or(1) as usize;
        (0..count)
            .map(|case| {
                let size = [next() % 64, next() % 2048, next() % 70_000][case % 3];
                let alphabet = 1 + next() % [2, 16, 256][case / 3 % 3];
                let mut text: Vec<u8> = Vec::with_capacity(size);
                while text.len() < size {
                    if text.len() > 8 && next() % 3 == 0 {
                        let from = next() % text.len();
                        let length = (1 + next() % 300).min(text.len() - from);
                        text.extend_from_within(from..from + length);
                    } else {
                        text.push((next() % alphabet) as u8);
                    }
                }
                text.truncate(size);
                text
            })
            .collect()
    }

    #[test]
    fn generated_texts_decode_to_their_text() {
        for text in generated_texts(300) {
            round_trip(&text);
        }
    }

    /// The Python hbd inflates with zlib itself, which checks more than
    /// flate2 does (e.g. that a code is complete).
    #[test]
    fn pythons_zlib_reads_the_streams() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let texts = generated_texts(60);
        let script = "import sys, zlib\n\
                      data = sys.stdin.buffer.read(); out = sys.stdout.buffer; at = 0\n\
                      while at < len(data):\n    \
                      n = int.from_bytes(data[at:at + 4], 'big'); at += 4\n    \
                      text = zlib.decompress(data[at:at + n]); at += n\n    \
                      out.write(len(text).to_bytes(4, 'big') + text)\n";
        let mut python = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (a test dependency) runs");
        let mut input = Vec::new();
        for text in &texts {
            let zipped = zlib(text);
            input.extend_from_slice(&(zipped.len() as u32).to_be_bytes());
            input.extend_from_slice(&zipped);
        }
        let mut stdin = python.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = python.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.status.success(), "python3: {}", String::from_utf8_lossy(&output.stderr));
        let mut expected = Vec::new();
        for text in &texts {
            expected.extend_from_slice(&(text.len() as u32).to_be_bytes());
            expected.extend_from_slice(text);
        }
        assert!(output.stdout == expected, "python3's zlib read other texts");
    }

    /// hbc's messages: about as short as miniz_oxide's best level makes them.
    #[test]
    fn a_message_compresses_about_as_well_as_flate2s_best_level() {
        let plugin = |name: &str, i: usize| {
            format!(
                "\"{name}\":{{\"at\":1796640451.{i:03},\"data\":{{\"cpu_percent\":{}.{},\"load_1min\":0.{i},\
                 \"read_bytes_per_s\":{}.0,\"used_gb\":196.52}},\"kind\":\"monitor\"}}",
                i * 7 % 100,
                i % 10,
                i * 12_345
            )
        };
        let plugins: Vec<String> = (0..12).map(|i| plugin(&format!("plugin_{i}"), i)).collect();
        let text = format!("{{\"ID\":\"HTB\",\"name\":\"vm\",\"plugins\":{{{}}}}}", plugins.join(","));
        let ours = round_trip(text.as_bytes());
        let mut theirs = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut theirs, text.as_bytes()).unwrap();
        let theirs = theirs.finish().unwrap().len();
        assert!(ours * 100 <= theirs * 105, "{ours} bytes against flate2's {theirs}");
    }

    #[test]
    fn adler32_matches_rfc_1950s_example() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        // Long enough for the per-chunk reduction to matter.
        let long = vec![0xFFu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &byte in &long {
            a = (a + u64::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler32(&long), (b << 16 | a) as u32);
    }

    #[test]
    fn codes_are_limited_to_their_longest_length() {
        // Fibonacci frequencies make the deepest unlimited Huffman tree.
        let mut freq = vec![1u32, 1];
        while freq.len() < 30 {
            freq.push(freq[freq.len() - 1] + freq[freq.len() - 2]);
        }
        assert!(huffman_lengths(&freq).iter().any(|&l| l > 15));
        let lengths = code_lengths(&freq, 15);
        assert!(lengths.iter().all(|&l| (1..=15).contains(&l)));
        // A complete prefix code: Kraft's sum is exactly one.
        assert_eq!(lengths.iter().map(|&l| 1u64 << (15 - l)).sum::<u64>(), 1 << 15);
    }
}
