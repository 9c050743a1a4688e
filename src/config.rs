//! Communicator configuration and its translation into a Zenoh configuration.
//!
//! Secure defaults: multicast scouting is off unless asked for (it would announce the
//! node on the real network), and with no endpoints given a node uses a fixed loopback
//! rendezvous port, so two nodes on one machine find each other with no flag at all.

use std::path::Path;
use std::str::FromStr;

use crate::compress::Compression;
use crate::crypto::handshake::{normalize_fingerprint, IdentityKey};
use crate::crypto::keys::Psk;
use crate::crypto::session::ReceiverPolicy;
use crate::error::{Error, Result};
use crate::secret_file::{identity_key_from_file, psk_from_file};

/// The rendezvous endpoint of the zero-configuration local mesh: the first node listens
/// on it, the others connect to it (and gossip meshes them through their own listeners).
pub const DEFAULT_LOCAL_ENDPOINT: &str = "tcp/127.0.0.1:7447";
/// Each node of the local mesh also listens here (an ephemeral port), so that gossip can
/// connect the other nodes to it directly.
const LOCAL_EPHEMERAL_ENDPOINT: &str = "tcp/127.0.0.1:0";
pub const DEFAULT_NAMESPACE: &str = "evospikenet";
/// How long a Zenoh client waits for its router when it opens.
pub const CLIENT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// A setting that takes one of a few words: the enum, `as_str`, and a `FromStr` that
/// ignores case and surrounding space and whose error lists the words.
macro_rules! word_setting {
    (
        $(#[$doc:meta])* $name:ident, $setting:literal {
            $($(#[$vdoc:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($word => Ok($name::$variant),)+
                    other => Err(not_one_of($setting, &[$($word),+], other)),
                }
            }
        }
    };
}

/// `"mode must be \"peer\", \"client\" or \"router\"; got ..."`.
fn not_one_of(setting: &str, words: &[&str], got: &str) -> Error {
    let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
    let (last, rest) = quoted.split_last().expect("at least one word");
    let choices = if rest.is_empty() {
        last.clone()
    } else {
        format!("{} or {last}", rest.join(", "))
    };
    Error::Config(format!("{setting} must be {choices}; got {got:?}"))
}

word_setting! {
    /// Zenoh's role for this node.
    SessionMode, "mode" {
        Peer = "peer",
        Client = "client",
        Router = "router",
    }
}

word_setting! {
    /// How DH-mode key exchanges start.
    KeyExchange, "key_exchange" {
        /// Only when asked (`initiate_key_exchange` / `complete_key_exchange`).
        Manual = "manual",
        /// With every peer that appears, authenticated by the PSK and/or `trusted_peers`.
        Auto = "auto",
    }
}

/// DH-mode settings.
#[derive(Clone, Debug)]
pub struct DhConfig {
    pub key_exchange: KeyExchange,
    /// This node's long-term identity key (needed with `trusted_peers`).
    pub identity: Option<IdentityKey>,
    /// Peers allowed in automatic exchanges, by node id, with their identity key's
    /// fingerprint (canonical form). Empty: any peer holding the PSK.
    pub trusted_peers: Vec<(String, String)>,
    /// Draw a new sender key (and a new exchange with every peer) after this many
    /// messages or this long, whichever comes first.
    pub rekey_after_messages: u64,
    pub rekey_after_ms: u64,
}

/// WireGuard's REKEY_AFTER_TIME.
pub const DEFAULT_REKEY_AFTER_MS: u64 = 120_000;
/// Far below the 2^32 messages of a session, far above any realistic two minutes.
pub const DEFAULT_REKEY_AFTER_MESSAGES: u64 = 1 << 30;

impl Default for DhConfig {
    fn default() -> Self {
        DhConfig {
            key_exchange: KeyExchange::Manual,
            identity: None,
            trusted_peers: Vec::new(),
            rekey_after_messages: DEFAULT_REKEY_AFTER_MESSAGES,
            rekey_after_ms: DEFAULT_REKEY_AFTER_MS,
        }
    }
}

impl DhConfig {
    /// Add a pinned peer; the fingerprint is normalized (spaces, ':' and case ignored).
    pub fn trust(&mut self, peer: &str, fingerprint: &str) -> Result<()> {
        validate_node_id(peer).map_err(|e| Error::Config(format!("trusted_peers: {e}")))?;
        let fp = normalize_fingerprint(fingerprint)
            .map_err(|e| Error::Config(format!("trusted_peers[{peer:?}]: {e}")))?;
        self.trusted_peers.retain(|(p, _)| p != peer);
        self.trusted_peers.push((peer.to_owned(), fp));
        Ok(())
    }

    /// The pinned fingerprint of `peer`, if any.
    pub fn trusted(&self, peer: &str) -> Option<&str> {
        self.trusted_peers
            .iter()
            .find(|(p, _)| p == peer)
            .map(|(_, f)| f.as_str())
    }
}

/// Everything a communicator needs besides its node id.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: SessionMode,
    pub connect: Vec<String>,
    pub listen: Vec<String>,
    pub namespace: String,
    pub psk: Option<Psk>,
    pub multicast_scouting: bool,
    pub policy: ReceiverPolicy,
    /// The node id `from_env` found in `NODE_ID`, used when none is passed explicitly.
    pub node_id: Option<String>,
    pub dh: DhConfig,
    /// Compress every publication with this algorithm unless `publish` says otherwise.
    pub compression: Option<Compression>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: SessionMode::Peer,
            connect: Vec::new(),
            listen: Vec::new(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            psk: None,
            multicast_scouting: false,
            policy: ReceiverPolicy::default(),
            node_id: None,
            dh: DhConfig::default(),
            compression: None,
        }
    }
}

impl Config {
    /// Read `EVOSPIKENET_PSK` (or `EVOSPIKENET_PSK_FILE`, a file holding it),
    /// `EVOSPIKENET_IDENTITY_KEY_FILE`, `NODE_ID`, `EVOSPIKENET_CONNECT`, `EVOSPIKENET_LISTEN`
    /// (comma-separated endpoint lists), `EVOSPIKENET_MODE`, `EVOSPIKENET_NAMESPACE` and
    /// `EVOSPIKENET_KEY_EXCHANGE` (`manual` or `auto`) and `EVOSPIKENET_COMPRESSION`
    /// (`zstd` or `lz4`).
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// `from_env` over any variable lookup (testable without touching the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let nonempty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut cfg = Config::default();
        match (
            nonempty("EVOSPIKENET_PSK"),
            nonempty("EVOSPIKENET_PSK_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "set EVOSPIKENET_PSK or EVOSPIKENET_PSK_FILE, not both".into(),
                ))
            }
            (Some(psk), None) => {
                cfg.psk = Some(
                    Psk::from_hex(&psk)
                        .map_err(|e| Error::Config(format!("EVOSPIKENET_PSK is invalid: {e}")))?,
                );
            }
            (None, Some(path)) => {
                cfg.psk = Some(psk_from_file(Path::new(path.trim()))?);
            }
            (None, None) => {}
        }
        if let Some(path) = nonempty("EVOSPIKENET_IDENTITY_KEY_FILE") {
            cfg.dh.identity = Some(identity_key_from_file(Path::new(path.trim()))?);
        }
        if let Some(c) = nonempty("EVOSPIKENET_COMPRESSION") {
            cfg.compression = Some(c.parse()?);
        }
        if let Some(kx) = nonempty("EVOSPIKENET_KEY_EXCHANGE") {
            cfg.dh.key_exchange = kx.parse()?;
        }
        if let Some(mode) = nonempty("EVOSPIKENET_MODE") {
            cfg.mode = mode.parse()?;
        }
        if let Some(ns) = nonempty("EVOSPIKENET_NAMESPACE") {
            cfg.namespace = ns.trim().to_owned();
        }
        cfg.connect = split_list(nonempty("EVOSPIKENET_CONNECT").as_deref());
        cfg.listen = split_list(nonempty("EVOSPIKENET_LISTEN").as_deref());
        if let Some(id) = nonempty("NODE_ID") {
            let id = id.trim().to_owned();
            validate_node_id(&id)?;
            cfg.node_id = Some(id);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check every field; errors name the field and what is expected.
    pub fn validate(&self) -> Result<()> {
        validate_namespace(&self.namespace)?;
        for (field, list) in [("connect", &self.connect), ("listen", &self.listen)] {
            for ep in list {
                validate_endpoint(field, ep)?;
            }
        }
        if self.dh.key_exchange == KeyExchange::Auto
            && self.psk.is_none()
            && self.dh.trusted_peers.is_empty()
        {
            return Err(Error::Config(
                "key_exchange=\"auto\" needs a way to authenticate peers: a psk, or \
                 trusted_peers with an identity_key (unauthenticated exchanges can be \
                 intercepted by a man in the middle)"
                    .into(),
            ));
        }
        if !self.dh.trusted_peers.is_empty() && self.dh.identity.is_none() {
            return Err(Error::Config(
                "trusted_peers needs this node's own identity_key (peers pin its fingerprint)"
                    .into(),
            ));
        }
        if self.dh.rekey_after_messages == 0 || self.dh.rekey_after_ms == 0 {
            return Err(Error::Config(
                "rekey_after_messages and rekey_after_seconds must be positive".into(),
            ));
        }
        if self.mode == SessionMode::Client && self.connect.is_empty() && !self.multicast_scouting {
            return Err(Error::Config(
                "mode \"client\" needs at least one `connect` endpoint (a router to talk through)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// True when neither `connect` nor `listen` was given: the zero-configuration local mesh.
    pub fn uses_local_rendezvous(&self) -> bool {
        self.connect.is_empty() && self.listen.is_empty() && self.mode == SessionMode::Peer
    }

    /// The Zenoh configuration. `rendezvous_listener` only matters for the local mesh:
    /// whether this node tries to own the rendezvous port.
    pub fn to_zenoh(&self, rendezvous_listener: bool) -> Result<zenoh::Config> {
        let mut z = zenoh::Config::default();
        let set = |z: &mut zenoh::Config, key: &str, value: String| {
            z.insert_json5(key, &value)
                .map_err(|e| Error::Config(format!("zenoh config {key}: {e}")))
        };
        let json_list = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
        set(&mut z, "mode", format!("\"{}\"", self.mode.as_str()))?;
        set(
            &mut z,
            "scouting/multicast/enabled",
            self.multicast_scouting.to_string(),
        )?;
        if self.uses_local_rendezvous() {
            let (listen, connect) = if rendezvous_listener {
                (
                    vec![
                        DEFAULT_LOCAL_ENDPOINT.to_owned(),
                        LOCAL_EPHEMERAL_ENDPOINT.to_owned(),
                    ],
                    vec![],
                )
            } else {
                (
                    vec![LOCAL_EPHEMERAL_ENDPOINT.to_owned()],
                    vec![DEFAULT_LOCAL_ENDPOINT.to_owned()],
                )
            };
            set(&mut z, "listen/endpoints", json_list(&listen))?;
            set(&mut z, "connect/endpoints", json_list(&connect))?;
            // Keep retrying the rendezvous: the node that owns it may start later or restart.
            set(&mut z, "connect/timeout_ms", "-1".into())?;
            set(&mut z, "connect/exit_on_failure", "false".into())?;
            set(&mut z, "connect/retry", retry(100, 1000))?;
        } else {
            // Zenoh's own peer default listens on every interface; ours listens nowhere
            // unless told (a node behind a router needs no listener).
            set(&mut z, "listen/endpoints", json_list(&self.listen))?;
            set(&mut z, "connect/endpoints", json_list(&self.connect))?;
            set(&mut z, "connect/retry", retry(200, 2000))?;
            if self.mode == SessionMode::Client {
                // A client may start a little before its router: it waits up to this long
                // for one at start (zenoh 1.10 clients cannot open without a router), then
                // fails with a clear error. A router restart later is survived: clients
                // reconnect by themselves.
                set(
                    &mut z,
                    "connect/timeout_ms",
                    CLIENT_CONNECT_TIMEOUT_MS.to_string(),
                )?;
            }
        }
        Ok(z)
    }
}

fn retry(init_ms: u32, max_ms: u32) -> String {
    format!("{{period_init_ms: {init_ms}, period_max_ms: {max_ms}, period_increase_factor: 2}}")
}

fn split_list(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// Node ids appear in topics and headers: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
pub fn validate_node_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "node id must be 1-64 characters of letters, digits, '-', '_' or '.'; got {id:?}"
        )))
    }
}

fn validate_namespace(ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && !ns.contains(['*', '$', '?', '#'])
        && !ns.starts_with('/')
        && !ns.ends_with('/')
        && zenoh::key_expr::KeyExpr::try_from(ns).is_ok();
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "namespace must be a plain key expression such as \"evospikenet\" (no wildcards, \
             no leading or trailing '/'); got {ns:?}"
        )))
    }
}

fn validate_endpoint(field: &str, ep: &str) -> Result<()> {
    let parsed = zenoh::config::EndPoint::from_str(ep).map_err(|_| {
        Error::Config(format!(
            "{field}: {ep:?} is not a zenoh endpoint; expected e.g. \"tcp/127.0.0.1:7447\""
        ))
    })?;
    if parsed.protocol().as_str() != "tcp" {
        return Err(Error::Config(format!(
            "{field}: {ep:?} uses protocol {:?}; this build supports \"tcp/<host>:<port>\"",
            parsed.protocol().as_str()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_settings_read_any_case_and_name_their_choices() {
        assert_eq!(
            " Router ".parse::<SessionMode>().unwrap(),
            SessionMode::Router
        );
        assert_eq!("AUTO".parse::<KeyExchange>().unwrap().as_str(), "auto");
        let err = |e: Error| e.to_string();
        assert_eq!(
            err("x".parse::<SessionMode>().unwrap_err()),
            r#"mode must be "peer", "client" or "router"; got "x""#
        );
        assert_eq!(
            err("dh".parse::<KeyExchange>().unwrap_err()),
            r#"key_exchange must be "manual" or "auto"; got "dh""#
        );
    }

    const PSK: &str = "8f1a7b3c9d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    #[test]
    fn env_lookup_reads_all_variables() {
        let cfg = Config::from_lookup(|k| {
            Some(
                match k {
                    "EVOSPIKENET_PSK" => format!(" {PSK} "),
                    "NODE_ID" => "pfc-0".into(),
                    "EVOSPIKENET_CONNECT" => "tcp/127.0.0.1:7447, tcp/127.0.0.1:7448".into(),
                    "EVOSPIKENET_LISTEN" => "tcp/127.0.0.1:0".into(),
                    _ => return None,
                }
                .to_string(),
            )
        })
        .unwrap();
        assert!(cfg.psk.is_some());
        assert_eq!(cfg.node_id.as_deref(), Some("pfc-0"));
        assert_eq!(cfg.connect, ["tcp/127.0.0.1:7447", "tcp/127.0.0.1:7448"]);
        assert_eq!(cfg.listen, ["tcp/127.0.0.1:0"]);
    }

    #[test]
    fn bad_env_psk_is_reported_without_its_value() {
        let err = Config::from_lookup(|k| (k == "EVOSPIKENET_PSK").then(|| "deadbeef".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EVOSPIKENET_PSK") && err.contains("64"));
        assert!(!err.contains("deadbeef"));
    }

    #[cfg(unix)]
    #[test]
    fn env_reads_secret_files_and_refuses_both_forms() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("evospikenet-env-psk-{}", std::process::id()));
        std::fs::write(&path, PSK).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let shown = path.display().to_string();
        let cfg = Config::from_lookup(|k| {
            matches!(k, "EVOSPIKENET_PSK_FILE" | "EVOSPIKENET_IDENTITY_KEY_FILE")
                .then(|| shown.clone())
        })
        .unwrap();
        assert_eq!(
            cfg.psk.unwrap().key_id(),
            Psk::from_hex(PSK).unwrap().key_id()
        );
        assert!(cfg.dh.identity.is_some());
        let both = Config::from_lookup(|k| match k {
            "EVOSPIKENET_PSK_FILE" => Some(shown.clone()),
            "EVOSPIKENET_PSK" => Some(PSK.into()),
            _ => None,
        });
        assert!(both.unwrap_err().to_string().contains("not both"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::from_lookup(|k| (k == "EVOSPIKENET_PSK_FILE").then(|| shown.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&shown) && err.contains("0644"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn rejects_bad_fields() {
        let base = Config::default();
        for cfg in [
            Config {
                namespace: "a/*".into(),
                ..base.clone()
            },
            Config {
                namespace: "".into(),
                ..base.clone()
            },
            Config {
                connect: vec!["127.0.0.1:7447".into()],
                ..base.clone()
            },
            Config {
                listen: vec!["udp/127.0.0.1:7447".into()],
                ..base.clone()
            },
            Config {
                mode: SessionMode::Client,
                ..base.clone()
            },
        ] {
            assert!(matches!(cfg.validate(), Err(Error::Config(_))), "{cfg:?}");
        }
        assert!("bridge".parse::<SessionMode>().is_err());
        assert_eq!(
            "Router".parse::<SessionMode>().unwrap(),
            SessionMode::Router
        );
        for bad in ["", "a/b", "x*", &"n".repeat(65), "ü"] {
            assert!(validate_node_id(bad).is_err(), "{bad:?}");
        }
        validate_node_id("motor-0.a_b").unwrap();
    }

    #[test]
    fn zenoh_config_never_enables_multicast_by_default() {
        let explicit = Config {
            listen: vec!["tcp/127.0.0.1:0".into()],
            ..Config::default()
        };
        for (cfg, owner) in [
            (Config::default(), true),
            (Config::default(), false),
            (explicit, false),
        ] {
            let z: serde_json::Value =
                serde_json::from_str(&cfg.to_zenoh(owner).unwrap().to_string()).unwrap();
            assert_eq!(z["scouting"]["multicast"]["enabled"], false, "{z}");
        }
        let owner: serde_json::Value =
            serde_json::from_str(&Config::default().to_zenoh(true).unwrap().to_string()).unwrap();
        assert_eq!(owner["listen"]["endpoints"][0], DEFAULT_LOCAL_ENDPOINT);
        let joiner: serde_json::Value =
            serde_json::from_str(&Config::default().to_zenoh(false).unwrap().to_string()).unwrap();
        assert_eq!(joiner["connect"]["endpoints"][0], DEFAULT_LOCAL_ENDPOINT);
    }
}
