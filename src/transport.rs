//! The Zenoh session: configuration in, bytes out and in. No cryptography here.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, Query, QueryTarget, Queryable};
use zenoh::sample::Sample;
use zenoh::{Session, Wait};

use rand_core::{OsRng, RngCore};

use crate::config::{Config, DEFAULT_LOCAL_ENDPOINT};
use crate::error::{Error, Result};

/// Declared publishers are cached per key expression (cheaper puts); past this many
/// distinct keys, further keys are put directly on the session.
const MAX_CACHED_PUBLISHERS: usize = 4096;

/// How long a node that can neither listen on the loopback rendezvous nor reach a
/// listener there keeps trying to listen before it gives up with an error.
const RENDEZVOUS_CLAIM_PATIENCE: Duration = Duration::from_secs(5);
/// The first and the longest pause between two of those attempts (each pause is drawn
/// at random up to the current bound, so two nodes refused together do not retry in step).
const RENDEZVOUS_RETRY_MIN: Duration = Duration::from_millis(20);
const RENDEZVOUS_RETRY_MAX: Duration = Duration::from_millis(500);
/// How long the probe of the rendezvous waits for a TCP connection (loopback: a
/// listener accepts at once, a closed port refuses at once).
const RENDEZVOUS_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What Zenoh calls, on its own threads, with each sample or query a declaration gets.
pub trait Callback<T>: Fn(T) + Send + Sync + 'static {}
impl<T, F: Fn(T) + Send + Sync + 'static> Callback<T> for F {}

/// How a query ended.
pub enum QueryOutcome<T> {
    /// A reply was accepted.
    Accepted(T),
    /// Replies came, none was accepted.
    Rejected,
    /// No reply at all (no queryable reached, or none answered in time).
    NoReply,
}

/// An open Zenoh session.
pub struct Transport {
    session: Session,
    publishers: RwLock<HashMap<String, Publisher<'static>>>,
}

impl Transport {
    /// Open a session. With no endpoints configured, the first node on the machine owns the
    /// loopback rendezvous port and later ones connect to it.
    pub fn open(cfg: &Config) -> Result<Transport> {
        let session = if cfg.uses_local_rendezvous() {
            own_or_join(
                || Ok(zenoh::open(cfg.to_zenoh(true)?).wait()?),
                rendezvous_has_listener,
                || Ok(zenoh::open(cfg.to_zenoh(false)?).wait()?),
                RENDEZVOUS_CLAIM_PATIENCE,
            )?
        } else {
            zenoh::open(cfg.to_zenoh(false)?).wait().map_err(|e| {
                Error::Transport(format!(
                    "could not open a session (listen {:?}, connect {:?}): {e}",
                    cfg.listen, cfg.connect
                ))
            })?
        };
        Ok(Transport {
            session,
            publishers: RwLock::new(HashMap::new()),
        })
    }

    /// Put `payload` on `key` reliably; blocks (never drops) when the link is congested.
    pub fn put(&self, key: &str, payload: Vec<u8>) -> Result<()> {
        if let Some(publisher) = self.publishers.read().get(key) {
            return Ok(publisher.put(payload).wait()?);
        }
        let mut publishers = self.publishers.write();
        if publishers.len() >= MAX_CACHED_PUBLISHERS {
            drop(publishers);
            return Ok(self
                .session
                .put(key, payload)
                .congestion_control(CongestionControl::Block)
                .wait()?);
        }
        let publisher = self
            .session
            .declare_publisher(key.to_owned())
            .congestion_control(CongestionControl::Block)
            .wait()?;
        publisher.put(payload).wait()?;
        publishers.insert(key.to_owned(), publisher);
        Ok(())
    }

    /// Put `payload` on `key` without ever blocking: dropped when the link is congested
    /// (for messages whose sender retries, such as the key exchange's).
    pub fn put_nonblocking(&self, key: &str, payload: Vec<u8>) -> Result<()> {
        Ok(self
            .session
            .put(key, payload)
            .congestion_control(CongestionControl::Drop)
            .wait()?)
    }

    /// Make the declaration `build` describes on `key` (a subscriber, a queryable, a
    /// token) and wait until it is in place.
    fn declare<'s, B, T>(
        &'s self,
        key: &str,
        build: impl FnOnce(&'s Session, String) -> B,
    ) -> Result<T>
    where
        B: Wait<To = zenoh::Result<T>>,
    {
        Ok(build(&self.session, key.to_owned()).wait()?)
    }

    /// Subscribe to `key` (wildcards allowed); `callback` runs on Zenoh's threads.
    pub fn subscribe(&self, key: &str, callback: impl Callback<Sample>) -> Result<Subscriber<()>> {
        self.declare(key, |s, key| s.declare_subscriber(key).callback(callback))
    }

    /// Answer queries on `key`; `callback` runs on Zenoh's threads and may keep the query
    /// to reply later from another thread.
    pub fn queryable(&self, key: &str, callback: impl Callback<Query>) -> Result<Queryable<()>> {
        self.declare(key, |s, key| s.declare_queryable(key).callback(callback))
    }

    /// Send a query to every queryable matching `key` and hand each reply payload to
    /// `accept` as it arrives, until it returns `Some`, or until `timeout` passes or every
    /// replier has answered.
    ///
    /// Every matching queryable gets the query (a forged one cannot keep it from the
    /// genuine ones), and replies are not consolidated: one that never answers delays
    /// nothing (Zenoh's default consolidation would hold the first reply until every
    /// replier answered or the timeout passed).
    pub fn query<T>(
        &self,
        key: &str,
        payload: Vec<u8>,
        timeout: Duration,
        mut accept: impl FnMut(&str, &[u8]) -> Option<T>,
    ) -> Result<QueryOutcome<T>> {
        let deadline = Instant::now() + timeout;
        let replies = self
            .session
            .get(key)
            .payload(payload)
            .target(QueryTarget::All)
            .consolidation(ConsolidationMode::None)
            .timeout(timeout)
            .wait()?;
        let mut replied = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match replies.recv_timeout(left) {
                Ok(Some(reply)) => {
                    replied = true;
                    if let Ok(sample) = reply.result() {
                        let bytes = sample.payload().to_bytes();
                        if let Some(v) = accept(sample.key_expr().as_str(), &bytes) {
                            return Ok(QueryOutcome::Accepted(v));
                        }
                    }
                }
                // Timed out, or every replier answered.
                Ok(None) | Err(_) if replied => return Ok(QueryOutcome::Rejected),
                Ok(None) | Err(_) => return Ok(QueryOutcome::NoReply),
            }
        }
    }

    /// Announce this node's presence on `key` until the token is dropped.
    pub fn liveliness_token(&self, key: &str) -> Result<LivelinessToken> {
        self.declare(key, |s, key| s.liveliness().declare_token(key))
    }

    /// Follow the liveliness tokens matching `key`: `callback(key, alive)` for each token
    /// already declared and each one that appears or disappears later.
    pub fn watch_liveliness(
        &self,
        key: &str,
        callback: impl Fn(&str, bool) + Send + Sync + 'static,
    ) -> Result<Subscriber<()>> {
        self.declare(key, |s, key| {
            s.liveliness()
                .declare_subscriber(key)
                .history(true)
                .callback(move |sample: Sample| {
                    let alive = sample.kind() == zenoh::sample::SampleKind::Put;
                    callback(sample.key_expr().as_str(), alive)
                })
        })
    }

    /// The keys of the liveliness tokens matching `key` that answer within `timeout`.
    pub fn liveliness_keys(&self, key: &str, timeout: Duration) -> Result<Vec<String>> {
        let replies = self
            .session
            .liveliness()
            .get(key.to_owned())
            .timeout(timeout)
            .wait()?;
        let mut keys = Vec::new();
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                keys.push(sample.key_expr().as_str().to_owned());
            }
        }
        Ok(keys)
    }

    /// Reply to a query with `payload` on the query's key expression.
    pub fn reply(query: &Query, payload: Vec<u8>) -> Result<()> {
        Ok(query.reply(query.key_expr().clone(), payload).wait()?)
    }

    /// The endpoints this session listens on (with the real port when 0 was asked for).
    pub fn locators(&self) -> Vec<String> {
        self.session
            .info()
            .locators()
            .wait()
            .into_iter()
            .map(|l| l.to_string())
            .collect()
    }

    /// Zenoh ids of the peers and routers this session is connected to.
    pub fn connected_zids(&self) -> Vec<String> {
        let info = self.session.info();
        info.peers_zid()
            .wait()
            .chain(info.routers_zid().wait())
            .map(|z| z.to_string())
            .collect()
    }

    /// This session's Zenoh id.
    pub fn zid(&self) -> String {
        self.session.zid().to_string()
    }

    /// The underlying session, for layers that add their own declarations (liveliness).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Close the session: undeclares everything and drops the links.
    pub fn close(&self) -> Result<()> {
        self.publishers.write().clear();
        Ok(self.session.close().wait()?)
    }
}

/// Own the loopback rendezvous (`listen` on it) or, when something already listens there,
/// `join` it.
///
/// A refused listen does not prove that another node owns the port: two nodes that
/// listen at the same instant can both be refused (each finds the other's socket already
/// marked listening, before either is), and a program may hold the port without
/// listening. Joining then would leave every node connecting to a port nobody listens
/// on, each hearing only itself. So a refused node joins only when `has_listener` (a TCP
/// connection to the port) says someone listens; otherwise it tries to listen again,
/// after a random pause, for up to `patience`, and then fails.
fn own_or_join<S>(
    mut listen: impl FnMut() -> Result<S>,
    mut has_listener: impl FnMut() -> bool,
    join: impl FnOnce() -> Result<S>,
    patience: Duration,
) -> Result<S> {
    let deadline = Instant::now() + patience;
    let mut bound = RENDEZVOUS_RETRY_MIN;
    loop {
        let refused = match listen() {
            Ok(session) => return Ok(session),
            Err(e) => e,
        };
        if has_listener() {
            return join();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Transport(format!(
                "could not listen on the local rendezvous {DEFAULT_LOCAL_ENDPOINT} ({refused}), \
                 and nothing listens there: free that port, or give this node endpoints \
                 (listen/connect)"
            )));
        }
        let pause = bound.mul_f64(f64::from(OsRng.next_u32()) / f64::from(u32::MAX));
        std::thread::sleep(pause.max(Duration::from_millis(1)).min(left));
        bound = (bound * 2).min(RENDEZVOUS_RETRY_MAX);
    }
}

/// Whether something accepts TCP connections on the loopback rendezvous port.
fn rendezvous_has_listener() -> bool {
    let addr = DEFAULT_LOCAL_ENDPOINT
        .strip_prefix("tcp/")
        .and_then(|a| a.parse().ok())
        .expect("the rendezvous endpoint is tcp/<ip>:<port>");
    accepts_connections(addr)
}

fn accepts_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, RENDEZVOUS_PROBE_TIMEOUT).is_ok()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn refused() -> Result<&'static str> {
        Err(Error::Transport("Address already in use".into()))
    }

    #[test]
    fn a_refused_listen_with_no_listener_there_is_retried() {
        // Two nodes refused at the same instant: nobody listens, so this one tries again
        // (and owns the port) instead of joining a rendezvous nobody holds.
        let attempts = Cell::new(0);
        let got = own_or_join(
            || {
                attempts.set(attempts.get() + 1);
                if attempts.get() < 3 {
                    refused()
                } else {
                    Ok("owner")
                }
            },
            || false,
            || Ok("joined"),
            Duration::from_secs(5),
        );
        assert_eq!(got.unwrap(), "owner");
        assert_eq!(attempts.get(), 3);
    }

    #[test]
    fn a_refused_listen_joins_the_node_that_listens() {
        let got = own_or_join(refused, || true, || Ok("joined"), Duration::from_secs(5));
        assert_eq!(got.unwrap(), "joined");
    }

    #[test]
    fn a_port_held_without_a_listener_fails_after_the_patience() {
        let start = Instant::now();
        let err = own_or_join(
            refused,
            || false,
            || Ok("joined"),
            Duration::from_millis(200),
        )
        .unwrap_err()
        .to_string();
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(
            err.contains(DEFAULT_LOCAL_ENDPOINT) && err.contains("Address already in use"),
            "{err}"
        );
    }

    #[test]
    fn the_probe_tells_a_listener_from_a_closed_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(accepts_connections(addr));
        drop(listener);
        assert!(!accepts_connections(addr));
    }
}
