//! The Zenoh session: configuration in, bytes out and in. No cryptography here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, Query, QueryTarget, Queryable};
use zenoh::sample::Sample;
use zenoh::{Session, Wait};

use crate::config::Config;
use crate::error::{Error, Result};

/// Declared publishers are cached per key expression (cheaper puts); past this many
/// distinct keys, further keys are put directly on the session.
const MAX_CACHED_PUBLISHERS: usize = 4096;

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
            match zenoh::open(cfg.to_zenoh(true)?).wait() {
                Ok(session) => session,
                // The rendezvous port is taken: another node owns it, so join it.
                Err(_) => zenoh::open(cfg.to_zenoh(false)?).wait()?,
            }
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

    /// Subscribe to `key` (wildcards allowed); `callback` runs on Zenoh's threads.
    pub fn subscribe(
        &self,
        key: &str,
        callback: impl Fn(Sample) + Send + Sync + 'static,
    ) -> Result<Subscriber<()>> {
        Ok(self
            .session
            .declare_subscriber(key.to_owned())
            .callback(callback)
            .wait()?)
    }

    /// Answer queries on `key`; `callback` runs on Zenoh's threads and may keep the query
    /// to reply later from another thread.
    pub fn queryable(
        &self,
        key: &str,
        callback: impl Fn(Query) + Send + Sync + 'static,
    ) -> Result<Queryable<()>> {
        Ok(self
            .session
            .declare_queryable(key.to_owned())
            .callback(callback)
            .wait()?)
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
        Ok(self
            .session
            .liveliness()
            .declare_token(key.to_owned())
            .wait()?)
    }

    /// Follow the liveliness tokens matching `key`: `callback(key, alive)` for each token
    /// already declared and each one that appears or disappears later.
    pub fn watch_liveliness(
        &self,
        key: &str,
        callback: impl Fn(&str, bool) + Send + Sync + 'static,
    ) -> Result<Subscriber<()>> {
        Ok(self
            .session
            .liveliness()
            .declare_subscriber(key.to_owned())
            .history(true)
            .callback(move |sample: Sample| {
                let alive = sample.kind() == zenoh::sample::SampleKind::Put;
                callback(sample.key_expr().as_str(), alive)
            })
            .wait()?)
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
