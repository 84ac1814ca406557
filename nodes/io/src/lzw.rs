//! TIFF LZW encoding (8-bit symbols, MSB-first codes, TIFF's early code-size switch).
//!
//! Hand-written because `weezl` — the crate the `tiff` crate uses, and the reference here — was
//! most of the time of an LZW save: its encoder walks a tree of per-code successor lists for every
//! input byte. This encoder makes the same decisions (greedy longest match, a Clear code when the
//! table passes 4096 entries, the same code-size bumps and end sequence), so its output is
//! byte-for-byte weezl's (tested below on varied data), but finds (prefix code, byte) → code in a
//! small open-addressing hash table, as libtiff does. Decoding stays with `weezl`.

const CLEAR: u32 = 256;
const END: u32 = 257;
const FIRST: u32 = 258;
/// Hash table slots: a power of two, at most half full (4096 codes).
const SLOTS: usize = 1 << 13;

/// A reusable encoder (its table is kept between strips).
pub struct LzwEncoder {
    /// (prefix code << 8 | byte) in the low 20 bits, the table generation above: entries of an
    /// older generation count as empty, so a Clear costs no memset.
    keys: Vec<u32>,
    codes: Vec<u16>,
    generation: u32,
    /// Successors added to each code since the last Clear (saturating), see `encode`.
    successors: Vec<u8>,
}

impl Default for LzwEncoder {
    fn default() -> Self {
        LzwEncoder { keys: vec![0; SLOTS], codes: vec![0; SLOTS], generation: 0, successors: vec![0; 4097] }
    }
}

/// MSB-first bit packing into whole bytes.
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits<'_> {
    #[inline(always)]
    fn put(&mut self, code: u32, size: u32) {
        self.acc |= (code as u64) << (64 - self.n - size);
        self.n += size;
        if self.n >= 32 {
            self.out.extend_from_slice(&((self.acc >> 32) as u32).to_be_bytes());
            self.acc <<= 32;
            self.n -= 32;
        }
    }

    fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_be_bytes()[..bytes]);
    }
}

impl LzwEncoder {
    #[inline(always)]
    fn slot(key: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> (32 - SLOTS.trailing_zeros())) as usize
    }

    fn clear(&mut self) {
        self.successors.fill(0);
        self.generation += 1;
        if self.generation == 1 << 12 {
            self.keys.fill(0);
            self.generation = 1;
        }
    }

    /// Appends the LZW encoding of `data` (Clear … End, padded to a byte) to `out`.
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.clear();
        out.reserve(data.len() / 2 + 16);
        let mut bits = Bits { out, acc: 0, n: 0 };
        let mut size = 9u32;
        // Next free code (weezl: the number of table entries).
        let mut next = FIRST;
        bits.put(CLEAR, size);
        let Some((&first, rest)) = data.split_first() else {
            bits.put(END, size);
            bits.finish();
            return;
        };
        let mut cur = first as u32;
        for &b in rest {
            let key = (cur << 8) | b as u32;
            let tagged = key | (self.generation << 20);
            let mut i = Self::slot(key);
            loop {
                let k = self.keys[i];
                if k == tagged {
                    cur = self.codes[i] as u32;
                    break;
                }
                if k >> 20 != self.generation {
                    // No entry for cur + b: emit cur, add the entry, start again from b.
                    // weezl keeps up to 16 successors of a code in a short list and then moves
                    // them to a full table, but never records the 17th (its code is still used
                    // up): do the same, so the bytes match. The stream stays valid LZW; the
                    // decoder's table simply has one entry the encoder never refers to.
                    let n = &mut self.successors[cur as usize];
                    *n = n.saturating_add(1);
                    if *n != 17 {
                        self.keys[i] = tagged;
                        self.codes[i] = next as u16;
                    }
                    next += 1;
                    bits.put(cur, size);
                    if next >= (1 << size) && size < 12 {
                        size += 1;
                    }
                    if next > 4096 {
                        bits.put(CLEAR, size);
                        self.clear();
                        next = FIRST;
                        size = 9;
                    }
                    cur = b as u32;
                    break;
                }
                i = (i + 1) & (SLOTS - 1);
            }
        }
        bits.put(cur, size);
        // The decoder adds one more entry on reading the last code, and may widen its codes.
        if next + 1 >= (1 << size) && size < 12 {
            size += 1;
        }
        bits.put(END, size);
        bits.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weezl(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .into_vec(&mut out)
            .encode_all(data)
            .status
            .unwrap();
        out
    }

    #[test]
    fn same_bytes_as_weezl_and_decodes_back() {
        let mut x = 0x2545F4914F6CDD1Du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![7], vec![1, 1], vec![1, 2, 1, 2, 1, 2, 1]];
        for n in [255, 256, 257, 511, 512, 513, 3000, 5000, 100_000, 300_000] {
            cases.push((0..n).map(|_| rnd() as u8).collect());
            cases.push((0..n).map(|_| (rnd() % 4) as u8).collect());
            cases.push(vec![0; n]);
            cases.push((0..n).map(|i| ((i as f64 / 40.0).sin() * 100.0) as u8 ^ (rnd() % 2) as u8).collect());
        }
        // 16-bit smooth image rows with noise, as the TIFF writer gives them (after differencing).
        let img: Vec<u16> = (0..200_000).map(|i| 1500 + ((i % 512) as u16) / 8 + (rnd() % 32) as u16).collect();
        cases.push(bytemuck::cast_slice(&img).to_vec());
        let mut enc = LzwEncoder::default();
        for (k, data) in cases.iter().enumerate() {
            let mut ours = Vec::new();
            enc.encode(data, &mut ours);
            assert_eq!(ours, weezl(data), "case {k} ({} bytes)", data.len());
            let mut back = Vec::new();
            weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                .into_vec(&mut back)
                .decode_all(&ours)
                .status
                .unwrap();
            assert_eq!(&back, data, "case {k}");
        }
    }
}
