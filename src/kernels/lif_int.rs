//! The integer leaky integrate-and-fire neuron of EvoSpikeNet's `LIFNeuronLayer`.
//!
//! Per neuron and step, with `v` an `i16` membrane potential and all arithmetic in
//! `i32`:
//!
//! ```text
//! v32   = floor(v * leak / 256) + i_syn
//! v     = clamp(v32, -32768, 32767)
//! spike = v >= threshold
//! v     = spike ? reset : v
//! ```
//!
//! The division is a floor division, as Python's and torch's `//` are for negative
//! values; an arithmetic shift right by 8 is exactly that (Rust's `/` would round
//! towards zero instead). `v * leak` cannot overflow: both factors are `i16`.

use super::error::{check_len, KernelError};
use super::population::{split_fields, Population};

/// Parameters of the integer LIF neuron. The defaults are `LIFNeuronLayer`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifIntParams {
    /// Multiplier of the potential per step, in units of 1/256 (230 keeps ~90%).
    pub leak: i16,
    /// A neuron spikes when its potential, after integration, is at least this.
    pub threshold: i16,
    /// Potential after a spike.
    pub reset: i16,
}

impl Default for LifIntParams {
    fn default() -> Self {
        Self {
            leak: 230,
            threshold: 1024,
            reset: 0,
        }
    }
}

/// An integer synaptic current type the LIF neuron accepts.
pub trait Current: Copy + Send + Sync {
    /// `x + self` as the exact sum would come out after clamping to `i16`.
    fn add_to(self, x: i32) -> i32;

    /// `clamp(x + self)` to `i16`, for an `x` that is itself an `i16`.
    fn add_sat(self, x: i16) -> i16;
}

impl Current for i16 {
    #[inline(always)]
    fn add_to(self, x: i32) -> i32 {
        // |x| <= 2^22, so the sum cannot overflow.
        x + i32::from(self)
    }

    #[inline(always)]
    fn add_sat(self, x: i16) -> i16 {
        x.saturating_add(self)
    }
}

impl Current for i32 {
    #[inline(always)]
    fn add_to(self, x: i32) -> i32 {
        // Saturating: where the exact sum leaves i32 it is far outside i16 anyway, so the
        // clamp that follows gives what exact arithmetic would.
        x.saturating_add(self)
    }

    #[inline(always)]
    fn add_sat(self, x: i16) -> i16 {
        clamp_i16(self.add_to(i32::from(x)))
    }
}

#[inline(always)]
fn clamp_i16(x: i32) -> i16 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Updates one neuron; returns the new potential and whether it spiked.
#[inline(always)]
fn update<I: Current>(p: LifIntParams, v: i16, i_syn: I) -> (i16, bool) {
    let decayed = (i32::from(v) * i32::from(p.leak)) >> 8;
    let v = clamp_i16(i_syn.add_to(decayed));
    let spike = v >= p.threshold;
    (if spike { p.reset } else { v }, spike)
}

/// Constants of [`update_damped`] for one leak in `0..=256`.
#[derive(Clone, Copy)]
struct Damped {
    /// `leak * 256 mod 65536`.
    mult: u16,
    /// `mult / 2`.
    half: u16,
    /// All ones for `leak == 256`, whose `mult` wrapped to 0.
    whole: i16,
}

impl Damped {
    fn new(leak: i16) -> Self {
        let mult = (i32::from(leak) * 256) as u16;
        Self {
            mult,
            half: mult / 2,
            whole: if leak == 256 { -1 } else { 0 },
        }
    }
}

/// [`update`] for `0 <= leak <= 256`, the leaks that never amplify the potential.
///
/// Then `floor(v * leak / 256)` fits in `i16` and the update stays in 16-bit lanes:
/// twice as many per vector as `i32`, and no 32-bit multiply, which SSE2 lacks. With
/// `u = v + 32768` (unsigned) and `M = leak * 256`,
/// `floor(v * leak / 256) = floor(u * M / 65536) - M / 2`, exactly, since `M` is even;
/// `floor(u * M / 65536)` is the high half of a 16x16-bit unsigned product (`pmulhuw`,
/// which the compiler emits for this unsigned form but not for the signed one). The
/// clamp to `i16` is then a saturating add.
#[inline(always)]
fn update_damped<I: Current>(p: LifIntParams, d: Damped, v: i16, i_syn: I) -> (i16, bool) {
    let u = (v as u16) ^ 0x8000;
    let high = ((u32::from(u) * u32::from(d.mult)) >> 16) as u16;
    let decayed = (high.wrapping_sub(d.half) as i16).wrapping_add(v & d.whole);
    let v = i_syn.add_sat(decayed);
    let spike = v >= p.threshold;
    (if spike { p.reset } else { v }, spike)
}

/// One step of the integer LIF neuron over the whole population, in place on `v`,
/// writing one bool per neuron into `spikes`.
pub fn step<I: Current>(
    p: &LifIntParams,
    v: &mut [i16],
    i_syn: &[I],
    spikes: &mut [bool],
) -> Result<(), KernelError> {
    check_len("i_syn", v.len(), i_syn.len())?;
    check_len("out", v.len(), spikes.len())?;
    step_unchecked_len(*p, v, i_syn, spikes);
    Ok(())
}

fn step_unchecked_len<I: Current>(
    p: LifIntParams,
    v: &mut [i16],
    i_syn: &[I],
    spikes: &mut [bool],
) {
    crate::cpu::with_avx2(
        #[inline(always)]
        || step_loop(p, v, i_syn, spikes),
    );
}

#[inline(always)]
fn step_loop<I: Current>(p: LifIntParams, v: &mut [i16], i_syn: &[I], spikes: &mut [bool]) {
    // The leak is tested once per call, so each loop is a straight vectorizable body.
    if (0..=256).contains(&p.leak) {
        let d = Damped::new(p.leak);
        for ((v, &i), s) in v.iter_mut().zip(i_syn).zip(spikes.iter_mut()) {
            (*v, *s) = update_damped(p, d, *v, i);
        }
    } else {
        for ((v, &i), s) in v.iter_mut().zip(i_syn).zip(spikes.iter_mut()) {
            (*v, *s) = update(p, *v, i);
        }
    }
}

/// The integer LIF arrays of one call, for the drivers in
/// [`population`](super::population).
#[derive(Debug)]
pub struct LifIntPopulation<'a, I> {
    params: LifIntParams,
    v: &'a mut [i16],
    i_syn: &'a [I],
}

impl<'a, I: Current> LifIntPopulation<'a, I> {
    /// Checks that `i_syn` has one current per neuron.
    pub fn new(
        params: LifIntParams,
        v: &'a mut [i16],
        i_syn: &'a [I],
    ) -> Result<Self, KernelError> {
        check_len("i_syn", v.len(), i_syn.len())?;
        Ok(Self { params, v, i_syn })
    }
}

impl<I: Current> Population for LifIntPopulation<'_, I> {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn split_at(self, mid: usize) -> (Self, Self) {
        split_fields!(self, mid, keep [params], cut [v, i_syn])
    }

    fn step(self, spikes: &mut [bool]) {
        step_unchecked_len(self.params, self.v, self.i_syn, spikes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::population::{step_indices, step_mask};

    /// The formula as `LIFNeuronLayer` writes it, in i64 with an explicit floor division,
    /// so that it shares no code or trick with the kernel.
    fn reference(p: LifIntParams, v: i16, i: i64) -> (i16, bool) {
        let v32 = (i64::from(v) * i64::from(p.leak)).div_euclid(256) + i;
        let v = v32.clamp(-32768, 32767) as i16;
        if v >= p.threshold {
            (p.reset, true)
        } else {
            (v, false)
        }
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    }

    #[test]
    fn floor_division_of_negative_potentials() {
        let p = LifIntParams::default();
        // -1 * 230 / 256 is -0.9: floor gives -1 where truncation would give 0.
        let mut v = [-1i16, -256, 255, 1];
        let mut s = [false; 4];
        step(&p, &mut v, &[0i16; 4], &mut s).unwrap();
        assert_eq!(v, [-1, -230, 229, 0]);
        assert_eq!(s, [false; 4]);
    }

    #[test]
    fn saturates_at_both_ends_and_resets() {
        let p = LifIntParams {
            leak: 256,
            threshold: 32767,
            reset: -5,
        };
        let mut v = [32000i16, -32000, 100, 32767];
        let i_syn = [i16::MAX, i16::MIN, -200, 0];
        let mut s = [false; 4];
        step(&p, &mut v, &i_syn, &mut s).unwrap();
        assert_eq!(v, [-5, -32768, -100, -5]);
        assert_eq!(s, [true, false, false, true]);
    }

    #[test]
    fn i32_currents_beyond_i32_range_saturate_like_exact_arithmetic() {
        let p = LifIntParams {
            leak: i16::MAX,
            threshold: i16::MAX,
            reset: 7,
        };
        let mut v = [i16::MAX, i16::MIN, 0];
        let i_syn = [i32::MAX, i32::MIN, -40_000];
        let mut s = [false; 3];
        step(&p, &mut v, &i_syn, &mut s).unwrap();
        assert_eq!(v, [7, i16::MIN, i16::MIN]);
        assert_eq!(s, [true, false, false]);
    }

    #[test]
    fn random_inputs_match_reference_bit_for_bit() {
        let mut seed = 42u64;
        for round in 0..50 {
            let p = LifIntParams {
                leak: if round % 2 == 0 {
                    (lcg(&mut seed) % 257) as i16
                } else {
                    lcg(&mut seed) as i16
                },
                threshold: lcg(&mut seed) as i16,
                reset: lcg(&mut seed) as i16,
            };
            let n = 1 + (lcg(&mut seed) % 3000) as usize;
            let v0: Vec<i16> = (0..n).map(|_| lcg(&mut seed) as i16).collect();
            let i16s: Vec<i16> = (0..n).map(|_| lcg(&mut seed) as i16).collect();
            let i32s: Vec<i32> = (0..n)
                .map(|_| (lcg(&mut seed) as i32) >> (lcg(&mut seed) % 31))
                .collect();

            check_against_reference(p, &v0, &i16s, round);
            check_against_reference(p, &v0, &i32s, round);
        }
    }

    fn check_against_reference<I: Current + Into<i64>>(
        p: LifIntParams,
        v0: &[i16],
        i_syn: &[I],
        round: usize,
    ) {
        let mut v = v0.to_vec();
        let mut s = vec![false; v0.len()];
        step(&p, &mut v, i_syn, &mut s).unwrap();
        for k in 0..v0.len() {
            let r = reference(p, v0[k], i_syn[k].into());
            let current = std::any::type_name::<I>();
            assert_eq!((v[k], s[k]), r, "round {round} neuron {k} ({current})");
        }
    }

    #[test]
    fn every_potential_and_damping_leak_matches_reference() {
        // The 16-bit fast path, against the reference: every potential for the leaks at
        // the edges of its algebra (0, 1, 127, 128, 255, 256 and the default), and every
        // leak in 0..=256 for a spread of potentials; currents push to both saturation
        // ends.
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let spread: Vec<i16> = all
            .iter()
            .copied()
            .step_by(17)
            .chain([i16::MIN, -1, 0, 1, i16::MAX])
            .collect();
        let cases = [0, 1, 127, 128, 230, 255, 256]
            .into_iter()
            .map(|leak| (leak, &all))
            .chain((0..=256).map(|leak| (leak, &spread)));
        for (leak, v0) in cases {
            let i16s: Vec<i16> = v0.iter().map(|&v| v.wrapping_mul(7)).collect();
            let i32s: Vec<i32> = v0.iter().map(|&v| i32::from(v) * 3).collect();
            let mut s = vec![false; v0.len()];
            let p = LifIntParams {
                leak,
                threshold: 20_000,
                reset: -3,
            };
            let mut v = v0.clone();
            step(&p, &mut v, &i16s, &mut s).unwrap();
            for k in 0..v0.len() {
                let r = reference(p, v0[k], i64::from(i16s[k]));
                assert_eq!((v[k], s[k]), r, "leak {leak} v {}", v0[k]);
            }
            let mut v = v0.clone();
            step(&p, &mut v, &i32s, &mut s).unwrap();
            for k in 0..v0.len() {
                let r = reference(p, v0[k], i64::from(i32s[k]));
                assert_eq!((v[k], s[k]), r, "leak {leak} v {} (i32)", v0[k]);
            }
        }
    }

    #[test]
    fn drivers_agree_with_the_serial_step() {
        let mut seed = 7u64;
        let n = 10_000;
        let v0: Vec<i16> = (0..n).map(|_| (lcg(&mut seed) % 2048) as i16).collect();
        let i_syn: Vec<i16> = (0..n).map(|_| (lcg(&mut seed) % 300) as i16).collect();
        let p = LifIntParams::default();

        let mut v_ref = v0.clone();
        let mut s_ref = vec![false; n];
        step(&p, &mut v_ref, &i_syn, &mut s_ref).unwrap();
        let idx_ref: Vec<u32> = (0..n as u32).filter(|&i| s_ref[i as usize]).collect();
        assert!(!idx_ref.is_empty() && idx_ref.len() < n);

        for threads in [1, 2, 3] {
            let mut v = v0.clone();
            let idx =
                step_indices(LifIntPopulation::new(p, &mut v, &i_syn).unwrap(), threads).unwrap();
            assert_eq!(idx, idx_ref);
            assert_eq!(v, v_ref);

            let mut v = v0.clone();
            let mut s = vec![false; n];
            step_mask(
                LifIntPopulation::new(p, &mut v, &i_syn).unwrap(),
                &mut s,
                threads,
            )
            .unwrap();
            assert_eq!(s, s_ref);
            assert_eq!(v, v_ref);
        }
    }

    #[test]
    fn length_mismatch_is_reported_before_any_write() {
        let p = LifIntParams::default();
        let mut v = [5000i16; 3];
        let mut s = [false; 3];
        assert_eq!(
            step(&p, &mut v, &[0i16; 2], &mut s),
            Err(KernelError::Length {
                arg: "i_syn",
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            step(&p, &mut v, &[0i16; 3], &mut [false; 4]),
            Err(KernelError::Length {
                arg: "out",
                expected: 3,
                got: 4
            })
        );
        assert_eq!(v, [5000; 3]);
        assert!(LifIntPopulation::new(p, &mut v, &[0i32; 4]).is_err());
    }
}
