//! The engine against reference definitions, and determinism across partitions.

use std::time::Duration;

use super::connect::Synapses;
use super::rng::{Domain, Stream, DRIVE_BLOCK};
use super::spec::*;
use super::{Engine, EngineError};

fn region(name: &str, n: usize, model: ModelSpec, rate: f64, weight: f64) -> RegionSpec {
    RegionSpec {
        name: name.into(),
        n,
        model,
        drive: DriveSpec { rate, weight },
    }
}

fn projection(s: &str, t: &str, rule: RuleSpec, weights: WeightSpec, delay: u32) -> ProjectionSpec {
    ProjectionSpec {
        source: s.into(),
        target: t.into(),
        rule,
        weights,
        delay,
    }
}

fn fan(k: usize) -> RuleSpec {
    RuleSpec::FixedFanOut { fan_out: k }
}

fn uniform(low: f64, high: f64) -> WeightSpec {
    WeightSpec::Uniform { low, high }
}

/// Three regions, one per model, with recurrence, feedback and delays 1 to 3.
fn mixed(n: usize) -> NetworkSpec {
    NetworkSpec {
        seed: 42,
        regions: vec![
            region(
                "a",
                n,
                ModelSpec::LifInt(LifIntSpec::default()),
                0.05,
                600.0,
            ),
            region(
                "b",
                n + 7,
                ModelSpec::LifFloat(LifFloatSpec::default()),
                0.05,
                900.0,
            ),
            region(
                "c",
                n / 2 + 3,
                ModelSpec::Izhikevich(IzhikevichSpec::default()),
                0.1,
                12.0,
            ),
        ],
        projections: vec![
            projection("a", "a", fan(10), uniform(20.0, 120.0), 1),
            projection(
                "b",
                "b",
                RuleSpec::FixedProbability { p: 0.01 },
                uniform(-50.0, 200.0),
                1,
            ),
            projection("a", "b", fan(8), WeightSpec::Constant { value: 150.0 }, 2),
            projection("b", "c", fan(5), uniform(0.0, 6.0), 1),
            projection("c", "a", fan(6), uniform(100.0, 300.0), 3),
            projection("c", "b", fan(4), uniform(100.0, 300.0), 1),
        ],
    }
}

/// Runs `groups` as separate engines in lock step, each given the others' spikes;
/// returns every region's spikes per step.
fn run_partitioned(spec: &NetworkSpec, groups: &[&[&str]], steps: u64) -> Vec<Vec<Vec<u32>>> {
    let mut engines: Vec<Engine> = groups
        .iter()
        .map(|g| {
            let names: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            Engine::new(spec.clone(), Some(&names)).unwrap()
        })
        .collect();
    let mut raster: Vec<Vec<Vec<u32>>> = vec![Vec::new(); spec.regions.len()];
    for t in 0..steps {
        for e in engines.iter_mut() {
            for (region, s) in e.needed(t) {
                let spikes = raster[region][s as usize].clone();
                e.set_remote(region, s, &spikes).unwrap();
            }
        }
        for e in engines.iter_mut() {
            e.step().unwrap();
        }
        for e in &engines {
            for (k, name) in e.local_regions().iter().enumerate() {
                let i = spec.region_index(name).unwrap();
                raster[i].push(e.last_spikes(k).to_vec());
            }
        }
    }
    raster
}

#[test]
fn every_partition_gives_the_same_spikes_in_every_model() {
    let spec = mixed(400);
    let steps = 150;
    let whole = run_partitioned(&spec, &[&["a", "b", "c"]], steps);
    for (i, r) in whole.iter().enumerate() {
        let total: usize = r.iter().map(Vec::len).sum();
        assert!(total > 50, "region {i} barely fires ({total} spikes)");
        assert!(r[50..].iter().any(|s| !s.is_empty()));
    }
    for groups in [
        &[&["a"][..], &["b", "c"][..]][..],
        &[&["c"][..], &["a"][..], &["b"][..]][..],
        &[&["a", "c"][..], &["b"][..]][..],
    ] {
        assert_eq!(run_partitioned(&spec, groups, steps), whole, "{groups:?}");
    }
    let mut other = spec.clone();
    other.seed += 1;
    assert_ne!(run_partitioned(&other, &[&["a", "b", "c"]], steps), whole);
}

#[test]
fn regions_stepped_in_parallel_match_one_engine_per_region() {
    // Large enough that the whole-network engine steps its regions on rayon's pool.
    let spec = mixed(30_000);
    let engine = Engine::new(spec.clone(), None).unwrap();
    assert!(engine.parallel);
    // Small networks step serially: waking a pool thread would cost more than the step.
    for shards in [1, 2] {
        let small = Engine::with_shards(mixed(1000), None, shards).unwrap();
        assert!(!small.parallel, "{shards} shards");
    }
    let steps = 12;
    assert_eq!(
        run_partitioned(&spec, &[&["a", "b", "c"]], steps),
        run_partitioned(&spec, &[&["a"], &["b"], &["c"]], steps)
    );
}

/// The integer LIF step as `LIFNeuronLayer` defines it, over dense loops, with the
/// drive and synapses taken from the same streams as the engine.
#[test]
fn integer_lif_region_matches_the_reference_definition() {
    for (n, shards) in [(300, 1), (2 * DRIVE_BLOCK + 300, 3)] {
        integer_lif_reference(n, shards);
    }
}

fn integer_lif_reference(n: usize, shards: usize) {
    let p = LifIntSpec {
        leak: 230,
        threshold: 1024,
        reset: -5,
    };
    let spec = NetworkSpec {
        seed: 3,
        regions: vec![region("r", n, ModelSpec::LifInt(p), 0.05, 600.0)],
        projections: vec![projection("r", "r", fan(10), uniform(-100.0, 300.0), 1)],
    };
    let syn = Synapses::build(3, 0, &spec.projections[0], n, n, true).unwrap();
    let super::connect::Weights::I16(w) = &syn.weights else {
        panic!()
    };
    let mut engine = Engine::with_shards(spec, None, shards).unwrap();
    let mut v = vec![0i64; n];
    let mut last: Vec<u32> = Vec::new();
    let mut fired = 0;
    for t in 0..200u64 {
        let mut i = vec![0i64; n];
        for (block, start) in (0..n).step_by(DRIVE_BLOCK).enumerate() {
            let len = (n - start).min(DRIVE_BLOCK) as u64;
            let mut drive = Stream::drive(3, 0, block as u64, t);
            drive.bernoulli_positions(len, 0.05, |k| i[start + k as usize] += 600);
        }
        for &s in &last {
            for k in syn.indptr[s as usize]..syn.indptr[s as usize + 1] {
                i[syn.indices[k] as usize] += i64::from(w[k]);
            }
        }
        let mut spikes = Vec::new();
        for k in 0..n {
            let x = (v[k] * 230).div_euclid(256) + i[k];
            let x = x.clamp(-32768, 32767);
            if x >= 1024 {
                spikes.push(k as u32);
                v[k] = -5;
            } else {
                v[k] = x;
            }
        }
        engine.step().unwrap();
        assert_eq!(engine.last_spikes(0), &spikes[..], "step {t}");
        fired += spikes.len();
        last = spikes;
    }
    assert!(fired > 100);
}

/// Izhikevich (2003) with forward Euler in the documented expression order.
#[test]
fn izhikevich_region_matches_the_reference_definition() {
    let n = 200;
    let m = IzhikevichSpec {
        i_e: 3.0,
        ..IzhikevichSpec::default()
    };
    let spec = NetworkSpec {
        seed: 9,
        regions: vec![region("r", n, ModelSpec::Izhikevich(m), 0.2, 15.0)],
        projections: vec![],
    };
    let mut engine = Engine::new(spec, None).unwrap();
    let (mut v, mut u) = (vec![m.c; n], vec![m.b * m.c; n]);
    let mut fired = 0;
    for t in 0..300u64 {
        let mut i = vec![m.i_e; n];
        Stream::new(9, Domain::Drive, 0, t)
            .bernoulli_positions(n as u64, 0.2, |k| i[k as usize] += 15.0);
        let mut spikes = Vec::new();
        for k in 0..n {
            let dv = 0.04 * v[k] * v[k] + 5.0 * v[k] + 140.0 - u[k] + i[k];
            let du = m.a * (m.b * v[k] - u[k]);
            let (v1, u1) = (v[k] + m.dt * dv, u[k] + m.dt * du);
            if v1 >= m.v_peak {
                spikes.push(k as u32);
                (v[k], u[k]) = (m.c, u1 + m.d);
            } else {
                (v[k], u[k]) = (v1, u1);
            }
        }
        engine.step().unwrap();
        assert_eq!(engine.last_spikes(0), &spikes[..], "step {t}");
        fired += spikes.len();
    }
    assert!(fired > 100);
}

#[test]
fn a_spike_takes_exactly_its_delay_to_arrive() {
    let big = ModelSpec::LifInt(LifIntSpec::default());
    let spec = NetworkSpec {
        seed: 0,
        regions: vec![
            region("a", 2, big.clone(), 1.0, 5000.0),
            region("b", 3, big, 0.0, 0.0),
        ],
        projections: vec![projection(
            "a",
            "b",
            RuleSpec::Csr {
                indptr: vec![0, 1, 1],
                indices: vec![2],
            },
            WeightSpec::Constant { value: 2000.0 },
            3,
        )],
    };
    let mut e = Engine::new(spec, None).unwrap();
    e.start_recording();
    e.add_probe("b", vec![2, 0]).unwrap();
    e.run_for(6, Duration::from_secs(60)).unwrap();
    let rec = e.take_recording().unwrap();
    let b = &rec.spikes[1].1;
    assert_eq!(rec.spikes[1].0, "b");
    assert_eq!(rec.spikes[0].1.step(0), &[0, 1]);
    for t in 0..6 {
        let expected: &[u32] = if t >= 3 { &[2] } else { &[] };
        assert_eq!(b.step(t), expected, "step {t}");
    }
    // The probe reads the potential after the step: reset to 0 after each spike.
    assert_eq!(rec.probes[0].values, vec![0.0; 12]);
    assert_eq!(e.stats().steps, 6);
    assert_eq!(e.stats().events, 3);
    // The next record starts where this one ended.
    e.step().unwrap();
    let rec = e.take_recording().unwrap();
    assert_eq!((rec.first_step, rec.spikes[1].1.steps()), (6, 1));
}

#[test]
fn remote_inputs_are_checked_and_required() {
    let spec = mixed(50);
    let mut e = Engine::new(spec, Some(&["b".to_string()])).unwrap();
    assert_eq!(e.needed(0), vec![]);
    e.step().unwrap();
    // Step 1 needs c at 0 (delay 1); a arrives with delay 2.
    assert_eq!(e.needed(1), vec![(2, 0)]);
    match e.step() {
        Err(EngineError::MissingSpikes {
            region,
            source_step,
            step,
        }) => assert_eq!((region.as_str(), source_step, step), ("c", 0, 1)),
        other => panic!("{other:?}"),
    }
    let unsorted = e.set_remote(2, 0, &[3, 1]).unwrap_err().to_string();
    assert!(unsorted.contains("not sorted"), "{unsorted}");
    let range = e.set_remote(2, 0, &[1, 99]).unwrap_err().to_string();
    assert!(range.contains("index 99 is not below n = 28"), "{range}");
    let ahead = e.set_remote(2, 1, &[]).unwrap_err().to_string();
    assert!(ahead.contains("step 1"), "{ahead}");
    let local = e.set_remote(1, 0, &[]).unwrap_err().to_string();
    assert!(local.contains("not a remote input"), "{local}");
    assert!(!e.has_remote(2, 0));
    e.set_remote(2, 0, &[0, 5]).unwrap();
    assert!(e.has_remote(2, 0));
    e.step().unwrap();
    assert_eq!(e.needed(2), vec![(0, 0), (2, 1)]);
    let err = Engine::new(mixed(10), Some(&["zz".to_string()])).unwrap_err();
    assert!(err.to_string().contains("no region \"zz\""));
}

#[test]
fn a_run_calls_its_hook_and_stops_when_told() {
    let mut e = Engine::new(mixed(50), None).unwrap();
    let mut calls = 0;
    let done = e
        .run(100, Duration::ZERO, |eng| {
            calls += 1;
            eng.current_step() < 5
        })
        .unwrap();
    // A zero budget still computes one step per slice.
    assert_eq!((done, calls, e.current_step()), (5, 5, 5));
    let done = e.run(20, Duration::from_secs(60), |_| true).unwrap();
    assert_eq!(done, 20);
    assert!(e.stats().updates == 25 * (50 + 57 + 28));
}

/// Regions of several drive blocks, cut into 1 to 5 shards: the same spikes. One
/// projection has unsorted explicit rows (each shard then filters whole rows).
#[test]
fn spikes_do_not_depend_on_the_number_of_shards() {
    let n = 2 * DRIVE_BLOCK + 1000;
    let mut spec = mixed(n);
    let n_c = spec.regions[2].n;
    let (mut indptr, mut indices) = (vec![0u64], Vec::new());
    for s in 0..n_c as u32 {
        // Descending targets spread over the whole of region a.
        indices.extend([(s * 7919 + 2 * DRIVE_BLOCK as u32 / 3) % n as u32, s % 100]);
        indptr.push(indices.len() as u64);
    }
    spec.projections.push(projection(
        "c",
        "a",
        RuleSpec::Csr { indptr, indices },
        uniform(200.0, 400.0),
        1,
    ));
    let steps = 15;
    let run = |shards: usize| {
        let mut e = Engine::with_shards(spec.clone(), None, shards).unwrap();
        let mut raster = Vec::new();
        for _ in 0..steps {
            e.step().unwrap();
            raster.push(
                (0..3)
                    .map(|k| e.last_spikes(k).to_vec())
                    .collect::<Vec<_>>(),
            );
        }
        (raster, e.stats())
    };
    let (one, stats) = run(1);
    let fired: usize = one.iter().flatten().map(Vec::len).sum();
    assert!(fired > 1000, "{fired} spikes");
    for shards in [2, 3, 5] {
        assert_eq!(run(shards), (one.clone(), stats), "{shards} shards");
    }
}

/// Shard bounds fall on drive blocks, cover the region once and are as even as blocks
/// allow.
#[test]
fn shard_bounds_follow_the_drive_blocks() {
    use super::region::shard_bounds;
    let b = DRIVE_BLOCK;
    assert_eq!(shard_bounds(100, 4), vec![0, 100]);
    assert_eq!(shard_bounds(0, 2), vec![0, 0]);
    assert_eq!(shard_bounds(3 * b, 2), vec![0, b, 3 * b]);
    assert_eq!(shard_bounds(3 * b + 1, 2), vec![0, 2 * b, 3 * b + 1]);
    assert_eq!(shard_bounds(2 * b, 8), vec![0, b, 2 * b]);
}
