//! A node's spike exchange over the encrypted communicator, in Rust: no Python per
//! message or per step.
//!
//! For each projection from a local region to a region of another node, messages on
//! `spikes/{source}/{target}` holding steps and their sorted spike indices in the
//! compact encoding of [`wire`](super::wire) (format `raw`), sealed like every payload; a node that waited [`RESEND_AFTER`] for a step asks the
//! source node's `brain/resend/{node}` service (JSON `{"source", "target", "step"}`),
//! which keeps the last [`RESEND_WINDOW`] steps per destination. Synchronization is
//! conservative: step `t` is computed only once every remote input it needs has
//! arrived; a node that does not deliver within the timeout is named with its region.
//! With a lookahead `L` (the smallest delay among the projections between nodes), the
//! steps of a window of `L` steps go in one message: every input a window needs comes
//! from earlier windows, so nodes never wait on each other's unfinished window.
//! Each node holds a liveliness token `brain/alive/{node}` while its exchange exists:
//! a timeout names the peers whose token is gone (a killed node's goes with its links),
//! since a live peer that does not deliver may only be waiting on one of them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use zenoh::liveliness::LivelinessToken;

use super::error::EngineError;
use super::sim::Engine;
use super::wire;
use crate::codec::Format;
use crate::comm::{Communicator, Message, Service, Subscription};

/// Seconds a node waits for a step's spikes before asking the source node again.
pub const RESEND_AFTER: Duration = Duration::from_secs(1);
/// The topic prefix of the nodes' liveliness tokens.
const ALIVE: &str = "brain/alive/";
/// How long a node waiting for a peer's spikes polls for them before it sleeps. In lock
/// step a wait is about one network latency; a sleeping thread (and, in a VM, a halted
/// core) takes tens of microseconds more to wake than the spikes take to arrive.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(200);

/// How long a timeout waits for the liveliness tokens to answer.
const GONE_CHECK: Duration = Duration::from_millis(500);

/// Steps of outgoing spikes kept per destination, to answer resend requests.
pub const RESEND_WINDOW: usize = 4096;

/// Who runs what, as every node computes it from the same assignment.
#[derive(Clone, Debug)]
pub struct ExchangePlan {
    /// The node of every region, in network order.
    pub owners: Vec<String>,
    /// How long to wait for a peer's spikes.
    pub timeout: Duration,
}

/// Counters of an exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeStats {
    /// Spike messages published.
    pub sent: u64,
    /// Spike messages received and kept.
    pub received: u64,
    /// Copies of a step already received.
    pub duplicates: u64,
    /// Messages that were not `[step, sorted indices]` in uint32.
    pub malformed: u64,
    /// Resend requests made.
    pub resend_requests: u64,
    /// Time spent waiting for peers.
    pub wait: Duration,
}

/// A (source region, target region) pair, by index.
type Pair = (usize, usize);
/// Received spikes of each pair by step.
type Boxes = HashMap<Pair, BTreeMap<u64, Vec<u32>>>;
/// The messages sent on each outgoing pair, last [`RESEND_WINDOW`] steps.
type Sent = Mutex<HashMap<Pair, VecDeque<(u64, Vec<u8>)>>>;

/// Received spikes by (source, target) region and step.
#[derive(Default)]
struct Inbox {
    boxes: Mutex<Boxes>,
    arrived: Condvar,
    /// Steps stored so far: a waiter polls it before taking the lock.
    stored: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    malformed: AtomicU64,
}

impl Inbox {
    fn put(&self, pair: (usize, usize), payload: &[u8]) {
        match wire::decode_all(payload) {
            Some(steps) => {
                self.received.fetch_add(1, Relaxed);
                for (step, spikes) in steps {
                    if !self.store(pair, step, spikes) {
                        self.duplicates.fetch_add(1, Relaxed);
                    }
                }
            }
            None => {
                self.malformed.fetch_add(1, Relaxed);
            }
        }
    }

    fn store(&self, pair: (usize, usize), step: u64, spikes: Vec<u32>) -> bool {
        let mut boxes = self.boxes.lock();
        let b = boxes.entry(pair).or_default();
        if b.contains_key(&step) {
            return false;
        }
        b.insert(step, spikes);
        self.stored.fetch_add(1, Release);
        self.arrived.notify_all();
        true
    }

    /// Takes the spikes of `pair` at `step`, waiting until `until` at most.
    /// First polls for [`POLL_BEFORE_SLEEP`] (yielding the core to any thread that
    /// wants it, such as the one delivering the spikes), then sleeps on the condition.
    fn take(&self, pair: (usize, usize), step: u64, until: Instant) -> Option<Vec<u32>> {
        let poll_until = (Instant::now() + POLL_BEFORE_SLEEP).min(until);
        let mut seen = None;
        while Instant::now() < poll_until {
            let stored = self.stored.load(Acquire);
            if seen != Some(stored) {
                seen = Some(stored);
                let mut boxes = self.boxes.lock();
                if let Some(s) = boxes.get_mut(&pair).and_then(|b| b.remove(&step)) {
                    return Some(s);
                }
            }
            std::thread::yield_now();
        }
        let mut boxes = self.boxes.lock();
        loop {
            if let Some(s) = boxes.get_mut(&pair).and_then(|b| b.remove(&step)) {
                return Some(s);
            }
            if self.arrived.wait_until(&mut boxes, until).timed_out() {
                return boxes.get_mut(&pair).and_then(|b| b.remove(&step));
            }
        }
    }

    fn forget_before(&self, step: u64) {
        for b in self.boxes.lock().values_mut() {
            *b = b.split_off(&step);
        }
    }
}

/// What a step is waiting for, kept across calls of [`Exchange::run_for`].
struct Waiting {
    pair: (usize, usize),
    step: u64,
    since: Instant,
    next_resend: Instant,
}

/// The exchange of one node: its subscriptions, its resend service, what it sent.
pub struct Exchange {
    comm: Arc<Communicator>,
    plan: ExchangePlan,
    names: Vec<String>,
    max_delay: u64,
    inbox: Arc<Inbox>,
    sent: Arc<Sent>,
    outgoing: Vec<(usize, usize)>,
    /// The smallest delay of a projection between this node and another: steps are
    /// sent in windows of this many, one message per window and outgoing pair.
    lookahead: u64,
    /// The window being filled, per outgoing pair.
    pending: Vec<Vec<u8>>,
    /// The (remote source, local target) pair whose messages carry each remote source.
    via: HashMap<usize, (usize, usize)>,
    subscriptions: Vec<Arc<Subscription>>,
    service: Option<Arc<Service>>,
    /// `brain/alive/{node}`, held until close.
    presence: Option<LivelinessToken>,
    waiting: Option<Waiting>,
    stats: ExchangeStats,
    buf: Vec<u8>,
}

impl Exchange {
    /// Subscribes to the spikes `engine`'s regions need from other nodes and serves
    /// resend requests for what it sends them.
    pub fn new(
        comm: Arc<Communicator>,
        engine: &Engine,
        plan: ExchangePlan,
    ) -> Result<Self, EngineError> {
        let spec = engine.spec();
        if plan.owners.len() != spec.regions.len() {
            return Err(EngineError::Argument(format!(
                "owners: expected a node for each of the {} regions, got {}",
                spec.regions.len(),
                plan.owners.len()
            )));
        }
        let me = comm.node_id().to_owned();
        let names: Vec<String> = spec.regions.iter().map(|r| r.name.clone()).collect();
        for name in engine.local_regions() {
            let i = spec.region_index(name).expect("a local region");
            if plan.owners[i] != me {
                return Err(EngineError::Argument(format!(
                    "region {name:?} runs here but the plan gives it to {:?}",
                    plan.owners[i]
                )));
            }
        }
        let mut outgoing = Vec::new();
        let mut incoming = Vec::new();
        // Every node computes the same lookahead: the smallest delay of any projection
        // the partition cuts, so windows line up.
        let mut lookahead = u64::MAX;
        for p in &spec.projections {
            let s = spec.region_index(&p.source).expect("validated");
            let t = spec.region_index(&p.target).expect("validated");
            if plan.owners[s] != plan.owners[t] {
                lookahead = lookahead.min(u64::from(p.delay));
            }
            let (src_here, tgt_here) = (plan.owners[s] == me, plan.owners[t] == me);
            if src_here && !tgt_here {
                outgoing.push((s, t));
            }
            if tgt_here && !src_here {
                incoming.push((s, t));
            }
        }
        outgoing.sort_unstable();
        outgoing.dedup();
        incoming.sort_unstable();
        incoming.dedup();
        let mut via = HashMap::new();
        for &(s, t) in incoming.iter().rev() {
            via.insert(s, (s, t));
        }
        let inbox = Arc::new(Inbox::default());
        let transport = |e: crate::error::Error| EngineError::Argument(e.to_string());
        let mut subscriptions = Vec::new();
        for &(s, t) in &incoming {
            let inbox = inbox.clone();
            let topic = format!("spikes/{}/{}", names[s], names[t]);
            let sub = comm
                .subscribe(&topic, move |m: Message| {
                    if m.format == Format::Raw {
                        inbox.put((s, t), &m.payload);
                    } else {
                        inbox.malformed.fetch_add(1, Relaxed);
                    }
                })
                .map_err(transport)?;
            subscriptions.push(sub);
        }
        let sent: Arc<Sent> = Arc::new(Mutex::new(
            outgoing.iter().map(|&p| (p, VecDeque::new())).collect(),
        ));
        let service = {
            let sent = sent.clone();
            let names = names.clone();
            comm.serve(&format!("brain/resend/{me}"), move |m, responder| {
                let stored = resend_lookup(&names, &sent, &m);
                // An empty reply: the step is no longer kept.
                let _ = responder.reply_with(Format::Raw, 64, |buf| {
                    buf.extend_from_slice(stored.as_deref().unwrap_or_default());
                    Ok(())
                });
            })
            .map_err(transport)?
        };
        let presence = comm
            .key_expr(&format!("{ALIVE}{me}"), false)
            .and_then(|key| comm.transport().liveliness_token(&key))
            .map_err(transport)?;
        Ok(Self {
            presence: Some(presence),
            comm,
            plan,
            names,
            max_delay: u64::from(spec.max_delay()),
            inbox,
            sent,
            pending: vec![Vec::new(); outgoing.len()],
            outgoing,
            lookahead: if lookahead == u64::MAX { 1 } else { lookahead },
            via,
            subscriptions,
            service: Some(service),
            waiting: None,
            stats: ExchangeStats::default(),
            buf: Vec::new(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> ExchangeStats {
        ExchangeStats {
            received: self.inbox.received.load(Relaxed),
            duplicates: self.inbox.duplicates.load(Relaxed),
            malformed: self.inbox.malformed.load(Relaxed),
            ..self.stats
        }
    }

    /// Computes up to `steps` steps of `engine`, receiving and sending spikes; returns
    /// early once `budget` has passed (also while waiting for a peer), with the number
    /// of steps computed. A call that returned while waiting resumes the wait.
    pub fn run_for(
        &mut self,
        engine: &mut Engine,
        steps: u64,
        budget: Duration,
    ) -> Result<u64, EngineError> {
        let end = Instant::now() + budget;
        let mut done = 0;
        while done < steps {
            if done > 0 && Instant::now() >= end {
                break;
            }
            let t = engine.current_step();
            let mut complete = true;
            for (src, s) in engine.needed(t) {
                if engine.has_remote(src, s) {
                    continue; // taken in an earlier call that ran out of time
                }
                let pair = self.via[&src];
                match self.receive(pair, s, end)? {
                    Some(spikes) => engine.set_remote(src, s, &spikes)?,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if !complete {
                break; // out of time: the caller looks at signals and comes back
            }
            engine.step()?;
            self.publish(engine, t)?;
            if t % 64 == 0 {
                self.inbox
                    .forget_before(t.saturating_sub(self.max_delay + 1));
            }
            done += 1;
        }
        Ok(done)
    }

    /// The spikes of `pair` at `step`, or None if `end` came first.
    fn receive(
        &mut self,
        pair: (usize, usize),
        step: u64,
        end: Instant,
    ) -> Result<Option<Vec<u32>>, EngineError> {
        let now = Instant::now();
        let w = match self.waiting.take() {
            Some(w) if w.pair == pair && w.step == step => w,
            _ => Waiting {
                pair,
                step,
                since: now,
                next_resend: now + RESEND_AFTER,
            },
        };
        let deadline = w.since + self.plan.timeout;
        let mut w = w;
        loop {
            let until = w.next_resend.min(deadline).min(end);
            let waited_from = Instant::now();
            let got = self.inbox.take(pair, step, until);
            self.stats.wait += waited_from.elapsed();
            if let Some(s) = got {
                return Ok(Some(s));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.timeout_error(pair.0, step));
            }
            if now >= w.next_resend {
                self.ask_again(pair, step, deadline);
                w.next_resend = Instant::now() + RESEND_AFTER;
                continue;
            }
            if now >= end {
                self.waiting = Some(w);
                return Ok(None);
            }
        }
    }

    /// Asks the source node for a step that did not come (lost, or merely late).
    fn ask_again(&mut self, (s, t): (usize, usize), step: u64, deadline: Instant) {
        self.stats.resend_requests += 1;
        let node = &self.plan.owners[s];
        let request = format!(
            r#"{{"source": {:?}, "target": {:?}, "step": {step}}}"#,
            self.names[s], self.names[t]
        );
        let wait = RESEND_AFTER.min(deadline.saturating_duration_since(Instant::now()));
        let reply = self.comm.request_with(
            &format!("brain/resend/{node}"),
            Format::Json,
            request.len(),
            |buf| {
                buf.extend_from_slice(request.as_bytes());
                Ok(())
            },
            wait.max(Duration::from_millis(10)),
        );
        if let Ok(m) = reply {
            if let Some((got, spikes)) =
                wire::decode_all(&m.payload).and_then(|v| v.into_iter().next())
            {
                if got == step {
                    self.inbox.store((s, t), step, spikes);
                }
            }
        }
    }

    fn timeout_error(&self, source: usize, step: u64) -> EngineError {
        let node = &self.plan.owners[source];
        let gone = self.gone_peers();
        let others: Vec<String> = gone
            .iter()
            .filter(|n| *n != node)
            .map(|n| format!("'{n}' (regions {})", self.regions_of(n)))
            .collect();
        let cause = if gone.contains(node) {
            "; it left the mesh (its liveliness token is gone)".to_owned()
        } else if others.is_empty() {
            String::new()
        } else {
            format!(
                "; node {} left the mesh (its liveliness token is gone), which may be what \
                 '{node}' waits for",
                others.join(", node ")
            )
        };
        EngineError::Timeout(format!(
            // Quoted as the Python side quotes names ('node-2'): ids and region names are
            // letters, digits and -_. only.
            "no spikes of region '{}' for step {step} from node '{node}' (regions {}) within \
             {:.0} s: the node stopped, is unreachable, or its key differs (decryption \
             failures so far: {}){cause}",
            self.names[source],
            self.regions_of(node),
            self.plan.timeout.as_secs_f64(),
            self.comm.stats().decrypt_failures.load(Relaxed)
        ))
    }

    /// The regions `node` runs, sorted, as a list.
    fn regions_of(&self, node: &str) -> String {
        let mut regions: Vec<&str> = self
            .plan
            .owners
            .iter()
            .zip(&self.names)
            .filter(|(o, _)| *o == node)
            .map(|(_, n)| n.as_str())
            .collect();
        regions.sort_unstable();
        regions.join(", ")
    }

    /// The peers whose liveliness token does not answer (none if that cannot be asked).
    fn gone_peers(&self) -> Vec<String> {
        let Ok(pattern) = self.comm.key_expr(&format!("{ALIVE}*"), true) else {
            return Vec::new();
        };
        let Ok(keys) = self.comm.transport().liveliness_keys(&pattern, GONE_CHECK) else {
            return Vec::new();
        };
        let prefix = pattern.trim_end_matches('*');
        let alive: HashSet<&str> = keys.iter().filter_map(|k| k.strip_prefix(prefix)).collect();
        let me = self.comm.node_id();
        let mut gone: Vec<String> = self
            .plan
            .owners
            .iter()
            .filter(|n| n.as_str() != me && !alive.contains(n.as_str()))
            .cloned()
            .collect();
        gone.sort_unstable();
        gone.dedup();
        gone
    }

    /// Adds the local regions' spikes of step `t` to the window of each outgoing pair,
    /// and sends the windows that step `t` completes.
    fn publish(&mut self, engine: &Engine, t: u64) -> Result<(), EngineError> {
        let local = engine.local_regions();
        for (i, &(s, tgt)) in self.outgoing.iter().enumerate() {
            let k = local
                .iter()
                .position(|n| *n == self.names[s])
                .expect("outgoing sources are local");
            self.buf.clear();
            wire::encode(t, engine.last_spikes(k), &mut self.buf);
            self.pending[i].extend_from_slice(&self.buf);
            let mut sent = self.sent.lock();
            let q = sent
                .get_mut(&(s, tgt))
                .expect("one queue per outgoing pair");
            q.push_back((t, self.buf.clone()));
            if q.len() > RESEND_WINDOW {
                q.pop_front();
            }
        }
        if (t + 1) % self.lookahead == 0 {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the windows being filled (at the end of a window, or of a run).
    pub fn flush(&mut self) -> Result<(), EngineError> {
        for (i, &(s, tgt)) in self.outgoing.iter().enumerate() {
            if self.pending[i].is_empty() {
                continue;
            }
            let topic = format!("spikes/{}/{}", self.names[s], self.names[tgt]);
            self.comm
                .publish(&topic, Format::Raw, &self.pending[i])
                .map_err(|e| EngineError::Argument(e.to_string()))?;
            self.pending[i].clear();
            self.stats.sent += 1;
        }
        Ok(())
    }

    /// Steps per message: the smallest delay of the projections between nodes.
    pub fn lookahead(&self) -> u64 {
        self.lookahead
    }

    /// Withdraws the subscriptions and the resend service.
    pub fn close(&mut self) {
        for s in self.subscriptions.drain(..) {
            let _ = s.undeclare();
        }
        if let Some(s) = self.service.take() {
            let _ = s.undeclare();
        }
        self.presence.take();
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.close();
    }
}

/// The stored message a resend request asks for, if it is still kept.
fn resend_lookup(names: &[String], sent: &Sent, m: &Message) -> Option<Vec<u8>> {
    if m.format != Format::Json {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
    let index = |key: &str| {
        names
            .iter()
            .position(|n| Some(n.as_str()) == v[key].as_str())
    };
    let pair = (index("source")?, index("target")?);
    let step = v["step"].as_u64()?;
    let sent = sent.lock();
    let q = sent.get(&pair)?;
    q.iter().find(|(s, _)| *s == step).map(|(_, b)| b.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_keeps_the_first_copy_and_forgets_old_steps() {
        let inbox = Inbox::default();
        assert!(inbox.store((0, 1), 4, vec![1]));
        assert!(!inbox.store((0, 1), 4, vec![2]));
        assert!(inbox.store((0, 1), 9, vec![3]));
        inbox.forget_before(5);
        let soon = Instant::now() + Duration::from_millis(5);
        assert_eq!(inbox.take((0, 1), 4, soon), None);
        assert_eq!(inbox.take((0, 1), 9, soon), Some(vec![3]));
    }
}
