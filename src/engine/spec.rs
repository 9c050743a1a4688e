//! The description of a network: regions, projections and the seed.
//!
//! It is plain data (serde), built by the Python classes or read from a file, and
//! checked once by [`NetworkSpec::validate`] before anything is allocated. Every draw of
//! randomness is keyed by the seed and the position of the region or projection in
//! these lists, so the lists' order is part of the network.

use serde::{Deserialize, Serialize};

use super::error::EngineError;
use crate::kernels::izhikevich::{Abcd, IzhikevichParams};
use crate::kernels::lif_float::LifFloatParams;
use crate::kernels::lif_int::LifIntParams;
use crate::kernels::Param;

/// A whole network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Every random draw derives from it.
    #[serde(default)]
    pub seed: u64,
    /// The regions, in a fixed order.
    pub regions: Vec<RegionSpec>,
    /// The projections, in a fixed order: a region accumulates its inputs in this order.
    #[serde(default)]
    pub projections: Vec<ProjectionSpec>,
}

/// A population of one neuron model with its external drive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Unique name (letters, digits, `-`, `_`).
    pub name: String,
    /// Number of neurons.
    pub n: usize,
    /// The neuron model and its parameters.
    #[serde(default)]
    pub model: ModelSpec,
    /// External input kicks.
    #[serde(default)]
    pub drive: DriveSpec,
}

/// The neuron model of a region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// EvoSpikeNet's integer LIF (`LIFNeuronLayer`); integer weights and drive.
    LifInt(LifIntSpec),
    /// Current-based LIF with exact integration (NEST's `iaf_psc_exp`); weights in pA.
    LifFloat(LifFloatSpec),
    /// Izhikevich (2003); weights add to the input current of the step.
    Izhikevich(IzhikevichSpec),
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self::LifInt(LifIntSpec::default())
    }
}

impl ModelSpec {
    /// Whether weights and drive onto this model are integers (`i16` weights).
    pub fn is_integer(&self) -> bool {
        matches!(self, Self::LifInt(_))
    }

    /// The model's name in files and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LifInt(_) => "lif_int",
            Self::LifFloat(_) => "lif_float",
            Self::Izhikevich(_) => "izhikevich",
        }
    }
}

/// Parameters of the integer LIF neuron (see [`LifIntParams`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifIntSpec {
    /// Potential multiplier per step, in 1/256.
    pub leak: i16,
    /// Spike threshold.
    pub threshold: i16,
    /// Potential after a spike.
    pub reset: i16,
}

impl Default for LifIntSpec {
    fn default() -> Self {
        let LifIntParams {
            leak,
            threshold,
            reset,
        } = LifIntParams::default();
        Self {
            leak,
            threshold,
            reset,
        }
    }
}

impl LifIntSpec {
    /// The kernel's parameters.
    pub fn params(&self) -> LifIntParams {
        LifIntParams {
            leak: self.leak,
            threshold: self.threshold,
            reset: self.reset,
        }
    }
}

/// Parameters of the float LIF neuron: the kernel's own [`LifFloatParams`] (ms, mV, pF,
/// pA), read from a network file field by field, missing ones taking their defaults.
pub type LifFloatSpec = LifFloatParams;

/// Parameters of the Izhikevich neuron; one value each for the whole region.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IzhikevichSpec {
    /// Recovery time scale.
    pub a: f32,
    /// Recovery sensitivity.
    pub b: f32,
    /// Reset potential (mV); also the initial potential.
    pub c: f32,
    /// Recovery increment at a spike.
    pub d: f32,
    /// Constant input current added every step.
    pub i_e: f32,
    /// Step (ms).
    pub dt: f32,
    /// Spike cut-off (mV).
    pub v_peak: f32,
}

impl Default for IzhikevichSpec {
    fn default() -> Self {
        let IzhikevichParams { dt, v_peak } = IzhikevichParams::default();
        let Abcd { a, b, c, d } = Abcd::default();
        let scalar = |p: Param<'_>| match p {
            Param::Scalar(x) => x,
            Param::PerNeuron(_) => unreachable!("the default a, b, c, d are scalars"),
        };
        Self {
            a: scalar(a),
            b: scalar(b),
            c: scalar(c),
            d: scalar(d),
            i_e: 0.0,
            dt,
            v_peak,
        }
    }
}

/// External drive: every neuron independently receives a kick of `weight` with
/// probability `rate` at every step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriveSpec {
    /// Probability per neuron and step.
    pub rate: f64,
    /// Size of a kick (an integer for integer LIF regions).
    pub weight: f64,
}

/// Synapses from `source` to `target`, delivered `delay` steps later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSpec {
    /// Presynaptic region.
    pub source: String,
    /// Postsynaptic region (may be `source`: recurrent connections).
    pub target: String,
    /// Which pairs are connected.
    pub rule: RuleSpec,
    /// The weights of those synapses.
    pub weights: WeightSpec,
    /// Steps from a spike to its effect, at least 1.
    #[serde(default = "one")]
    pub delay: u32,
}

fn one() -> u32 {
    1
}

/// A connection rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleSpec {
    /// Every source neuron gets `fan_out` targets drawn uniformly with replacement
    /// (NEST's `fixed_outdegree` with multapses), sorted.
    FixedFanOut {
        /// Synapses per source neuron.
        fan_out: usize,
    },
    /// Every (source, target) pair is connected with probability `p` (NEST's
    /// `pairwise_bernoulli`).
    FixedProbability {
        /// Connection probability.
        p: f64,
    },
    /// Explicit CSR arrays of shape `(n_source, n_target)`.
    Csr {
        /// Row offsets, `n_source + 1` of them.
        indptr: Vec<u64>,
        /// Target neuron of each synapse.
        indices: Vec<u32>,
    },
}

/// How the weights of a projection are chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WeightSpec {
    /// The same weight for every synapse.
    Constant {
        /// The weight.
        value: f64,
    },
    /// Uniform in `[low, high]` (inclusive integers for integer targets, `[low, high)`
    /// otherwise).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// One weight per synapse, in storage order.
    Array {
        /// The weights.
        values: Vec<f64>,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn integer_in(x: f64, lo: f64, hi: f64) -> bool {
    x.is_finite() && x.fract() == 0.0 && (lo..=hi).contains(&x)
}

impl NetworkSpec {
    /// The position of region `name`.
    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name == name)
    }

    /// The largest delay of any projection (1 without projections).
    pub fn max_delay(&self) -> u32 {
        self.projections
            .iter()
            .map(|p| p.delay)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Checks everything that can be checked without building the synapses.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.regions.is_empty() {
            return Err(EngineError::network("the network has no region"));
        }
        for (i, r) in self.regions.iter().enumerate() {
            if !valid_name(&r.name) {
                return Err(EngineError::network(format!(
                    "region name {:?}: use letters, digits, '-' and '_'",
                    r.name
                )));
            }
            if self.regions[..i].iter().any(|o| o.name == r.name) {
                return Err(EngineError::network(format!(
                    "region name {:?} is used twice",
                    r.name
                )));
            }
            r.validate()?;
        }
        for p in &self.projections {
            let what = format!("projection {}->{}", p.source, p.target);
            let (Some(_), Some(t)) = (self.region_index(&p.source), self.region_index(&p.target))
            else {
                let missing = if self.region_index(&p.source).is_none() {
                    &p.source
                } else {
                    &p.target
                };
                return Err(EngineError::network(format!(
                    "{what}: no region {missing:?}"
                )));
            };
            if p.delay < 1 {
                return Err(EngineError::network(format!(
                    "{what}: delay must be >= 1 step, got {}",
                    p.delay
                )));
            }
            p.validate_rule(
                &what,
                self.regions[self.region_index(&p.source).unwrap_or(0)].n,
                self.regions[t].n,
            )?;
            p.validate_weights(&what, self.regions[t].model.is_integer())?;
        }
        Ok(())
    }
}

impl RegionSpec {
    fn validate(&self) -> Result<(), EngineError> {
        let name = &self.name;
        if self.n == 0 || self.n > u32::MAX as usize {
            return Err(EngineError::network(format!(
                "region {name:?}: n must be in 1..=4294967295, got {}",
                self.n
            )));
        }
        let d = self.drive;
        if !(d.rate.is_finite() && (0.0..=1.0).contains(&d.rate)) {
            return Err(EngineError::network(format!(
                "region {name:?}: drive.rate must be in [0, 1], got {}",
                d.rate
            )));
        }
        let weight_ok = if self.model.is_integer() {
            integer_in(d.weight, f64::from(i32::MIN), f64::from(i32::MAX))
        } else {
            d.weight.is_finite()
        };
        if !weight_ok {
            return Err(EngineError::network(format!(
                "region {name:?}: drive.weight must be {} for a {} region, got {}",
                if self.model.is_integer() {
                    "an int32 integer"
                } else {
                    "finite"
                },
                self.model.kind(),
                d.weight
            )));
        }
        let bad = |e: crate::kernels::KernelError| {
            EngineError::network(format!("region {name:?}: model parameter {e}"))
        };
        match &self.model {
            ModelSpec::LifInt(_) => {}
            ModelSpec::LifFloat(m) => {
                m.propagators().map_err(bad)?;
            }
            ModelSpec::Izhikevich(m) => {
                IzhikevichParams {
                    dt: m.dt,
                    v_peak: m.v_peak,
                }
                .validate()
                .map_err(bad)?;
                for (k, x) in [
                    ("a", m.a),
                    ("b", m.b),
                    ("c", m.c),
                    ("d", m.d),
                    ("i_e", m.i_e),
                ] {
                    if !x.is_finite() {
                        return Err(EngineError::network(format!(
                            "region {name:?}: model parameter {k} must be finite, got {x}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

impl ProjectionSpec {
    fn validate_rule(&self, what: &str, n_pre: usize, n_post: usize) -> Result<(), EngineError> {
        match &self.rule {
            RuleSpec::FixedFanOut { fan_out } => {
                if (n_pre as u128) * (*fan_out as u128) > (1u128 << 40) {
                    return Err(EngineError::network(format!(
                        "{what}: fan_out {fan_out} makes too many synapses"
                    )));
                }
            }
            RuleSpec::FixedProbability { p } => {
                if !(p.is_finite() && (0.0..=1.0).contains(p)) {
                    return Err(EngineError::network(format!(
                        "{what}: rule.p must be in [0, 1], got {p}"
                    )));
                }
            }
            RuleSpec::Csr { indptr, indices } => {
                if indptr.len() != n_pre + 1 {
                    return Err(EngineError::network(format!(
                        "{what}: rule.indptr must have n_source + 1 = {} entries, got {}",
                        n_pre + 1,
                        indptr.len()
                    )));
                }
                if indptr[0] != 0 || indptr.windows(2).any(|w| w[1] < w[0]) {
                    return Err(EngineError::network(format!(
                        "{what}: rule.indptr must start at 0 and never decrease"
                    )));
                }
                if indptr[n_pre] != indices.len() as u64 {
                    return Err(EngineError::network(format!(
                        "{what}: rule.indptr ends at {}, but rule.indices has {} entries",
                        indptr[n_pre],
                        indices.len()
                    )));
                }
                if let Some(k) = indices.iter().position(|&c| c as usize >= n_post) {
                    return Err(EngineError::network(format!(
                        "{what}: rule.indices[{k}] = {} is not below the target's n = {n_post}",
                        indices[k]
                    )));
                }
            }
        }
        Ok(())
    }

    fn validate_weights(&self, what: &str, integer: bool) -> Result<(), EngineError> {
        let (lo, hi) = (f64::from(i16::MIN), f64::from(i16::MAX));
        let ok = |x: f64| {
            if integer {
                integer_in(x, lo, hi)
            } else {
                x.is_finite()
            }
        };
        let expected = if integer {
            "int16 integers (the target is an integer LIF region)"
        } else {
            "finite numbers"
        };
        let bad = match &self.weights {
            WeightSpec::Constant { value } => {
                (!ok(*value)).then(|| format!("weights.value = {value}"))
            }
            WeightSpec::Uniform { low, high } => {
                if !ok(*low) || !ok(*high) {
                    Some(format!("weights.low = {low}, weights.high = {high}"))
                } else if low > high {
                    return Err(EngineError::network(format!(
                        "{what}: weights.low {low} is above weights.high {high}"
                    )));
                } else {
                    None
                }
            }
            WeightSpec::Array { values } => values
                .iter()
                .position(|&x| !ok(x))
                .map(|k| format!("weights.values[{k}] = {}", values[k])),
        };
        match bad {
            Some(b) => Err(EngineError::network(format!(
                "{what}: {b}: weights must be {expected}"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> NetworkSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_come_from_the_kernels() {
        let net = parse(r#"{"regions": [{"name": "a", "n": 3}]}"#);
        assert_eq!(
            net.regions[0].model,
            ModelSpec::LifInt(LifIntSpec::default())
        );
        assert_eq!(LifIntSpec::default().params(), LifIntParams::default());
        assert_eq!(IzhikevichSpec::default().a, 0.02);
        let net = parse(
            r#"{"regions": [{"name": "a", "n": 3, "model": {"kind": "izhikevich", "d": 2.0}}]}"#,
        );
        let ModelSpec::Izhikevich(m) = net.regions[0].model else {
            panic!()
        };
        assert_eq!((m.a, m.d), (0.02, 2.0));
        net.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<NetworkSpec>(
            r#"{"regions": [{"name": "a", "n": 3, "model": {"kind": "lif_int", "leek": 1}}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("leek"), "{e}");
        assert!(serde_json::from_str::<NetworkSpec>(r#"{"regions": [], "sed": 1}"#).is_err());
    }

    fn with_projection(target_model: &str, rule: &str, weights: &str, delay: u32) -> NetworkSpec {
        parse(&format!(
            r#"{{"regions": [{{"name": "a", "n": 4}}, {{"name": "b", "n": 3, "model": {{"kind": "{target_model}"}}}}],
                "projections": [{{"source": "a", "target": "b", "rule": {rule}, "weights": {weights}, "delay": {delay}}}]}}"#
        ))
    }

    #[test]
    fn validation_names_what_is_wrong() {
        const FAN_OUT_2: &str = r#"{"kind": "fixed_fan_out", "fan_out": 2}"#;
        const ONE: &str = r#"{"kind": "constant", "value": 1}"#;
        // (target model, rule, weights, delay, what the error names)
        #[rustfmt::skip]
        let cases = [
            ("lif_int", FAN_OUT_2, r#"{"kind": "constant", "value": 1.5}"#, 1, "weights.value = 1.5"),
            ("lif_int", FAN_OUT_2, r#"{"kind": "constant", "value": 40000}"#, 1, "int16"),
            ("lif_float", FAN_OUT_2, r#"{"kind": "uniform", "low": 2, "high": 1}"#, 1, "weights.low"),
            ("lif_float", r#"{"kind": "fixed_probability", "p": 1.5}"#, ONE, 1, "rule.p"),
            ("lif_float", FAN_OUT_2, ONE, 0, "delay"),
            ("lif_float", r#"{"kind": "csr", "indptr": [0, 1, 1, 1], "indices": [0]}"#, ONE, 1, "n_source + 1"),
            ("lif_float", r#"{"kind": "csr", "indptr": [0, 1, 1, 1, 1], "indices": [3]}"#, ONE, 1, "rule.indices[0] = 3"),
            ("lif_float", r#"{"kind": "csr", "indptr": [0, 1, 1, 1, 2], "indices": [0]}"#, ONE, 1, "ends at 2"),
        ]
        .map(|(model, rule, weights, delay, needle)| {
            (with_projection(model, rule, weights, delay), needle)
        });
        for (net, needle) in cases {
            let e = net.validate().unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("a->b"),
                "{e} lacks {needle}"
            );
        }
        let valid = || with_projection("lif_int", FAN_OUT_2, ONE, 1);
        valid().validate().unwrap();
        type Change = fn(&mut NetworkSpec);
        let changes: [(Change, &str); 6] = [
            (
                |net| net.projections[0].target = "c".into(),
                "no region \"c\"",
            ),
            (|net| net.regions[1].name = "a".into(), "used twice"),
            (|net| net.regions[1].name = "a b".into(), "letters"),
            (|net| net.regions[0].drive.rate = 2.0, "drive.rate"),
            (
                |net| {
                    net.regions[0].drive = DriveSpec {
                        rate: 0.1,
                        weight: 0.5,
                    }
                },
                "drive.weight",
            ),
            (|net| net.regions[0].n = 0, "n must be"),
        ];
        for (change, needle) in changes {
            let mut net = valid();
            change(&mut net);
            let e = net.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
    }
}
