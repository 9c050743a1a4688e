//! The engine's step without Python: ns per unit of work (a neuron update or a synaptic
//! event) and steps/s, three runs after a 50-step warm-up, connectivity built outside
//! the clock.
//!
//!     cargo run --release --no-default-features --example engine_step -- [NETWORK] [N] [STEPS] [SHARDS]
//!
//! NETWORK is `target1` (the default: one region of N = 10^5 integer LIF neurons, 100
//! synapses each, about 0.2% spikes per step, as in `engine_bench.py`'s target 1) or
//! `brain` (`default_brain(N)`: three regions of N neurons). SHARDS cuts each region
//! into that many shards (by default, as many as rayon has threads for large networks).
use std::time::{Duration, Instant};

use evospikenet::engine::spec::*;
use evospikenet::engine::Engine;

fn lif_region(name: &str, n: usize, rate: f64) -> RegionSpec {
    RegionSpec {
        name: name.into(),
        n,
        model: ModelSpec::LifInt(LifIntSpec::default()),
        drive: DriveSpec {
            rate,
            weight: 600.0,
        },
    }
}

fn fan(source: &str, target: &str, k: usize, w: (f64, f64), delay: u32) -> ProjectionSpec {
    ProjectionSpec {
        source: source.into(),
        target: target.into(),
        rule: RuleSpec::FixedFanOut { fan_out: k },
        weights: WeightSpec::Uniform {
            low: w.0,
            high: w.1,
        },
        delay,
    }
}

fn target1(n: usize) -> NetworkSpec {
    NetworkSpec {
        seed: 0,
        regions: vec![lif_region("r", n, 0.024)],
        projections: vec![fan("r", "r", 100, (0.0, 24.0), 1)],
    }
}

/// `evospikenet.brain.default_brain(n)`.
fn brain(n: usize) -> NetworkSpec {
    let names = ["visual", "pfc", "motor"];
    let w = (20.0, 120.0);
    let mut projections: Vec<_> = names.iter().map(|r| fan(r, r, 10, w, 1)).collect();
    projections.push(fan("visual", "pfc", 10, w, 1));
    projections.push(fan("pfc", "motor", 10, w, 1));
    projections.push(fan("motor", "pfc", 10, (10.0, 60.0), 2));
    NetworkSpec {
        seed: 0,
        regions: names.iter().map(|r| lif_region(r, n, 0.05)).collect(),
        projections,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| args.get(i).map_or(default, |s| s.parse().unwrap());
    let (n, steps) = (arg(1, 100_000), arg(2, 3000) as u64);
    let shards = args.get(3).map(|s| s.parse::<usize>().unwrap());
    let spec = match args.first().map_or("target1", String::as_str) {
        "target1" => target1(n),
        "brain" => brain(n),
        other => panic!("unknown network {other:?}: target1 or brain"),
    };
    for _ in 0..3 {
        let mut e = match shards {
            Some(k) => Engine::with_shards(spec.clone(), None, k).unwrap(),
            None => Engine::new(spec.clone(), None).unwrap(),
        };
        e.run(50, Duration::from_secs(1), |_| true).unwrap();
        let b = e.stats();
        let t0 = Instant::now();
        e.run(steps, Duration::from_secs(1), |_| true).unwrap();
        let dt = t0.elapsed().as_secs_f64();
        let a = e.stats();
        let units = (a.updates - b.updates) + (a.events - b.events);
        println!(
            "{:.3} ns/unit  {:.0} steps/s  spikes/neuron/step {:.4}  events/step {:.0}",
            dt / units as f64 * 1e9,
            steps as f64 / dt,
            (a.spikes - b.spikes) as f64 / (a.updates - b.updates) as f64,
            (a.events - b.events) as f64 / steps as f64
        );
    }
}
