//! A current-based leaky integrate-and-fire neuron with exact integration, as NEST's
//! `iaf_psc_exp`.
//!
//! State per neuron: the membrane potential `v` (mV), the synaptic current `i_syn` (pA)
//! and the remaining refractory steps `r`. One step of length `dt`, in NEST's order
//! (`iaf_psc_exp::update`), with the propagators of the linear system
//! `dv/dt = -(v - E_L)/tau_m + (i_syn + I_e)/C_m`, `di_syn/dt = -i_syn/tau_syn`:
//!
//! ```text
//! if r <= 0: v = E_L + ((v - E_L) * P22 + i_syn * P21 + I_e * P20)
//! else:      r = r - 1          (v stays at V_reset while refractory)
//! i_syn = i_syn * P11 + i_in    (input arriving this step acts from the next step on)
//! if v >= V_th: spike, v = V_reset, r = t_ref_steps
//! ```
//!
//! One synaptic current with one time constant: excitatory and inhibitory input are
//! one signed current, as NEST's model with `tau_syn_ex == tau_syn_in`.

use super::error::{check_len, KernelError};
use super::param::Param;
use super::population::{split_fields, Population, BLOCK};

/// Physical parameters, in NEST's units (ms, mV, pF, pA). The defaults are those of
/// NEST's `iaf_psc_exp` at a resolution of 0.1 ms. A network file names them field by
/// field (`serde`); a field left out keeps its default, an unknown one is refused.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifFloatParams {
    /// Membrane time constant (ms).
    pub tau_m: f64,
    /// Synaptic current time constant (ms).
    pub tau_syn: f64,
    /// Membrane capacitance (pF).
    pub c_m: f64,
    /// Step length (ms).
    pub dt: f64,
    /// Resting potential (mV).
    pub e_l: f64,
    /// Spike threshold (mV).
    pub v_th: f64,
    /// Potential after a spike and during the refractory period (mV).
    pub v_reset: f64,
    /// Refractory period (ms), rounded to whole steps as NEST does.
    pub t_ref: f64,
    /// Constant input current (pA).
    pub i_e: f64,
}

impl Default for LifFloatParams {
    fn default() -> Self {
        Self {
            tau_m: 10.0,
            tau_syn: 2.0,
            c_m: 250.0,
            dt: 0.1,
            e_l: -70.0,
            v_th: -55.0,
            v_reset: -70.0,
            t_ref: 2.0,
            i_e: 0.0,
        }
    }
}

/// The per-step constants derived from [`LifFloatParams`], as the kernel uses them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Propagators {
    /// Decay of the synaptic current over one step, `exp(-dt/tau_syn)`.
    pub p11: f32,
    /// Contribution of the synaptic current to the potential over one step.
    pub p21: f32,
    /// Decay of the potential over one step, `exp(-dt/tau_m)`.
    pub p22: f32,
    /// `I_e * P20`, the contribution of the constant current over one step.
    pub ie_p20: f32,
    /// Resting potential.
    pub e_l: f32,
    /// Threshold.
    pub v_th: f32,
    /// Reset potential.
    pub v_reset: f32,
    /// Refractory period in steps.
    pub t_ref_steps: i32,
}

fn positive(arg: &'static str, x: f64) -> Result<(), KernelError> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(KernelError::Parameter {
            arg,
            expected: "a finite number > 0",
        })
    }
}

fn finite(arg: &'static str, x: f64) -> Result<(), KernelError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(KernelError::Parameter {
            arg,
            expected: "a finite number",
        })
    }
}

impl LifFloatParams {
    /// Checks the parameters and computes the propagators in `f64`.
    ///
    /// `P21` uses `expm1`, so it stays accurate as `tau_syn` approaches `tau_m`, where the
    /// textbook form `tau_m*tau_syn/(C_m*(tau_m - tau_syn)) * (P22 - P11)` cancels; at
    /// equality its limit `dt/C_m * P22` is used.
    pub fn propagators(&self) -> Result<Propagators, KernelError> {
        positive("tau_m", self.tau_m)?;
        positive("tau_syn", self.tau_syn)?;
        positive("c_m", self.c_m)?;
        positive("dt", self.dt)?;
        finite("e_l", self.e_l)?;
        finite("v_th", self.v_th)?;
        finite("v_reset", self.v_reset)?;
        finite("i_e", self.i_e)?;
        if !(self.t_ref.is_finite() && self.t_ref >= 0.0) {
            return Err(KernelError::Parameter {
                arg: "t_ref",
                expected: "a finite number >= 0",
            });
        }
        if self.v_reset >= self.v_th {
            // NEST refuses this too: a neuron reset above threshold would fire every step.
            return Err(KernelError::Parameter {
                arg: "v_reset",
                expected: "a value below v_th",
            });
        }
        let steps = (self.t_ref / self.dt).round();
        if steps > f64::from(i32::MAX) {
            return Err(KernelError::Parameter {
                arg: "t_ref",
                expected: "at most 2**31 - 1 steps",
            });
        }
        let (h, tm, ts) = (self.dt, self.tau_m, self.tau_syn);
        let p22 = (-h / tm).exp();
        let p11 = (-h / ts).exp();
        let p21 = if tm == ts {
            h / self.c_m * p22
        } else {
            tm * ts / (self.c_m * (tm - ts)) * p22 * -(-h * (tm - ts) / (tm * ts)).exp_m1()
        };
        let p20 = tm / self.c_m * -(-h / tm).exp_m1();
        Ok(Propagators {
            p11: p11 as f32,
            p21: p21 as f32,
            p22: p22 as f32,
            ie_p20: (self.i_e * p20) as f32,
            e_l: self.e_l as f32,
            v_th: self.v_th as f32,
            v_reset: self.v_reset as f32,
            t_ref_steps: steps as i32,
        })
    }
}

// Not inlined, so the `&mut` slices keep their no-alias guarantee (see izhikevich.rs).
#[inline(never)]
fn step_block(
    p: &Propagators,
    v: &mut [f32],
    i_syn: &mut [f32],
    r: &mut [i32],
    i_in: &[f32],
    spikes: &mut [bool],
) {
    let n = v.len();
    let (i_syn, r, i_in, spikes) = (&mut i_syn[..n], &mut r[..n], &i_in[..n], &mut spikes[..n]);
    for k in 0..n {
        let active = r[k] <= 0;
        let integrated = p.e_l + ((v[k] - p.e_l) * p.p22 + i_syn[k] * p.p21 + p.ie_p20);
        let v1 = if active { integrated } else { v[k] };
        let r1 = if active { 0 } else { r[k] - 1 };
        let spike = v1 >= p.v_th;
        v[k] = if spike { p.v_reset } else { v1 };
        r[k] = if spike { p.t_ref_steps } else { r1 };
        i_syn[k] = i_syn[k] * p.p11 + i_in[k];
        spikes[k] = spike;
    }
}

/// The float LIF arrays of one call, for the drivers in
/// [`population`](super::population).
#[derive(Debug)]
pub struct LifFloatPopulation<'a> {
    p: Propagators,
    v: &'a mut [f32],
    i_syn: &'a mut [f32],
    refractory: &'a mut [i32],
    i_in: Param<'a>,
}

impl<'a> LifFloatPopulation<'a> {
    /// Checks that every array has one entry per neuron. A refractory count of zero or
    /// less means "not refractory"; `i_in` is the input current that arrives this step.
    pub fn new(
        p: Propagators,
        v: &'a mut [f32],
        i_syn: &'a mut [f32],
        refractory: &'a mut [i32],
        i_in: Param<'a>,
    ) -> Result<Self, KernelError> {
        check_len("i_syn", v.len(), i_syn.len())?;
        check_len("refractory", v.len(), refractory.len())?;
        i_in.check_len("i_in", v.len())?;
        Ok(Self {
            p,
            v,
            i_syn,
            refractory,
            i_in,
        })
    }
}

impl Population for LifFloatPopulation<'_> {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn split_at(self, mid: usize) -> (Self, Self) {
        split_fields!(self, mid, keep [p], cut [v, i_syn, refractory, i_in])
    }

    fn step(self, spikes: &mut [bool]) {
        let buffer = self.i_in.block_buffer();
        let n = self.v.len();
        let mut start = 0;
        for (((v, i_syn), r), s) in self
            .v
            .chunks_mut(BLOCK)
            .zip(self.i_syn.chunks_mut(BLOCK))
            .zip(self.refractory.chunks_mut(BLOCK))
            .zip(spikes[..n].chunks_mut(BLOCK))
        {
            let i_in = self.i_in.block(&buffer, start, v.len());
            step_block(&self.p, v, i_syn, r, i_in, s);
            start += v.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::population::{step_indices, step_mask};

    fn props(i_e: f64) -> Propagators {
        LifFloatParams {
            i_e,
            ..LifFloatParams::default()
        }
        .propagators()
        .unwrap()
    }

    #[test]
    fn propagators_match_closed_forms() {
        let p = props(376.0);
        let h = 0.1f64;
        assert!((f64::from(p.p22) - (-h / 10.0).exp()).abs() < 1e-7);
        assert!((f64::from(p.p11) - (-h / 2.0).exp()).abs() < 1e-7);
        // P21 by the textbook formula, which is accurate far from tau_m == tau_syn.
        let p21 = 10.0 * 2.0 / (250.0 * 8.0) * ((-h / 10.0).exp() - (-h / 2.0).exp());
        assert!((f64::from(p.p21) - p21).abs() < 1e-9);
        let p20 = 10.0 / 250.0 * (1.0 - (-h / 10.0).exp());
        assert!((f64::from(p.ie_p20) - 376.0 * p20).abs() < 1e-5);
        assert_eq!(p.t_ref_steps, 20);
    }

    #[test]
    fn p21_is_continuous_at_equal_time_constants() {
        let at = |tau_syn: f64| {
            LifFloatParams {
                tau_syn,
                ..LifFloatParams::default()
            }
            .propagators()
            .unwrap()
            .p21
        };
        let equal = at(10.0);
        assert!((equal - at(10.0 + 1e-9)).abs() < 1e-9);
        assert!((equal - at(10.0 - 1e-9)).abs() < 1e-9);
        assert!((f64::from(equal) - 0.1 / 250.0 * (-0.01f64).exp()).abs() < 1e-10);
    }

    #[test]
    fn invalid_parameters_are_named() {
        let bad = |p: LifFloatParams| p.propagators().unwrap_err();
        let d = LifFloatParams::default();
        assert!(matches!(
            bad(LifFloatParams { tau_m: 0.0, ..d }),
            KernelError::Parameter { arg: "tau_m", .. }
        ));
        assert!(matches!(
            bad(LifFloatParams { dt: f64::NAN, ..d }),
            KernelError::Parameter { arg: "dt", .. }
        ));
        assert!(matches!(
            bad(LifFloatParams { t_ref: -1.0, ..d }),
            KernelError::Parameter { arg: "t_ref", .. }
        ));
        assert!(matches!(
            bad(LifFloatParams {
                v_reset: -55.0,
                ..d
            }),
            KernelError::Parameter { arg: "v_reset", .. }
        ));
    }

    #[test]
    fn constant_current_gives_the_analytic_firing_period() {
        // With I_e above rheobase (C_m*(V_th-E_L)/tau_m = 375 pA) the potential relaxes
        // towards E_L + I_e*tau_m/C_m; the time to reach threshold from reset is
        // tau_m * ln(I/(I - 375)). With I = 500: 10*ln(4) = 13.86 ms -> the crossing
        // happens on step 139, then 20 refractory steps.
        let p = props(500.0);
        let mut v = [-70.0f32];
        let mut i_syn = [0.0f32];
        let mut r = [0i32];
        let mut spike_steps = Vec::new();
        for t in 1..=400 {
            let mut s = [false];
            let pop =
                LifFloatPopulation::new(p, &mut v, &mut i_syn, &mut r, Param::Scalar(0.0)).unwrap();
            step_mask(pop, &mut s, 1).unwrap();
            if s[0] {
                spike_steps.push(t);
            }
        }
        assert_eq!(spike_steps[0], 139);
        let periods: Vec<i32> = spike_steps.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(periods.iter().all(|&d| d == 139 + 20), "{periods:?}");
    }

    #[test]
    fn input_acts_from_the_next_step_and_refractory_holds_reset() {
        let p = props(0.0);
        let mut v = [-70.0f32, -54.0, -60.0];
        let mut i_syn = [0.0f32; 3];
        let mut r = [0, 0, 3];
        let mut s = [false; 3];
        let i_in = [1000.0f32, 0.0, 1000.0];
        let pop = LifFloatPopulation::new(p, &mut v, &mut i_syn, &mut r, Param::PerNeuron(&i_in))
            .unwrap();
        step_mask(pop, &mut s, 1).unwrap();
        assert_eq!(s, [false, true, false]);
        assert_eq!(v[0], -70.0, "input of this step must not move v yet");
        assert_eq!(v[1], -70.0);
        assert_eq!(v[2], -60.0, "a refractory neuron does not integrate");
        assert_eq!(r, [0, 20, 2]);
        assert_eq!(i_syn, [1000.0, 0.0, 1000.0]);
        let pop =
            LifFloatPopulation::new(p, &mut v, &mut i_syn, &mut r, Param::Scalar(0.0)).unwrap();
        step_mask(pop, &mut s, 1).unwrap();
        assert!(v[0] > -70.0);
        assert_eq!(i_syn[0], 1000.0 * p.p11);
    }

    #[test]
    fn drivers_and_block_boundaries_agree() {
        let p = props(400.0);
        let n = 3 * BLOCK + 17;
        let v0: Vec<f32> = (0..n).map(|k| -70.0 + (k % 157) as f32 * 0.1).collect();
        let r0: Vec<i32> = (0..n).map(|k| (k % 5) as i32 - 1).collect();
        let i_in: Vec<f32> = (0..n).map(|k| (k % 11) as f32 * 10.0).collect();
        let run = |threads: usize, indices: bool| {
            let (mut v, mut i_syn, mut r) = (v0.clone(), vec![1.0f32; n], r0.clone());
            let pop =
                LifFloatPopulation::new(p, &mut v, &mut i_syn, &mut r, Param::PerNeuron(&i_in))
                    .unwrap();
            let idx = if indices {
                step_indices(pop, threads).unwrap()
            } else {
                let mut s = vec![false; n];
                step_mask(pop, &mut s, threads).unwrap();
                (0..n as u32).filter(|&k| s[k as usize]).collect()
            };
            (v, i_syn, r, idx)
        };
        let base = run(1, false);
        assert!(!base.3.is_empty());
        for threads in [1, 2, 4] {
            assert_eq!(run(threads, true), base);
            assert_eq!(run(threads, false), base);
        }
    }

    #[test]
    fn lengths_are_checked() {
        let p = props(0.0);
        let (mut v, mut i, mut r) = ([0.0f32; 3], [0.0f32; 3], [0i32; 2]);
        let e = LifFloatPopulation::new(p, &mut v, &mut i, &mut r, Param::Scalar(0.0)).unwrap_err();
        assert!(matches!(
            e,
            KernelError::Length {
                arg: "refractory",
                ..
            }
        ));
        let mut r = [0i32; 3];
        let e = LifFloatPopulation::new(p, &mut v, &mut i, &mut r, Param::PerNeuron(&[0.0]))
            .unwrap_err();
        assert!(matches!(e, KernelError::Length { arg: "i_in", .. }));
    }
}
