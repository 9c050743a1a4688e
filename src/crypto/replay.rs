//! Sliding-window replay protection over message counters (RFC 6479, as WireGuard uses it).
//!
//! The window is a ring of 64-bit words; advancing clears whole words lazily, so both
//! accepting and advancing are O(1) apart from the clearing of skipped words. One word is
//! kept as slack for that lazy clearing, hence the usable width below.
//! Only counters whose message already authenticated may be passed in: marking a forged
//! counter would let an attacker move the window.

const WORD_BITS: u64 = 64;
const WORDS: usize = 128; // 8192 bits: RFC 6479 §2 uses the same ring-of-blocks layout
/// Counters this far behind the newest one are still accepted once (reordering tolerance).
pub const WINDOW_SIZE: u64 = (WORDS as u64 - 1) * WORD_BITS;

/// The set of counters recently accepted from one sender session.
#[derive(Clone)]
pub struct ReplayWindow {
    newest: u64,
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            newest: 0,
            bitmap: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Accept `counter` if it was never accepted before and is not older than the
    /// window; remember it. Returns false for a replay or a too-old counter.
    pub fn accept(&mut self, counter: u64) -> bool {
        if counter > self.newest {
            let first = self.newest / WORD_BITS + 1;
            let last = counter / WORD_BITS;
            if last >= first {
                let to_clear = (last - first + 1).min(WORDS as u64);
                for i in 0..to_clear {
                    self.bitmap[((first + i) % WORDS as u64) as usize] = 0;
                }
            }
            self.newest = counter;
        } else if self.newest - counter >= WINDOW_SIZE {
            return false;
        }
        let word = ((counter / WORD_BITS) % WORDS as u64) as usize;
        let bit = 1u64 << (counter % WORD_BITS);
        if self.bitmap[word] & bit != 0 {
            return false;
        }
        self.bitmap[word] |= bit;
        true
    }

    /// The highest counter accepted so far.
    pub fn newest(&self) -> u64 {
        self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn in_order_then_duplicates() {
        let mut w = ReplayWindow::default();
        for c in 0..20_000 {
            assert!(w.accept(c), "fresh counter {c} rejected");
        }
        for c in 20_000 - WINDOW_SIZE..20_000 {
            assert!(!w.accept(c), "duplicate {c} accepted");
        }
        assert!(!w.accept(0));
    }

    #[test]
    fn reordering_within_window_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(10_000));
        assert!(w.accept(10_000 - WINDOW_SIZE + 1));
        assert!(!w.accept(10_000 - WINDOW_SIZE + 1));
        assert!(!w.accept(10_000 - WINDOW_SIZE));
        assert!(w.accept(9_999));
        assert!(!w.accept(9_999));
        assert!(w.accept(10_001));
    }

    #[test]
    fn large_jump_clears_everything_old() {
        let mut w = ReplayWindow::default();
        for c in 0..100 {
            assert!(w.accept(c));
        }
        assert!(w.accept(1 << 40));
        assert!(!w.accept(50));
        assert!(w.accept((1 << 40) - 1));
        assert!(w.accept(u64::MAX));
        assert!(!w.accept(u64::MAX));
        assert!(w.accept(u64::MAX - 5));
    }

    /// Exhaustive check against a set-based model on a pseudo-random schedule of
    /// in-order runs, jumps and stragglers.
    #[test]
    fn matches_reference_model() {
        let mut w = ReplayWindow::default();
        let mut seen = HashSet::new();
        let mut newest = 0u64;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = 0u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = match x % 10 {
                0..=5 => {
                    next += 1;
                    next
                }
                6 | 7 => next.saturating_sub(x % (WINDOW_SIZE + 200)),
                8 => next.saturating_sub(x % 64),
                _ => {
                    next += x % 3000;
                    next
                }
            };
            let expected = !seen.contains(&c) && (c > newest || newest - c < WINDOW_SIZE);
            assert_eq!(w.accept(c), expected, "counter {c}, newest {newest}");
            if expected {
                seen.insert(c);
                newest = newest.max(c);
            }
        }
    }
}
