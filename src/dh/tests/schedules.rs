//! Randomized schedules, replayable from their seed: drops, duplicates, reordering,
//! concurrent rekeys, restarts and injected forgeries and replays, each followed by a
//! calm period after which both directions must work within a bounded time. After every
//! injected message the target's state must be unchanged (nothing unauthenticated
//! changes state).

use super::sim::*;

/// Schedules per run: thousands, as the CI time allows (each is a few simulated
/// minutes at most; `EVOSPIKENET_SCHEDULES` raises it for a longer search).
fn schedules() -> u64 {
    std::env::var("EVOSPIKENET_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// The bound within which a calm network must have both directions working again.
const RECOVERY_MS: u64 = 12_000;

fn run_schedule(seed: u64) {
    let auth = match seed % 3 {
        0 => Auth::Psk,
        1 => Auth::Pins,
        _ => Auth::PskAndPins,
    };
    let mut sim = Sim::new(&["node-1", "node-2"], auth, seed);
    sim.faults = Faults {
        drop: sim.rng.below(400),
        duplicate: sim.rng.below(300),
        max_delay: sim.rng.below(300),
    };
    let steps = 10 + sim.rng.below(30);
    for _ in 0..steps {
        match sim.rng.below(10) {
            0 | 1 => {
                sim.rekey(0);
                sim.rekey(1); // at the same moment
            }
            2 => sim.rekey(0),
            3 => sim.rekey(1),
            4 if !sim.delivered.is_empty() => {
                // A replay of anything delivered before.
                let k = sim.rng.below(sim.delivered.len() as u64) as usize;
                let (to, bytes) = sim.delivered[k].clone();
                check_inert(&mut sim, to, &bytes, seed);
            }
            5 if !sim.sent.is_empty() => {
                // A tampered copy of something sent.
                let k = sim.rng.below(sim.sent.len() as u64) as usize;
                let (to, mut bytes) = sim.sent[k].clone();
                let at = sim.rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << sim.rng.below(8);
                check_inert(&mut sim, to, &bytes, seed);
            }
            6 if sim.rng.chance(200) => {
                let i = sim.rng.below(2) as usize;
                let s = restart_settings(&sim, i, auth);
                sim.restart(i, s);
                sim.presence(i, 1 - i, true);
            }
            _ => {}
        }
        let pause = sim.rng.below(400);
        sim.run(pause);
    }
    sim.faults = Faults::default();
    assert!(
        sim.settle(RECOVERY_MS).is_some(),
        "seed {seed} ({auth:?}): no recovery within {RECOVERY_MS} ms"
    );
}

/// A message the recipient must not act on beyond counting it: a replay or a forgery
/// leaves its channels, its sealing key and the keys it holds as they were.
fn check_inert(sim: &mut Sim, to: usize, bytes: &[u8], seed: u64) {
    let peer = sim.nodes[1 - to].id.clone();
    let before = (
        sim.nodes[to].m.channel_ids(&peer),
        sim.nodes[to].sealing,
        sim.nodes[to].held.clone(),
    );
    let kinds = sim.deliver(to, bytes);
    assert!(
        kinds.iter().all(|k| k == "failure"),
        "seed {seed}: an injected message caused {kinds:?}"
    );
    let after = (
        sim.nodes[to].m.channel_ids(&peer),
        sim.nodes[to].sealing,
        sim.nodes[to].held.clone(),
    );
    assert!(
        before == after,
        "seed {seed}: an injected message changed state"
    );
}

fn restart_settings(sim: &Sim, i: usize, auth: Auth) -> crate::dh::machine::Settings {
    // The restarted node keeps its identity: rebuild its settings from the machine's.
    let id = sim.nodes[i].id.clone();
    let (identity, trusted) = sim.nodes[i].m.identity_and_pins();
    let _ = auth;
    settings(&id, true, identity, trusted)
}

#[test]
fn thousands_of_random_schedules_recover_both_directions() {
    let n = schedules();
    for seed in 0..n {
        run_schedule(seed);
    }
    println!("{n} schedules recovered");
}
