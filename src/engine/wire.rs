//! The compact encoding of one step's spikes: sorted indices as delta-varints or as a
//! bitmap, whichever is smaller.
//!
//! ```text
//! delta:  0x01, varint step, varint count, varint first, varint (gap - 1)...
//! bitmap: 0x02, varint step, varint bits, ceil(bits / 8) bytes (bit i of byte i/8, LSB
//!         first, set when neuron i spiked; bits = last index + 1)
//! ```
//!
//! A message of a lookahead window holds its steps one after the other.
//!
//! Varints are LEB128 (7 bits a byte, low first). Sorted, distinct indices make every
//! gap at least 1, so `gap - 1` fits in one byte for gaps up to 128: at a firing rate of
//! 1% a spike costs about one byte, against four as raw `uint32`; where more than about
//! one neuron in eight fires, the bitmap's one bit per neuron is smaller.

const DELTA: u8 = 1;
const BITMAP: u8 = 2;

fn varint_len(mut x: u64) -> usize {
    let mut n = 1;
    while x >= 0x80 {
        x >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut x: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        x |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(x);
        }
    }
    None
}

/// Appends the encoding of `spikes` (sorted, distinct) at `step` to `out`.
pub fn encode(step: u64, spikes: &[u32], out: &mut Vec<u8>) {
    let delta_len: usize = match spikes.split_first() {
        None => 0,
        Some((&first, rest)) => {
            let mut prev = first;
            varint_len(u64::from(first))
                + rest
                    .iter()
                    .map(|&s| {
                        let gap = s - prev - 1;
                        prev = s;
                        varint_len(u64::from(gap))
                    })
                    .sum::<usize>()
        }
    };
    let delta_len = delta_len + varint_len(spikes.len() as u64);
    let bits = spikes.last().map_or(0, |&l| u64::from(l) + 1);
    let bitmap_len = varint_len(bits) + bits.div_ceil(8) as usize;
    if bitmap_len < delta_len {
        out.push(BITMAP);
        put_varint(out, step);
        put_varint(out, bits);
        let start = out.len();
        out.resize(start + bits.div_ceil(8) as usize, 0);
        for &s in spikes {
            out[start + (s / 8) as usize] |= 1 << (s % 8);
        }
    } else {
        out.push(DELTA);
        put_varint(out, step);
        put_varint(out, spikes.len() as u64);
        let mut prev: Option<u32> = None;
        for &s in spikes {
            let v = match prev {
                None => u64::from(s),
                Some(p) => u64::from(s - p - 1),
            };
            put_varint(out, v);
            prev = Some(s);
        }
    }
}

/// The step and the sorted, distinct spikes of a message of one step, or None if it is
/// malformed (truncated, trailing bytes, an index beyond `u32`).
pub fn decode(buf: &[u8]) -> Option<(u64, Vec<u32>)> {
    let mut pos = 0;
    let one = decode_at(buf, &mut pos)?;
    (pos == buf.len()).then_some(one)
}

/// Every step of a message that holds one or more encoded steps one after the other
/// (a lookahead window), or None if any of them is malformed.
pub fn decode_all(buf: &[u8]) -> Option<Vec<(u64, Vec<u32>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        out.push(decode_at(buf, &mut pos)?);
    }
    (!out.is_empty()).then_some(out)
}

/// Decodes the step that starts at `pos` and moves `pos` past it.
fn decode_at(buf: &[u8], pos: &mut usize) -> Option<(u64, Vec<u32>)> {
    let kind = *buf.get(*pos)?;
    *pos += 1;
    let step = get_varint(buf, pos)?;
    let mut spikes = Vec::new();
    match kind {
        DELTA => {
            let count = get_varint(buf, pos)?;
            // Each index takes at least one byte: a count beyond that is a lie.
            if count > (buf.len() - *pos) as u64 {
                return None;
            }
            spikes.reserve(count as usize);
            let mut next: u64 = 0;
            for _ in 0..count {
                let v = next.checked_add(get_varint(buf, pos)?)?;
                spikes.push(u32::try_from(v).ok()?);
                next = v + 1;
            }
        }
        BITMAP => {
            let bits = get_varint(buf, pos)?;
            let bytes = bits.div_ceil(8);
            if bits > u64::from(u32::MAX) + 1 || bytes > (buf.len() - *pos) as u64 {
                return None;
            }
            let map = &buf[*pos..*pos + bytes as usize];
            for (k, &byte) in map.iter().enumerate() {
                let mut b = byte;
                while b != 0 {
                    let i = k as u64 * 8 + u64::from(b.trailing_zeros());
                    if i >= bits {
                        return None;
                    }
                    spikes.push(i as u32);
                    b &= b - 1;
                }
            }
            *pos += bytes as usize;
        }
        _ => return None,
    }
    Some((step, spikes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::{Domain, Stream};

    fn round_trip(step: u64, spikes: &[u32]) -> usize {
        let mut buf = Vec::new();
        encode(step, spikes, &mut buf);
        assert_eq!(decode(&buf), Some((step, spikes.to_vec())), "{spikes:?}");
        buf.len()
    }

    #[test]
    fn every_shape_round_trips() {
        round_trip(0, &[]);
        round_trip(u64::MAX, &[0]);
        round_trip(5, &[u32::MAX]);
        round_trip(5, &[0, u32::MAX]);
        round_trip(7, &(0..1000).collect::<Vec<_>>());
        for (n, p) in [
            (1000u64, 0.05),
            (100_000, 0.0125),
            (100_000, 0.3),
            (64, 0.9),
        ] {
            let mut spikes = Vec::new();
            Stream::new(1, Domain::Drive, n, 0)
                .bernoulli_positions(n, p, |k| spikes.push(k as u32));
            round_trip(3, &spikes);
        }
    }

    #[test]
    fn the_smaller_form_is_chosen_and_beats_raw_u32() {
        // 1% of 100,000 neurons: gaps of about 100, one byte each.
        let sparse: Vec<u32> = (0..1000).map(|i| i * 100 + 7).collect();
        let len = round_trip(1, &sparse);
        assert!(len < 1100, "{len} bytes for 1000 spikes");
        let mut buf = Vec::new();
        encode(1, &sparse, &mut buf);
        assert_eq!(buf[0], DELTA);
        // Half of 1000 neurons: the bitmap (125 bytes) wins.
        let dense: Vec<u32> = (0..500).map(|i| i * 2).collect();
        let len = round_trip(1, &dense);
        assert!(len <= 130, "{len}");
        buf.clear();
        encode(1, &dense, &mut buf);
        assert_eq!(buf[0], BITMAP);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let mut buf = Vec::new();
        encode(9, &[1, 5, 9], &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), None, "cut at {cut}");
        }
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(decode(&long), None, "trailing byte");
        assert_eq!(decode(&[9, 0, 0]), None, "unknown kind");
        // A count far beyond the bytes that follow.
        assert_eq!(decode(&[DELTA, 0, 0xff, 0xff, 0x03, 0]), None);
        // An index beyond u32.
        let mut big = vec![DELTA, 0, 2];
        put_varint(&mut big, u64::from(u32::MAX));
        put_varint(&mut big, 0);
        assert_eq!(decode(&big), None);
        // A bitmap with a bit past its length.
        assert_eq!(decode(&[BITMAP, 0, 3, 0b1000]), None);
        // Several steps in one message: decode_all takes them, decode refuses.
        let mut two = Vec::new();
        encode(4, &[1, 2], &mut two);
        encode(5, &(0..64).collect::<Vec<_>>(), &mut two);
        assert_eq!(decode(&two), None);
        let all = decode_all(&two).unwrap();
        assert_eq!(all[0], (4, vec![1, 2]));
        assert_eq!(all[1].0, 5);
        assert_eq!(decode_all(&two[..two.len() - 1]), None);
        assert_eq!(decode_all(&[]), None);
        // A varint that never ends.
        assert_eq!(
            decode(&[DELTA, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            None
        );
    }
}
