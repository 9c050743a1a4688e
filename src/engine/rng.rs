//! Counter-based random numbers: every stream is a pure function of its key.
//!
//! A stream keyed by `(seed, domain, a, b)` (for example the drive of region `a` at step
//! `b`) is SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014) started at a state hashed from the key. Nothing is carried
//! from one step or region to the next, so a region draws the same numbers whichever
//! node runs it and whatever ran before: any partition of the regions over nodes gives
//! the same spikes.

/// The drive of a region is drawn in blocks of this many neurons, each from its own
/// stream, so the parts of a region stepped in parallel draw their own kicks.
pub const DRIVE_BLOCK: usize = 1 << 14;

/// SplitMix64's increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function (the `mix64` finalizer of the paper, variant 13).
#[inline(always)]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a stream is used for; part of its key, so two uses never share numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Domain {
    /// The external drive of a block of a region at a step: `(region + block * 2^32,
    /// step)` (see [`Stream::drive`]).
    Drive = 1,
    /// The synapses of one presynaptic neuron of a projection: `(projection, neuron)`.
    Connect = 2,
}

/// One random stream.
#[derive(Clone, Debug)]
pub struct Stream {
    state: u64,
}

impl Stream {
    /// The stream of `(seed, domain, a, b)`.
    pub fn new(seed: u64, domain: Domain, a: u64, b: u64) -> Self {
        let mut k = mix64(seed ^ GAMMA);
        k = mix64(k ^ (domain as u64).wrapping_mul(GAMMA));
        k = mix64(k.wrapping_add(a).wrapping_mul(GAMMA) ^ k);
        k = mix64(k.wrapping_add(b).wrapping_mul(GAMMA) ^ (k >> 7));
        Self { state: k }
    }

    /// The drive of neurons `block * DRIVE_BLOCK..` of `region` at `step`. Block 0's
    /// stream is `(seed, Drive, region, step)`.
    pub fn drive(seed: u64, region: u64, block: u64, step: u64) -> Self {
        Self::new(seed, Domain::Drive, region | (block << 32), step)
    }

    /// The next 64 random bits.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    #[inline(always)]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..bound` (`bound > 0`), without bias: Lemire's multiply-and-reject
    /// ("Fast random integer generation in an interval", 2019).
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let mut m = u128::from(self.next_u64()) * u128::from(bound);
        if (m as u64) < bound {
            let threshold = bound.wrapping_neg() % bound;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(bound);
            }
        }
        (m >> 64) as u64
    }

    /// Calls `f` with the positions in `0..n` of independent Bernoulli(`p`) successes, in
    /// increasing order, in time proportional to their number: the gaps between
    /// successes are geometric, drawn by inversion (Devroye, "Non-Uniform Random Variate
    /// Generation", X.2).
    pub fn bernoulli_positions(&mut self, n: u64, p: f64, mut f: impl FnMut(u64)) {
        if n == 0 || p.is_nan() || p <= 0.0 {
            return;
        }
        if p >= 1.0 {
            (0..n).for_each(f);
            return;
        }
        // ln(1 - p), accurate for small p.
        let log_q = (-p).ln_1p();
        let mut pos: u64 = 0;
        loop {
            // 1 - U lies in (0, 1]: its log is finite.
            let u = 1.0 - self.next_f64();
            // Non-negative, so truncation is the floor (and `as` saturates): no call to
            // `floor`, which the baseline x86_64 target has no instruction for.
            let skip = (u.ln() / log_q) as u64;
            if skip >= n - pos {
                return;
            }
            pos += skip;
            f(pos);
            pos += 1;
            if pos >= n {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_on_every_part_of_the_key_only() {
        let draw = |s: u64, d, a, b| {
            let mut st = Stream::new(s, d, a, b);
            (0..4).map(|_| st.next_u64()).collect::<Vec<_>>()
        };
        let base = draw(1, Domain::Drive, 2, 3);
        assert_eq!(base, draw(1, Domain::Drive, 2, 3));
        assert_ne!(base, draw(2, Domain::Drive, 2, 3));
        assert_ne!(base, draw(1, Domain::Connect, 2, 3));
        assert_ne!(base, draw(1, Domain::Drive, 3, 3));
        assert_ne!(base, draw(1, Domain::Drive, 2, 4));
        // Swapping a and b gives another stream.
        assert_ne!(draw(1, Domain::Drive, 2, 3), draw(1, Domain::Drive, 3, 2));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut st = Stream::new(7, Domain::Connect, 0, 0);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let x = st.below(10);
            seen[x as usize] += 1;
        }
        // Each value expects 1000; 5 sigma is 150.
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
    }

    #[test]
    fn bernoulli_positions_are_increasing_in_range_with_the_right_rate() {
        for &(n, p) in &[(100_000u64, 0.002f64), (10_000, 0.3), (1000, 0.999)] {
            let mut total = 0u64;
            for step in 0..20 {
                let mut st = Stream::new(3, Domain::Drive, 1, step);
                let mut last: Option<u64> = None;
                st.bernoulli_positions(n, p, |k| {
                    assert!(k < n);
                    assert!(last.is_none_or(|l| l < k));
                    last = Some(k);
                    total += 1;
                });
            }
            let mean = 20.0 * n as f64 * p;
            let sd = (mean * (1.0 - p)).sqrt();
            assert!(
                (total as f64 - mean).abs() < 5.0 * sd + 1.0,
                "n={n} p={p}: {total} vs {mean}"
            );
        }
    }

    #[test]
    fn bernoulli_edge_rates() {
        let mut st = Stream::new(0, Domain::Drive, 0, 0);
        let mut all = Vec::new();
        st.bernoulli_positions(5, 1.0, |k| all.push(k));
        assert_eq!(all, [0, 1, 2, 3, 4]);
        let mut none = 0;
        st.bernoulli_positions(5, 0.0, |_| none += 1);
        st.bernoulli_positions(0, 0.5, |_| none += 1);
        st.bernoulli_positions(5, f64::NAN, |_| none += 1);
        assert_eq!(none, 0);
    }

    #[test]
    fn each_position_fires_at_the_rate() {
        // The first and last positions are not favoured by the skip sampling.
        let (n, p, runs) = (8u64, 0.25, 40_000u64);
        let mut hits = [0u64; 8];
        for step in 0..runs {
            Stream::new(9, Domain::Drive, 0, step)
                .bernoulli_positions(n, p, |k| hits[k as usize] += 1);
        }
        let mean = runs as f64 * p;
        let sd = (mean * (1.0 - p)).sqrt();
        for h in hits {
            assert!((h as f64 - mean).abs() < 5.0 * sd, "{hits:?}");
        }
    }
}
