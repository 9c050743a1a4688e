//! The Izhikevich (2003) neuron.
//!
//! Per neuron and step of length `dt` (ms), forward Euler with both derivatives taken at
//! the start of the step, then the reset:
//!
//! ```text
//! v' = v + dt * (0.04 v^2 + 5 v + 140 - u + I)
//! u' = u + dt * (a (b v - u))
//! if v' >= v_peak: spike, v' = c, u' = u' + d
//! ```
//!
//! `a`, `b`, `c`, `d` and `I` may each be a scalar or one value per neuron
//! ([`Param`]). The expression order is fixed (and documented), so a numpy
//! implementation written in the same order gives the same `f32` results.

use super::error::{check_len, KernelError};
use super::param::Param;
use super::population::{split_fields, Population, SplitAt, BLOCK};

/// The scalar parameters of the Izhikevich neuron.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IzhikevichParams {
    /// Step length (ms).
    pub dt: f32,
    /// Spike cut-off of the potential (mV); 30 in the original model.
    pub v_peak: f32,
}

impl Default for IzhikevichParams {
    fn default() -> Self {
        Self {
            dt: 1.0,
            v_peak: 30.0,
        }
    }
}

impl IzhikevichParams {
    /// Checks that `dt` is positive and `v_peak` finite.
    pub fn validate(&self) -> Result<(), KernelError> {
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return Err(KernelError::Parameter {
                arg: "dt",
                expected: "a finite number > 0",
            });
        }
        if !self.v_peak.is_finite() {
            return Err(KernelError::Parameter {
                arg: "v_peak",
                expected: "a finite number",
            });
        }
        Ok(())
    }
}

/// The per-neuron parameters: a scalar or an array each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Abcd<'a> {
    /// Time scale of the recovery variable.
    pub a: Param<'a>,
    /// Sensitivity of the recovery variable to the potential.
    pub b: Param<'a>,
    /// Potential after a spike (mV).
    pub c: Param<'a>,
    /// Increment of the recovery variable at a spike.
    pub d: Param<'a>,
}

impl SplitAt for Abcd<'_> {
    fn split_at(self, mid: usize) -> (Self, Self) {
        split_fields!(self, mid, keep [], cut [a, b, c, d])
    }
}

impl Default for Abcd<'_> {
    /// Regular spiking (Izhikevich 2003, Fig. 2).
    fn default() -> Self {
        Self {
            a: Param::Scalar(0.02),
            b: Param::Scalar(0.2),
            c: Param::Scalar(-65.0),
            d: Param::Scalar(8.0),
        }
    }
}

// Not inlined: as a function of its own, the `&mut` slices carry their no-alias
// guarantee into the optimizer, which then vectorizes without runtime overlap checks
// (with this many arrays, it would otherwise give up).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn step_block(
    p: IzhikevichParams,
    v: &mut [f32],
    u: &mut [f32],
    i_in: &[f32],
    a: &[f32],
    b: &[f32],
    c: &[f32],
    d: &[f32],
    spikes: &mut [bool],
) {
    let n = v.len();
    let (u, i_in, spikes) = (&mut u[..n], &i_in[..n], &mut spikes[..n]);
    let (a, b, c, d) = (&a[..n], &b[..n], &c[..n], &d[..n]);
    for k in 0..n {
        let (vk, uk) = (v[k], u[k]);
        let dv = 0.04 * vk * vk + 5.0 * vk + 140.0 - uk + i_in[k];
        let du = a[k] * (b[k] * vk - uk);
        let v1 = vk + p.dt * dv;
        let u1 = uk + p.dt * du;
        let spike = v1 >= p.v_peak;
        v[k] = select(spike, c[k], v1);
        u[k] = select(spike, u1 + d[k], u1);
        spikes[k] = spike;
    }
}

/// `if take { a } else { b }`, written with bit operations.
///
/// The same select, but in this form the loop vectorizes: for two `if`/`else` selects
/// between loaded values the optimizer's cost model declines to vectorize the loop for
/// SSE2 (the scalar loop it then emits is about 3x slower).
#[inline(always)]
fn select(take: bool, a: f32, b: f32) -> f32 {
    let m = u32::from(take).wrapping_neg();
    f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// The Izhikevich arrays of one call, for the drivers in
/// [`population`](super::population).
#[derive(Debug)]
pub struct IzhikevichPopulation<'a> {
    p: IzhikevichParams,
    v: &'a mut [f32],
    u: &'a mut [f32],
    i_in: Param<'a>,
    abcd: Abcd<'a>,
}

impl<'a> IzhikevichPopulation<'a> {
    /// Checks the parameters and that every per-neuron array has one entry per neuron.
    pub fn new(
        p: IzhikevichParams,
        v: &'a mut [f32],
        u: &'a mut [f32],
        i_in: Param<'a>,
        abcd: Abcd<'a>,
    ) -> Result<Self, KernelError> {
        p.validate()?;
        let n = v.len();
        check_len("u", n, u.len())?;
        i_in.check_len("i_in", n)?;
        abcd.a.check_len("a", n)?;
        abcd.b.check_len("b", n)?;
        abcd.c.check_len("c", n)?;
        abcd.d.check_len("d", n)?;
        Ok(Self {
            p,
            v,
            u,
            i_in,
            abcd,
        })
    }
}

impl Population for IzhikevichPopulation<'_> {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn split_at(self, mid: usize) -> (Self, Self) {
        split_fields!(self, mid, keep [p], cut [v, u, i_in, abcd])
    }

    fn step(self, spikes: &mut [bool]) {
        let Abcd { a, b, c, d } = self.abcd;
        let (si, sa, sb, sc, sd) = (
            self.i_in.block_buffer(),
            a.block_buffer(),
            b.block_buffer(),
            c.block_buffer(),
            d.block_buffer(),
        );
        let n = self.v.len();
        let mut start = 0;
        for ((v, u), s) in self
            .v
            .chunks_mut(BLOCK)
            .zip(self.u.chunks_mut(BLOCK))
            .zip(spikes[..n].chunks_mut(BLOCK))
        {
            let len = v.len();
            step_block(
                self.p,
                v,
                u,
                self.i_in.block(&si, start, len),
                a.block(&sa, start, len),
                b.block(&sb, start, len),
                c.block(&sc, start, len),
                d.block(&sd, start, len),
                s,
            );
            start += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::population::{step_indices, step_mask};

    fn run(steps: usize, i: f32, abcd: Abcd<'_>, v0: f32, dt: f32) -> Vec<usize> {
        let mut v = [v0];
        let mut u = [0.2 * v0];
        let mut out = Vec::new();
        for t in 0..steps {
            let p = IzhikevichParams { dt, v_peak: 30.0 };
            let pop = IzhikevichPopulation::new(p, &mut v, &mut u, Param::Scalar(i), abcd).unwrap();
            if !step_indices(pop, 1).unwrap().is_empty() {
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn regular_spiking_fires_tonically_and_is_silent_without_input() {
        let rs = Abcd::default();
        assert!(run(1000, 0.0, rs, -65.0, 0.5).is_empty());
        let spikes = run(2000, 10.0, rs, -65.0, 0.5);
        assert!(spikes.len() > 5, "{spikes:?}");
        // Regular spiking adapts: the first interval is shorter than the last.
        let first = spikes[1] - spikes[0];
        let last = spikes[spikes.len() - 1] - spikes[spikes.len() - 2];
        assert!(first < last, "{spikes:?}");
    }

    #[test]
    fn fast_spiking_fires_faster_than_regular_spiking() {
        let fs = Abcd {
            a: Param::Scalar(0.1),
            d: Param::Scalar(2.0),
            ..Abcd::default()
        };
        let n_fs = run(2000, 10.0, fs, -65.0, 0.5).len();
        let n_rs = run(2000, 10.0, Abcd::default(), -65.0, 0.5).len();
        assert!(n_fs > n_rs, "fs {n_fs} rs {n_rs}");
    }

    #[test]
    fn one_step_matches_the_formula_and_resets() {
        let mut v = [-65.0f32, 29.0];
        let mut u = [-13.0f32, -13.0];
        let d_arr = [8.0f32, 6.0];
        let abcd = Abcd {
            d: Param::PerNeuron(&d_arr),
            ..Abcd::default()
        };
        let pop = IzhikevichPopulation::new(
            IzhikevichParams::default(),
            &mut v,
            &mut u,
            Param::PerNeuron(&[5.0, 0.0]),
            abcd,
        )
        .unwrap();
        let mut s = [false; 2];
        step_mask(pop, &mut s, 1).unwrap();
        let v0 = -65.0f32;
        let dv = 0.04 * v0 * v0 + 5.0 * v0 + 140.0 - -13.0 + 5.0;
        assert_eq!(v[0], v0 + dv);
        assert_eq!(u[0], -13.0 + 0.02 * (0.2 * v0 - -13.0));
        assert_eq!(s, [false, true]);
        assert_eq!(v[1], -65.0);
        let u1 = -13.0f32 + 0.02 * (0.2 * 29.0 - -13.0);
        assert_eq!(u[1], u1 + 6.0);
    }

    #[test]
    fn scalar_and_array_parameters_agree_across_blocks_and_threads() {
        let n = 2 * BLOCK + 5;
        let v0: Vec<f32> = (0..n).map(|k| -70.0 + (k % 97) as f32).collect();
        let i_arr: Vec<f32> = (0..n).map(|k| (k % 13) as f32).collect();
        let a_arr = vec![0.02f32; n];
        let b_arr = vec![0.2f32; n];
        let c_arr = vec![-65.0f32; n];
        let d_arr = vec![8.0f32; n];
        let arrays = Abcd {
            a: Param::PerNeuron(&a_arr),
            b: Param::PerNeuron(&b_arr),
            c: Param::PerNeuron(&c_arr),
            d: Param::PerNeuron(&d_arr),
        };
        let go = |abcd: Abcd<'_>, threads: usize| {
            let (mut v, mut u) = (v0.clone(), vec![-14.0f32; n]);
            let pop = IzhikevichPopulation::new(
                IzhikevichParams::default(),
                &mut v,
                &mut u,
                Param::PerNeuron(&i_arr),
                abcd,
            )
            .unwrap();
            let idx = step_indices(pop, threads).unwrap();
            (v, u, idx)
        };
        let base = go(Abcd::default(), 1);
        assert!(!base.2.is_empty());
        assert_eq!(go(arrays, 1), base);
        assert_eq!(go(arrays, 3), base);
    }

    #[test]
    fn parameters_and_lengths_are_checked() {
        let (mut v, mut u) = ([0.0f32; 2], [0.0f32; 2]);
        let bad_dt = IzhikevichParams {
            dt: 0.0,
            v_peak: 30.0,
        };
        let e =
            IzhikevichPopulation::new(bad_dt, &mut v, &mut u, Param::Scalar(0.0), Abcd::default())
                .unwrap_err();
        assert!(matches!(e, KernelError::Parameter { arg: "dt", .. }));
        let abcd = Abcd {
            c: Param::PerNeuron(&[1.0]),
            ..Abcd::default()
        };
        let e = IzhikevichPopulation::new(
            IzhikevichParams::default(),
            &mut v,
            &mut u,
            Param::Scalar(0.0),
            abcd,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            KernelError::Length {
                arg: "c",
                expected: 2,
                got: 1
            }
        ));
    }
}
