//! The key manager's timing: named constants and the two small clocks it uses (a
//! doubling back-off and a token bucket). Time is passed in, never read here, so the
//! machine runs under a test's clock as well as the driver's.

/// Injected time: `ms` is monotonic (timers), `wall_ms` is the Unix clock (the INIT
/// timestamps that must survive a restart).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub ms: u64,
    pub wall_ms: u64,
}

impl Now {
    pub fn plus(self, ms: u64) -> Now {
        Now {
            ms: self.ms + ms,
            wall_ms: self.wall_ms + ms,
        }
    }
}

/// First and longest pause before an INIT without answer is sent again (as a new INIT:
/// WireGuard's REKEY_TIMEOUT is 5 s; peers here are on a LAN, so start far lower).
pub const INIT_RETRY_MIN_MS: u64 = 100;
pub const INIT_RETRY_MAX_MS: u64 = 2_000;
/// A rekey exchange without answer this long falls back to a first-contact exchange
/// (authenticated by the PSK or the pinned identities), where the node has the means.
pub const REKEY_FALLBACK_MS: u64 = 2_000;
/// A rekey exchange that cannot fall back is abandoned after this long; the current
/// channel stays.
pub const REKEY_GIVE_UP_MS: u64 = 10_000;
/// A rekey's new sender key waits this long for the rekey's exchange with a peer to
/// complete, so that it travels over the new channel; then it goes over the current one.
pub const REKEY_KEY_WAIT_MS: u64 = 1_000;
/// A handover's "valid from" is this much before the sender's clock at the handover, so
/// a clock step or jitter between the two time bases never refuses a fresh message.
pub const HANDOVER_SLACK_MS: u64 = 250;
/// First and longest pause before an unacknowledged KEY is sent again.
pub const KEY_RETRY_MIN_MS: u64 = 50;
pub const KEY_RETRY_MAX_MS: u64 = 1_000;
/// A new sender key is sealed with once every peer acknowledged it, or after this long
/// for the peers that did not (they keep being sent it): `rekey()` never waits longer.
pub const SWITCH_TIMEOUT_MS: u64 = 3_000;
/// An unconfirmed `next` channel is dropped after this long (WireGuard: REKEY_TIMEOUT
/// x 2 for its handshake state).
pub const NEXT_TTL_MS: u64 = 10_000;
/// A `previous` channel is accepted this long after it was replaced.
pub const PREVIOUS_TTL_MS: u64 = 30_000;
/// A peer whose presence token went away is asked (with a rekey) whether it is still
/// there; one that does not answer within this long is forgotten and its keys erased.
pub const PEER_GONE_MS: u64 = 3_000;
/// The larger node id of a pair waits this long for the smaller one to start the
/// automatic exchange (so the two rarely cross).
pub const SECOND_INITIATOR_DELAY_MS: u64 = 500;
/// Automatic first-contact attempts with a peer back off up to this long.
pub const HANDSHAKE_RETRY_MAX_MS: u64 = 5_000;
/// Authenticated INITs processed per peer: a burst, then this many per second. Each
/// costs two to four X25519 operations (about 50 us each): a peer needs one per rekey,
/// and the burst lets a caller rekey in a loop.
pub const INIT_BURST: u32 = 100;
pub const INITS_PER_SECOND: u32 = 20;
/// Across all peers, at most this many INITs are processed per second, after a burst
/// of as many (an insider with the PSK can claim many ids): about 4% of a core.
pub const INITS_PER_SECOND_TOTAL: u32 = 400;

/// First-contact INITs this node sends per second, in all (after a burst of as many).
pub const FIRST_CONTACTS_PER_SECOND: u32 = 50;

/// A doubling back-off: `due(now)` says whether to act; `fired(now)` doubles the pause.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    at: u64,
    delay: u64,
    min: u64,
    max: u64,
}

impl Backoff {
    pub fn new(now: u64, min: u64, max: u64) -> Backoff {
        Backoff {
            at: now,
            delay: min,
            min,
            max,
        }
    }

    pub fn due(&self, now: u64) -> bool {
        now >= self.at
    }

    pub fn fired(&mut self, now: u64) {
        self.at = now + self.delay;
        self.delay = (self.delay * 2).min(self.max);
    }

    /// Act at once on the next check, with the shortest pause after.
    pub fn reset(&mut self, now: u64) {
        self.at = now;
        self.delay = self.min;
    }

    pub fn at(&self) -> u64 {
        self.at
    }
}

/// A token bucket over injected time.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens_milli: u64,
    last: u64,
    burst: u32,
    per_second: u32,
}

impl Bucket {
    pub fn new(now: u64, burst: u32, per_second: u32) -> Bucket {
        Bucket {
            tokens_milli: u64::from(burst) * 1000,
            last: now,
            burst,
            per_second,
        }
    }

    /// Take a token if there is one.
    pub fn take(&mut self, now: u64) -> bool {
        let refill = now.saturating_sub(self.last) * u64::from(self.per_second);
        self.tokens_milli = (self.tokens_milli + refill).min(u64::from(self.burst) * 1000);
        self.last = now;
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(0, 100, 350);
        assert!(b.due(0));
        b.fired(0);
        assert!(!b.due(99) && b.due(100));
        b.fired(100);
        assert_eq!(b.at(), 300);
        b.fired(300);
        assert_eq!(b.at(), 650);
        b.fired(650);
        assert_eq!(b.at(), 1000);
        b.reset(1001);
        assert!(b.due(1001));
    }

    #[test]
    fn bucket_allows_a_burst_then_its_rate() {
        let mut b = Bucket::new(0, 3, 2);
        assert!((0..3).all(|_| b.take(0)));
        assert!(!b.take(0));
        assert!(!b.take(499));
        assert!(b.take(500));
        assert!(!b.take(500));
        assert!((0..3).all(|_| b.take(100_000)));
        assert!(!b.take(100_000));
    }
}
