//! The two forms of a step's spikes: a bool mask (one entry per neuron) and the sorted
//! `u32` indices of the neurons that spiked (the compact form sent over the wire).

use super::error::KernelError;
use super::population::BLOCK;

/// Neurons examined together by [`write_indices`].
const GROUP: usize = 64;

/// `POSITIONS[m]` lists the set bits of the byte `m` in increasing order (the rest of
/// the row is padding).
const POSITIONS: [[u32; 8]; 256] = positions();

const fn positions() -> [[u32; 8]; 256] {
    let mut table = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut bit, mut k) = (0, 0);
        while bit < 8 {
            if (m >> bit) & 1 == 1 {
                table[m][k] = bit as u32;
                k += 1;
            }
            bit += 1;
        }
        m += 1;
    }
    table
}

/// Writes `base + k` for every `k` with `mask[k]` set, in increasing order, to the
/// front of `out`, and returns how many it wrote. `out` must have room for one index
/// per neuron of `mask`.
///
/// Groups of 64 neurons without a spike, the common case at biological rates, are
/// skipped after one OR over the group. The other groups are compacted eight neurons
/// at a time without a branch: the eight bools (bytes of 0 or 1) are gathered into the
/// bits of one byte by a multiplication, a table gives that byte's set positions, all
/// eight candidates are written, and the write position advances by the number of
/// spikes. A branch per spike would be mispredicted at the rates where most groups
/// spike, and a per-neuron write position is a serial dependency; both made this
/// several times slower.
pub(crate) fn write_indices(mask: &[bool], base: usize, out: &mut [u32]) -> usize {
    // Multiplying a word of 0/1 bytes by GATHER moves byte i's bit to bit 56 + i, with
    // no carries (all partial products land on distinct bits); by COUNT, the top byte
    // becomes the sum of the bytes.
    const GATHER: u64 = 0x0102_0408_1020_4080;
    const COUNT: u64 = 0x0101_0101_0101_0101;
    assert!(out.len() >= mask.len(), "room for one index per neuron");
    let mut chunks = mask.chunks_exact(GROUP);
    let mut k = 0;
    let mut at = 0;
    for chunk in chunks.by_ref() {
        if chunk.iter().fold(false, |any, &s| any | s) {
            for (w, bytes) in chunk.chunks_exact(8).enumerate() {
                let word = u64::from_le_bytes(std::array::from_fn(|j| u8::from(bytes[j])));
                let bits = (word.wrapping_mul(GATHER) >> 56) as usize;
                let first = at + 8 * w;
                let start = (base + first) as u32;
                // k <= first: the eight candidate writes end within this word's
                // neurons, inside `out`.
                for (dst, &p) in out[k..k + 8].iter_mut().zip(&POSITIONS[bits]) {
                    *dst = start + p;
                }
                k += (word.wrapping_mul(COUNT) >> 56) as usize;
            }
        }
        at += GROUP;
    }
    for (j, &s) in chunks.remainder().iter().enumerate() {
        out[k] = (base + at + j) as u32;
        k += usize::from(s);
    }
    k
}

/// The sorted indices of the set entries of `mask`.
pub fn mask_to_indices(mask: &[bool]) -> Result<Vec<u32>, KernelError> {
    if mask.len() > u32::MAX as usize + 1 {
        return Err(KernelError::TooManyNeurons { len: mask.len() });
    }
    let mut out = Vec::new();
    extend_indices(mask, 0, &mut out);
    Ok(out)
}

/// Appends the indices of `mask`'s set entries, plus `base`, to `out`.
///
/// Through a block-sized stack buffer rather than a population-sized one: a fresh
/// buffer as large as the population would have to be zeroed or page-faulted in on
/// every call, which cost more than the compaction itself.
pub(crate) fn extend_indices(mask: &[bool], base: usize, out: &mut Vec<u32>) {
    let mut found = [0u32; BLOCK];
    for (j, block) in mask.chunks(BLOCK).enumerate() {
        let k = write_indices(block, base + j * BLOCK, &mut found);
        out.extend_from_slice(&found[..k]);
    }
}

/// Checks that every entry of `indices` (the argument named `arg`) is below `bound`.
pub(crate) fn check_indices(
    arg: &'static str,
    indices: &[u32],
    bound: usize,
) -> Result<(), KernelError> {
    // A max reduction vectorizes; the position is looked up only on failure.
    let max = indices.iter().copied().max().unwrap_or(0);
    if indices.is_empty() || (max as usize) < bound {
        return Ok(());
    }
    let position = indices
        .iter()
        .position(|&i| i as usize >= bound)
        .unwrap_or_default();
    Err(KernelError::IndexOutOfRange {
        arg,
        position,
        value: i64::from(indices[position]),
        bound,
    })
}

/// Writes the mask of `indices` into `mask`: set at every listed index, clear elsewhere.
/// Indices may come in any order and repeat. Fails, leaving `mask` untouched, if an
/// index is not below `mask.len()`.
pub fn indices_to_mask(indices: &[u32], mask: &mut [bool]) -> Result<(), KernelError> {
    check_indices("indices", indices, mask.len())?;
    mask.fill(false);
    for &i in indices {
        mask[i as usize] = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(mask: &[bool]) -> Vec<u32> {
        (0..mask.len() as u32)
            .filter(|&i| mask[i as usize])
            .collect()
    }

    #[test]
    fn mask_to_indices_matches_naive_scan() {
        // A deterministic pseudo-random pattern with runs, isolated spikes and a tail
        // that is not a multiple of eight.
        let mut x: u32 = 12345;
        for n in [0usize, 1, 7, 8, 63, 64, 65, 127, 128, 129, 1000, 4099] {
            let mask: Vec<bool> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) % 3 == 0
                })
                .collect();
            assert_eq!(mask_to_indices(&mask).unwrap(), naive(&mask), "n={n}");
        }
        assert_eq!(
            mask_to_indices(&[true; 19]).unwrap(),
            (0..19).collect::<Vec<_>>()
        );
        assert!(mask_to_indices(&[false; 19]).unwrap().is_empty());
    }

    #[test]
    fn every_byte_pattern_is_compacted() {
        // Each of the 256 patterns of eight neurons, at each of the eight positions of a
        // group, next to a full and an empty word.
        for m in 0..256u32 {
            for slot in 0..8 {
                let mut mask = vec![false; 64];
                for bit in 0..8 {
                    mask[slot * 8 + bit] = (m >> bit) & 1 == 1;
                }
                if slot > 0 {
                    mask[(slot - 1) * 8..slot * 8].fill(true);
                }
                assert_eq!(
                    mask_to_indices(&mask).unwrap(),
                    naive(&mask),
                    "m={m} slot={slot}"
                );
            }
        }
    }

    #[test]
    fn write_indices_adds_the_base() {
        let mut out = vec![7u32; 131];
        let mut mask = vec![false; 130];
        for k in [1, 8, 63, 64, 129] {
            mask[k] = true;
        }
        assert_eq!(write_indices(&mask, 100, &mut out), 5);
        assert_eq!(&out[..5], &[101, 108, 163, 164, 229]);
        assert_eq!(out[130], 7, "nothing written past the mask's length");
    }

    #[test]
    fn indices_to_mask_round_trip() {
        let mut mask = vec![true; 12];
        indices_to_mask(&[11, 3, 3, 0], &mut mask).unwrap();
        assert_eq!(mask_to_indices(&mask).unwrap(), vec![0, 3, 11]);
    }

    #[test]
    fn indices_to_mask_rejects_out_of_range_untouched() {
        let mut mask = vec![true; 4];
        let err = indices_to_mask(&[1, 4], &mut mask).unwrap_err();
        assert_eq!(
            err,
            KernelError::IndexOutOfRange {
                arg: "indices",
                position: 1,
                value: 4,
                bound: 4
            }
        );
        assert_eq!(mask, vec![true; 4]);
        let mut empty: [bool; 0] = [];
        assert!(indices_to_mask(&[0], &mut empty).is_err());
        assert!(indices_to_mask(&[], &mut empty).is_ok());
    }
}
