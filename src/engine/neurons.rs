//! The state of one region's neurons and one step of its model.
//!
//! The step of region `R` at `t`: its input is cleared, the drive's kicks are added,
//! then every incoming projection's spikes (from `t - delay`) in projection order;
//! then the model's kernel ([`crate::kernels`]) advances every neuron and reports the
//! spikes as sorted indices. A large region is stepped as several [`Shard`]s, ranges of
//! its neurons that each do all of this for their own neurons, in parallel.

use super::spec::{IzhikevichSpec, ModelSpec};
use crate::kernels::izhikevich::{Abcd, IzhikevichParams, IzhikevichPopulation};
use crate::kernels::lif_float::{LifFloatPopulation, Propagators};
use crate::kernels::lif_int::{LifIntParams, LifIntPopulation};
use crate::kernels::{step_indices_into, Param};

/// How a [`State`] holds its arrays: owned by a region ([`Owned`]) or borrowed by one
/// of its shards ([`Slices`]).
pub trait Storage {
    /// An array of `T`s.
    type Array<T: Copy + std::fmt::Debug + 'static>: std::fmt::Debug;
}

/// Arrays owned: `Vec`s.
#[derive(Debug)]
pub struct Owned;

impl Storage for Owned {
    type Array<T: Copy + std::fmt::Debug + 'static> = Vec<T>;
}

/// Arrays borrowed for `'a`: mutable slices.
#[derive(Debug)]
pub struct Slices<'a>(std::marker::PhantomData<&'a ()>);

impl<'a> Storage for Slices<'a> {
    type Array<T: Copy + std::fmt::Debug + 'static> = &'a mut [T];
}

/// Neurons in the state of the model they follow, their arrays held as `S` holds them.
#[derive(Debug)]
pub enum State<S: Storage> {
    /// Integer LIF: `i16` potentials, `i32` input.
    LifInt {
        /// Parameters.
        p: LifIntParams,
        /// Potentials.
        v: S::Array<i16>,
        /// This step's input.
        input: S::Array<i32>,
    },
    /// Float LIF.
    LifFloat {
        /// Propagators.
        p: Propagators,
        /// Potentials (mV).
        v: S::Array<f32>,
        /// Synaptic currents (pA).
        i_syn: S::Array<f32>,
        /// Remaining refractory steps.
        refractory: S::Array<i32>,
        /// This step's input.
        input: S::Array<f32>,
    },
    /// Izhikevich.
    Izhikevich {
        /// Parameters.
        p: IzhikevichSpec,
        /// Potentials (mV).
        v: S::Array<f32>,
        /// Recovery variables.
        u: S::Array<f32>,
        /// This step's input.
        input: S::Array<f32>,
    },
}

/// The neurons of one region.
pub type Neurons = State<Owned>;

/// The neurons of one range of a region (see [`Neurons::shards`]), borrowed to be
/// stepped apart from the other ranges.
pub type Shard<'a> = State<Slices<'a>>;

/// `xs` cut at `bounds` (from 0 to `xs.len()`, increasing).
pub(super) fn cut<'a, T>(mut xs: &'a mut [T], bounds: &[usize]) -> Vec<&'a mut [T]> {
    bounds
        .windows(2)
        .map(|w| {
            let (head, rest) = std::mem::take(&mut xs).split_at_mut(w[1] - w[0]);
            xs = rest;
            head
        })
        .collect()
}

impl State<Slices<'_>> {
    /// Clears the input and returns it, for the drive and the projections.
    pub fn cleared_input(&mut self) -> Input<'_> {
        match self {
            Self::LifInt { input, .. } => {
                input.fill(0);
                Input::I32(input)
            }
            Self::LifFloat { input, .. } => {
                input.fill(0.0);
                Input::F32(input)
            }
            Self::Izhikevich { input, p, .. } => {
                input.fill(p.i_e);
                Input::F32(input)
            }
        }
    }

    /// Advances every neuron by one step with the input accumulated since
    /// [`cleared_input`](Self::cleared_input); writes the sorted indices (within the
    /// shard) of the neurons that spiked to the front of `out` (at least as long as the
    /// shard) and returns their number.
    pub fn step(&mut self, out: &mut [u32]) -> usize {
        let r = match self {
            Self::LifInt { p, v, input } => {
                LifIntPopulation::new(*p, v, input).and_then(|pop| step_indices_into(pop, out, 1))
            }
            Self::LifFloat {
                p,
                v,
                i_syn,
                refractory,
                input,
            } => LifFloatPopulation::new(*p, v, i_syn, refractory, Param::PerNeuron(input))
                .and_then(|pop| step_indices_into(pop, out, 1)),
            Self::Izhikevich { p, v, u, input } => {
                let abcd = Abcd {
                    a: Param::Scalar(p.a),
                    b: Param::Scalar(p.b),
                    c: Param::Scalar(p.c),
                    d: Param::Scalar(p.d),
                };
                let params = IzhikevichParams {
                    dt: p.dt,
                    v_peak: p.v_peak,
                };
                IzhikevichPopulation::new(params, v, u, Param::PerNeuron(input), abcd)
                    .and_then(|pop| step_indices_into(pop, out, 1))
            }
        };
        r.expect("the engine sizes every array from n")
    }
}

/// A region's input array, for the drive and the projections to add into.
pub enum Input<'a> {
    /// Integer LIF input.
    I32(&'a mut [i32]),
    /// Float input.
    F32(&'a mut [f32]),
}

impl State<Owned> {
    /// `n` neurons of `model` at rest (the model has been validated).
    pub fn new(model: &ModelSpec, n: usize) -> Self {
        match model {
            ModelSpec::LifInt(m) => Self::LifInt {
                p: m.params(),
                v: vec![0; n],
                input: vec![0; n],
            },
            ModelSpec::LifFloat(m) => {
                let p = m.propagators().expect("validated with the network");
                Self::LifFloat {
                    p,
                    v: vec![p.e_l; n],
                    i_syn: vec![0.0; n],
                    refractory: vec![0; n],
                    input: vec![0.0; n],
                }
            }
            ModelSpec::Izhikevich(m) => Self::Izhikevich {
                p: *m,
                v: vec![m.c; n],
                u: vec![m.b * m.c; n],
                input: vec![0.0; n],
            },
        }
    }

    /// Number of neurons.
    pub fn len(&self) -> usize {
        match self {
            Self::LifInt { v, .. } => v.len(),
            Self::LifFloat { v, .. } | Self::Izhikevich { v, .. } => v.len(),
        }
    }

    /// Whether the region has no neuron.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mutable views of the neurons in the ranges between consecutive `bounds` (from 0
    /// to `len`, increasing), to step apart.
    pub fn shards(&mut self, bounds: &[usize]) -> Vec<Shard<'_>> {
        match self {
            Self::LifInt { p, v, input } => cut(v, bounds)
                .into_iter()
                .zip(cut(input, bounds))
                .map(|(v, input)| Shard::LifInt { p: *p, v, input })
                .collect(),
            Self::LifFloat {
                p,
                v,
                i_syn,
                refractory,
                input,
            } => cut(v, bounds)
                .into_iter()
                .zip(cut(i_syn, bounds))
                .zip(cut(refractory, bounds))
                .zip(cut(input, bounds))
                .map(|(((v, i_syn), refractory), input)| Shard::LifFloat {
                    p: *p,
                    v,
                    i_syn,
                    refractory,
                    input,
                })
                .collect(),
            Self::Izhikevich { p, v, u, input } => cut(v, bounds)
                .into_iter()
                .zip(cut(u, bounds))
                .zip(cut(input, bounds))
                .map(|((v, u), input)| Shard::Izhikevich { p: *p, v, u, input })
                .collect(),
        }
    }

    /// The membrane potential of neuron `i` (in the model's units).
    pub fn potential(&self, i: usize) -> f64 {
        match self {
            Self::LifInt { v, .. } => f64::from(v[i]),
            Self::LifFloat { v, .. } | Self::Izhikevich { v, .. } => f64::from(v[i]),
        }
    }

    /// Bytes of state.
    pub fn bytes(&self) -> usize {
        match self {
            Self::LifInt { v, .. } => v.len() * 6,
            Self::LifFloat { v, .. } => v.len() * 16,
            Self::Izhikevich { v, .. } => v.len() * 12,
        }
    }
}
