//! A simulated network for the key manager: nodes are bare `Machine`s, the wire is a
//! queue the test controls (drops, duplicates, reordering, delays), time is a number.
//! What a node's driver would install is recorded, so a test can ask whether a message
//! sealed by one node would open at another.

use std::collections::HashMap;
use std::sync::Arc;

use crate::crypto::handshake::IdentityKey;
use crate::crypto::keys::Psk;
use crate::crypto::session::KeyRing;
use crate::dh::machine::{Action, Machine, Settings};
use crate::dh::timers::Now;

pub const PSK: &str = "8f1a7b3c9d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
pub const WALL_START: u64 = 1_800_000_000_000;
pub const TICK: u64 = 10;

/// A small deterministic generator (xorshift64*): schedules replay from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// How the wire misbehaves (per mille, and the largest extra delay in ms).
#[derive(Clone, Copy, Default)]
pub struct Faults {
    pub drop: u64,
    pub duplicate: u64,
    pub max_delay: u64,
}

/// How nodes authenticate first contact.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Auth {
    Psk,
    Pins,
    PskAndPins,
    Manual,
}

pub struct Node {
    pub id: String,
    pub m: Machine,
    pub keys: Arc<KeyRing>,
    /// Sender keys held, by peer (what `GroupKeys` would hold).
    pub held: HashMap<String, Vec<[u8; 16]>>,
    /// The sender key this node seals with.
    pub sealing: Option<[u8; 16]>,
    pub rekeys_done: usize,
    pub failures: usize,
    pub identity_public: Option<[u8; 32]>,
}

pub struct Packet {
    pub to: usize,
    pub bytes: Vec<u8>,
    pub at: u64,
}

pub struct Sim {
    pub nodes: Vec<Node>,
    pub wire: Vec<Packet>,
    pub now: Now,
    pub rng: Rng,
    pub faults: Faults,
    /// Every packet ever sent (recipient, bytes), and every one delivered: what an
    /// attacker can replay.
    pub sent: Vec<(usize, Vec<u8>)>,
    pub delivered: Vec<(usize, Vec<u8>)>,
    /// Messages sent to ids no node has (fake peers).
    pub sent_nowhere: usize,
}

pub fn settings(
    id: &str,
    auto: bool,
    identity: Option<IdentityKey>,
    trusted: Vec<(String, String)>,
) -> Settings {
    Settings {
        node_id: id.to_owned(),
        auto,
        identity,
        trusted,
        rekey_after_ms: u64::MAX / 4,
        init_freshness_ms: 60_000,
    }
}

impl Sim {
    /// Nodes `ids`, authenticated as `auth`; in automatic modes each sees the others'
    /// presence at once.
    pub fn new(ids: &[&str], auth: Auth, seed: u64) -> Sim {
        let identities: Vec<IdentityKey> = ids.iter().map(|_| IdentityKey::generate()).collect();
        let pins = matches!(auth, Auth::Pins | Auth::PskAndPins);
        let with_psk = matches!(auth, Auth::Psk | Auth::PskAndPins | Auth::Manual);
        let now = Now {
            ms: 0,
            wall_ms: WALL_START,
        };
        let mut sim = Sim {
            nodes: Vec::new(),
            wire: Vec::new(),
            now,
            rng: Rng::new(seed),
            faults: Faults::default(),
            sent: Vec::new(),
            delivered: Vec::new(),
            sent_nowhere: 0,
        };
        for (i, id) in ids.iter().enumerate() {
            let trusted = if pins {
                ids.iter()
                    .zip(&identities)
                    .filter(|(other, _)| *other != id)
                    .map(|(other, k)| (other.to_string(), k.fingerprint()))
                    .collect()
            } else {
                Vec::new()
            };
            let identity = pins.then(|| identities[i].clone());
            let keys = Arc::new(KeyRing::new(with_psk.then(|| Psk::from_hex(PSK).unwrap())));
            let s = settings(id, auth != Auth::Manual, identity, trusted);
            sim.add(Node {
                id: id.to_string(),
                m: Machine::new(s, keys.clone(), now),
                keys,
                held: HashMap::new(),
                sealing: None,
                rekeys_done: 0,
                failures: 0,
                identity_public: pins.then(|| identities[i].public_key()),
            });
        }
        if auth != Auth::Manual {
            for i in 0..sim.nodes.len() {
                for j in 0..sim.nodes.len() {
                    if i != j {
                        sim.presence(i, j, true);
                    }
                }
            }
        }
        sim
    }

    fn add(&mut self, node: Node) {
        // The machine's construction actions (automatic mode draws its sender key).
        self.nodes.push(node);
        let i = self.nodes.len() - 1;
        let first = self.nodes[i].m.poll(self.now);
        self.apply(i, first);
    }

    pub fn index(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("known node")
    }

    /// `i` learns that `j` is present (or gone).
    pub fn presence(&mut self, i: usize, j: usize, alive: bool) {
        let (id, key) = (self.nodes[j].id.clone(), self.nodes[j].identity_public);
        let now = self.now;
        let actions = self.nodes[i].m.presence(&id, alive, key, now);
        self.apply(i, actions);
    }

    /// Replace node `i` by a fresh instance with the same settings (a restart).
    pub fn restart(&mut self, i: usize, s: Settings) {
        let keys = self.nodes[i].keys.clone();
        let m = Machine::new(s, keys, self.now);
        self.nodes[i].m = m;
        self.nodes[i].held.clear();
        self.nodes[i].sealing = None;
        let first = self.nodes[i].m.poll(self.now);
        self.apply(i, first);
    }

    /// Carry out node `i`'s actions: sends go on the wire (through the faults).
    pub fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, bytes } => {
                    let Some(j) = self.nodes.iter().position(|n| n.id == to) else {
                        self.sent_nowhere += 1;
                        continue;
                    };
                    self.sent.push((j, bytes.clone()));
                    if self.rng.chance(self.faults.drop) {
                        continue;
                    }
                    let copies = if self.rng.chance(self.faults.duplicate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let at = self.now.ms + 1 + self.rng.below(self.faults.max_delay + 1);
                        self.wire.push(Packet {
                            to: j,
                            bytes: bytes.clone(),
                            at,
                        });
                    }
                }
                Action::InstallSenderKey { peer, handover } => {
                    let id = handover.secret.session_id;
                    let held = self.nodes[i].held.entry(peer).or_default();
                    if !held.contains(&id) {
                        held.push(id);
                    }
                    if held.len() > 4 {
                        held.remove(0);
                    }
                }
                Action::UseSenderKey(secret) => self.nodes[i].sealing = Some(secret.session_id),
                Action::RetireSender(peer) => {
                    self.nodes[i].held.remove(&peer);
                }
                Action::RekeyDone { .. } => self.nodes[i].rekeys_done += 1,
                Action::Failure(_) => self.nodes[i].failures += 1,
                Action::Established { .. } | Action::AuthKey { .. } => {}
            }
        }
    }

    /// Hand one message to node `i` (from the wire, or injected by an attacker).
    pub fn deliver(&mut self, i: usize, bytes: &[u8]) -> Vec<String> {
        let now = self.now;
        let actions = self.nodes[i].m.on_message(bytes, now);
        let kinds = actions.iter().map(kind).collect();
        self.apply(i, actions);
        kinds
    }

    /// Advance `ms` of simulated time: deliver what is due (in random order among the
    /// due packets) and poll every node each tick.
    pub fn run(&mut self, ms: u64) {
        let end = self.now.ms + ms;
        while self.now.ms < end {
            self.now = self.now.plus(TICK.min(end - self.now.ms));
            let t = self.now.ms;
            let mut due: Vec<Packet> = Vec::new();
            let mut i = 0;
            while i < self.wire.len() {
                if self.wire[i].at <= t {
                    due.push(self.wire.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            while !due.is_empty() {
                let k = self.rng.below(due.len() as u64) as usize;
                let p = due.swap_remove(k);
                self.deliver(p.to, &p.bytes);
                self.delivered.push((p.to, p.bytes));
            }
            for n in 0..self.nodes.len() {
                let now = self.now;
                let actions = self.nodes[n].m.poll(now);
                self.apply(n, actions);
            }
        }
    }

    /// Start a rekey at node `i` now.
    pub fn rekey(&mut self, i: usize) {
        let now = self.now;
        let actions = self.nodes[i].m.start_rekey(now);
        self.apply(i, actions);
    }

    /// Whether what `a` seals now would open at `b`.
    pub fn delivers(&self, a: usize, b: usize) -> bool {
        let sealing = self.nodes[a].sealing;
        sealing.is_some()
            && self.nodes[b]
                .held
                .get(&self.nodes[a].id)
                .is_some_and(|h| h.contains(&sealing.unwrap()))
    }

    /// Every pair delivers both ways and reports an established session.
    pub fn all_connected(&self) -> bool {
        (0..self.nodes.len()).all(|a| {
            (0..self.nodes.len()).all(|b| {
                a == b || (self.delivers(a, b) && self.nodes[a].m.established(&self.nodes[b].id))
            })
        })
    }

    /// Run in steps of 50 ms until `all_connected`, for at most `ms`; returns the time taken.
    pub fn settle(&mut self, ms: u64) -> Option<u64> {
        let start = self.now.ms;
        while self.now.ms - start <= ms {
            if self.all_connected() && self.wire.is_empty() {
                return Some(self.now.ms - start);
            }
            self.run(50);
        }
        None
    }
}

/// An action's kind, for assertions about what a message caused.
pub fn kind(a: &Action) -> String {
    match a {
        Action::Send { .. } => "send",
        Action::InstallSenderKey { .. } => "install",
        Action::UseSenderKey(_) => "use",
        Action::RetireSender(_) => "retire",
        Action::Established { .. } => "established",
        Action::Failure(_) => "failure",
        Action::RekeyDone { .. } => "rekey-done",
        Action::AuthKey { .. } => "auth-key",
    }
    .to_owned()
}
