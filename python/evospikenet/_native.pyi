"""Type stubs of the native extension ``evospikenet._native`` (Rust, PyO3)."""

from collections.abc import Callable, Iterator
from os import PathLike
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, final, type_check_only

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

from evospikenet.kernels import CsrLike, IzhikevichParams, LifFloatParams, SpikeForm, Spikes

__version__: str

_Serializer = Literal["json", "raw", "numpy"]

def _interpreter_exiting() -> None:
    """Tell the extension that the interpreter is exiting (registered with ``atexit``)."""

def _panic_on_payload(payload: bytes | None) -> None:
    """Testing only: make the callback thread panic while decoding a message whose
    payload bytes equal ``payload`` (``None`` turns it off), standing for a bug."""

# ----- the simulation engine (src/engine, src/py/engine.rs) -----

@final
class Engine:
    """Some or all regions of a network, stepped in Rust.

    Built from a network description (JSON, as :meth:`evospikenet.brain.Network.description`
    writes it); ``local`` names the regions it runs (default: all). The synapses of every
    projection into a local region are built at construction, with the GIL released.
    Raises ``ValueError`` naming what is wrong in the description.
    """

    def __new__(cls, description: str, local: list[str] | None = None) -> Self: ...
    def run(
        self,
        steps: int,
        progress: Callable[[int], Any] | None = None,
        progress_every: float = 1.0,
    ) -> int:
        """Run ``steps`` steps with the GIL released; ``progress(steps_done)`` at most every
        ``progress_every`` seconds (at least 0.1). Ctrl-C raises ``KeyboardInterrupt``
        within about 0.1 s. Returns the steps computed."""
    def step(self, remote: list[tuple[str, int, NDArray[np.uint32]]] | None = None) -> None:
        """Hand in the remote spikes this step needs (one ``(region, step, indices)`` for
        each pair :meth:`needed` lists; sorted, distinct), then compute one step.
        ``RuntimeError`` names a region whose spikes are missing."""
    def needed(self, step: int) -> list[tuple[str, int]]:
        """The ``(remote region, step)`` pairs whose spikes ``step`` needs."""
    def exchange_with(self, comm: ZenohCommunicator, owners: list[str], timeout: float) -> None:
        """From now on, :meth:`run` exchanges spikes through ``comm`` (in Rust) with the
        nodes that run the other regions: ``owners`` is the node id of every region in
        network order. A peer that delivers nothing for ``timeout`` seconds (lost steps
        are asked for again after a second) raises ``TimeoutError`` naming the node and
        its regions."""
    def exchange_stats(self) -> dict[str, float]:
        """``{"sent", "received", "duplicates", "malformed", "resend_requests",
        "wait_seconds"}`` of the exchange, as of the last slice of a run."""
    def close_exchange(self) -> None:
        """Withdraw the exchange's subscriptions and resend service."""
    def last_spikes(self) -> list[NDArray[np.uint32]]:
        """Each local region's spikes at the last step computed."""
    def start_recording(self) -> None:
        """Record spikes from the next step on."""
    def add_probe(self, region: str, neurons: list[int]) -> None:
        """Record the potentials of ``neurons`` of local ``region`` after every step."""
    def take_recording(self) -> dict[str, Any] | None:
        """``{"first_step", "spikes": {region: (indices, offsets)}, "probes": [(region,
        neurons, values)]}`` since recording started or was last taken (None if it never
        started); recording goes on."""
    @property
    def local_regions(self) -> list[str]:
        """The regions this engine runs, in network order."""
    @property
    def current_step(self) -> int:
        """The next step to compute (during a run: as of its last slice)."""
    @property
    def synapses(self) -> int:
        """Synapses built (the projections into local regions)."""
    def memory(self) -> dict[str, int]:
        """``{"synapse_bytes", "state_bytes"}``."""
    def stats(self) -> dict[str, int]:
        """``{"steps", "spikes", "events", "updates"}`` since the engine was built (during
        a run: as of its last slice)."""

def engine_model_defaults() -> dict[str, dict[str, float]]:
    """Each neuron model's default parameters, from the engine."""

def engine_validate(description: str) -> None:
    """Check a network description as the engine would, without building it."""

@type_check_only
class Stats(TypedDict):
    """The counters :meth:`ZenohCommunicator.stats` returns, all monotonic.

    The field list is checked against the core's (``src/monitor.rs``) by a test.
    """

    published: int
    """Messages published."""
    received: int
    """Messages (and replies) that passed every check and were handed on."""
    bytes_sent: int
    """Bytes put on the wire (publications, requests, replies), headers included."""
    bytes_received: int
    """Bytes of the messages counted in ``received``."""
    decrypt_failures: int
    """Messages dropped for failing authentication (or encrypted, with no key here)."""
    replays_rejected: int
    """Authentic messages dropped as replays, too old, or from a retired session."""
    decode_errors: int
    """Authentic messages whose payload could not be decoded."""
    dropped_by_callback_error: int
    """Messages whose subscriber callback or request handler raised."""
    dropped_queue_full: int
    """Messages dropped because a :class:`MessageQueue` was full."""
    key_exchanges: int
    """DH channels established with a peer (manual, automatic and rekeying exchanges)."""
    key_exchange_failures: int
    """Key exchange steps that failed, local (a bad key given) or remote."""
    rekeys: int
    """Times this node switched to a new sender key (``rekey()`` or automatic)."""
    internal_errors: int
    """Messages dropped by a bug of evospikenet caught on the callback thread (logged at
    ``ERROR``); delivery goes on with the next message."""

@type_check_only
class SenderStats(TypedDict):
    """One row of :meth:`ZenohCommunicator.sender_stats`: what one sender published on
    one topic, as this node's subscriptions saw it."""

    sender: str | None
    """The node id the message header names: claimed, not authenticated, when the
    message was refused. ``None`` for messages without an evospikenet header (a plain
    Zenoh publisher), and for the row that gathers pairs beyond the table's bound."""
    topic: str
    """The topic, without the namespace."""
    received: int
    """Messages opened and accepted."""
    plaintext: int
    """Messages not encrypted at all (refused by a node with a key)."""
    undecryptable: int
    """Encrypted messages the local keys cannot open (another PSK, tampered)."""
    replayed: int
    """Authentic messages refused as replays or stale."""
    last_seen: float
    """When the last one arrived, in seconds since the Unix epoch."""

@final
class ZenohConfig:
    """Configuration of a :class:`ZenohCommunicator`.

    Args:
        mode: Zenoh role: ``"peer"`` (default), ``"client"`` (talks through a router given in
            ``connect``) or ``"router"``.
        connect: Endpoints to connect to, e.g. ``["tcp/10.0.0.5:7447"]``.
        listen: Endpoints to listen on, e.g. ``["tcp/0.0.0.0:7447"]``; port 0 picks a free port
            (see :attr:`ZenohCommunicator.locators`).
        namespace: Prefix of every topic on the wire (default ``"evospikenet"``).
        psk: The pre-shared key: 64 hexadecimal characters (32 random bytes; surrounding
            whitespace tolerated) or 32 raw bytes. ``None`` sends plaintext (with a warning).
        multicast_scouting: Announce and discover nodes by UDP multicast. Off by default: it
            broadcasts on the real network.
        freshness_window: Seconds after which a message is too old to be accepted; also the
            bound on clock disagreement between nodes.
        session_grace: Seconds a restarted sender's previous session stays accepted; also
            how long a sender's previous DH-mode key stays usable after a rekey.
        key_exchange: DH mode. ``"manual"`` (default): exchanges happen only through
            :meth:`ZenohCommunicator.initiate_key_exchange` and
            :meth:`~ZenohCommunicator.complete_key_exchange`. ``"auto"``: the node enters
            DH mode at once and runs an authenticated X25519 exchange with every peer that
            appears (over ``{namespace}/security/key_exchange/``), authenticated by the PSK
            (mixed into the key derivation, as WireGuard's psk) and/or by ``trusted_peers``.
        identity_key: This node's long-term secret X25519 key, 64 hex digits (see
            :func:`generate_identity_key`); needed with ``trusted_peers``. Peers pin its
            :attr:`identity_fingerprint`.
        trusted_peers: ``{node_id: fingerprint}``: in ``"auto"`` mode only these peers, and
            only with the identity key of that fingerprint, complete an exchange.
        psk_file: A file holding the PSK as hex (a Docker or Kubernetes secret such as
            ``/run/secrets/evospikenet_psk``), instead of ``psk``. Refused, naming the file
            and its mode, when group or others may access it (``chmod 600``), as ssh does.
        identity_key_file: A file holding ``identity_key``, with the same rules.
        metrics_port: Serve the communicator's counters in the Prometheus text format on
            ``http://127.0.0.1:<port>/metrics`` from its opening to its close (needs the
            ``metrics`` extra, ``prometheus_client``; see :mod:`evospikenet.metrics`).
        compression: Compress every publication with this algorithm (``"zstd"`` or
            ``"lz4"``) unless ``publish(compress=...)`` says otherwise.
        rekey_after_messages: In DH mode, draw a new sender key and run a new exchange with
            every peer after this many messages ...
        rekey_after_seconds: ... or this many seconds (WireGuard's REKEY_AFTER_TIME by
            default).

    The defaults shown as ``...`` are the core's (``src/config.rs``); read them back from
    a default ``ZenohConfig()``.

    With neither ``connect`` nor ``listen`` (peer mode), nodes on one machine meet on the
    loopback rendezvous ``tcp/127.0.0.1:7447``: the first one started listens there, the
    others connect to it, in any start order.

    Raises:
        evospikenet.errors.ConfigError: (a ``ValueError``) a malformed PSK (the message says
            what is expected and never shows the value), an unknown mode, a malformed
            endpoint or namespace, ``"auto"`` without a PSK or ``trusted_peers``,
            ``trusted_peers`` without ``identity_key``, a malformed fingerprint, a key file
            that cannot be read or that group or others may access, both ``psk`` and
            ``psk_file`` (or ``identity_key`` and ``identity_key_file``).
        ValueError: a negative or non-finite number of seconds.
    """

    def __new__(
        cls,
        mode: Literal["peer", "client", "router"] = "peer",
        connect: list[str] | str | None = None,
        listen: list[str] | str | None = None,
        namespace: str = ...,
        psk: str | bytes | None = None,
        *,
        multicast_scouting: bool = False,
        freshness_window: float = ...,
        session_grace: float = ...,
        key_exchange: Literal["manual", "auto"] = "manual",
        identity_key: str | None = None,
        trusted_peers: dict[str, str] | None = None,
        psk_file: str | PathLike[str] | None = None,
        identity_key_file: str | PathLike[str] | None = None,
        metrics_port: int | None = None,
        compression: Literal["zstd", "lz4"] | None = None,
        rekey_after_messages: int = ...,
        rekey_after_seconds: float = ...,
    ) -> Self: ...
    @classmethod
    def from_env(cls) -> ZenohConfig:
        """Build from ``EVOSPIKENET_PSK`` (or ``EVOSPIKENET_PSK_FILE``, a file holding it,
        checked as ``psk_file``), ``EVOSPIKENET_IDENTITY_KEY_FILE``, ``NODE_ID``,
        ``EVOSPIKENET_CONNECT`` and ``EVOSPIKENET_LISTEN`` (comma-separated endpoints),
        ``EVOSPIKENET_MODE``, ``EVOSPIKENET_NAMESPACE``, ``EVOSPIKENET_KEY_EXCHANGE`` and
        ``EVOSPIKENET_COMPRESSION``. Unset variables keep the defaults."""
    @property
    def mode(self) -> str:
        """The Zenoh role: ``"peer"``, ``"client"`` or ``"router"``."""
    @property
    def connect(self) -> list[str]:
        """The endpoints to connect to (settable: a list or one endpoint string)."""
    @connect.setter
    def connect(self, value: list[str] | str) -> None: ...
    @property
    def listen(self) -> list[str]:
        """The endpoints to listen on (settable: a list or one endpoint string)."""
    @listen.setter
    def listen(self, value: list[str] | str) -> None: ...
    @property
    def namespace(self) -> str:
        """The prefix of every topic on the wire (a Zenoh key expression chunk, not a
        network namespace)."""
    @property
    def encrypted(self) -> bool:
        """Whether a PSK is configured (the key itself cannot be read back)."""
    @property
    def key_id(self) -> str | None:
        """Public 4-byte identifier of the PSK (hex), the same on every node with the same key."""
    @property
    def node_id(self) -> str | None:
        """The node id read from ``NODE_ID`` by :meth:`from_env`."""
    @property
    def compression(self) -> str | None:
        """The default compression of publications, if any."""
    @property
    def metrics_port(self) -> int | None:
        """The Prometheus port of ``metrics_port``, if any."""
    @property
    def multicast_scouting(self) -> bool:
        """Whether nodes are announced and discovered by UDP multicast (off by default)."""
    @property
    def freshness_window(self) -> float:
        """Seconds after which a received message is too old to be accepted."""
    @property
    def key_exchange(self) -> str:
        """``"manual"`` or ``"auto"`` (see the class documentation)."""
    @property
    def identity_fingerprint(self) -> str | None:
        """The fingerprint peers pin in ``trusted_peers`` (``None`` without identity_key)."""
    @property
    def trusted_peers(self) -> dict[str, str]:
        """The pinned peers, fingerprints in canonical ``XXXX XXXX ...`` form."""
    @property
    def rekey_after_messages(self) -> int:
        """In DH mode, messages after which the node rekeys."""
    @property
    def rekey_after_seconds(self) -> float:
        """In DH mode, seconds after which the node rekeys."""

def crypto_backends() -> dict[str, str]:
    """``{crate: version}`` of the crypto and transport crates compiled into this build
    (``ring``, ``x25519-dalek``, ``curve25519-dalek``, ``zenoh``), from its Cargo.lock;
    ``evospikenet audit`` checks them against its minimum-version table."""

def generate_identity_key() -> str:
    """A new random identity key (64 hex digits). Keep it secret, like a PSK."""

def identity_fingerprint(identity_key: str) -> str:
    """The fingerprint of ``identity_key``, for peers' ``trusted_peers``."""

@type_check_only
class _ClosedByWith:
    """``with x:`` closes ``x`` at the end of the block (``__exit__`` calls ``close()``
    and never suppresses the exception)."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@disjoint_base
class Handle(_ClosedByWith):
    """A declaration on the Zenoh session: the base class of :class:`Subscription`,
    :class:`Service` and :class:`MessageQueue`.

    Active until :meth:`undeclare` (or :meth:`close`, or the end of a ``with`` block) or
    until its communicator closes; both are idempotent, and a closed handle never
    raises. Dropping a :class:`Subscription` or :class:`Service` keeps it running (the
    communicator holds it); dropping a :class:`MessageQueue` stops it.
    """

    @property
    def topic(self) -> str:
        """The topic (or key expression) it was declared on, without the namespace."""
    @property
    def active(self) -> bool:
        """Whether it is still declared."""
    def undeclare(self) -> None:
        """Withdraw the declaration."""
    def close(self) -> None:
        """Same as :meth:`undeclare`."""

@final
class Subscription(Handle):
    """A callback subscription returned by :meth:`ZenohCommunicator.subscribe`.

    Undeclaring it also discards the messages still queued for the callback.
    """

@final
class Service(Handle):
    """A served topic returned by :meth:`ZenohCommunicator.serve`; undeclared, it stops
    answering requests."""

@final
class MessageQueue(Handle):
    """A bounded queue of received messages, returned by
    :meth:`ZenohCommunicator.subscribe_queue`.

    Messages arriving while the queue is full are dropped and counted in
    ``stats()["dropped_queue_full"]`` (and a rate-limited warning is logged). Closing
    it stops the subscription; messages already queued can still be read.
    """

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Return the next message's data (or ``(data, sender, topic)`` with ``with_info``).

        Blocks up to ``timeout`` seconds (forever if ``None``; Ctrl-C interrupts).

        Raises:
            queue.Empty: nothing arrived in time, or the queue was closed and is drained.
        """
    def get_nowait(self) -> Any:
        """``get(block=False)``."""
    def qsize(self) -> int:
        """How many messages are waiting."""
    def empty(self) -> bool:
        """Whether no message is waiting."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]:
        """Iterate over messages as they arrive; ends when the queue is closed."""
    def __next__(self) -> Any: ...

@disjoint_base
class ZenohCommunicator(_ClosedByWith):
    """The encrypted communicator of one node.

    ``ZenohCommunicator(node_id, config)`` or ``ZenohCommunicator(config)``. Without a
    node id, ``NODE_ID`` is used, else a random ``node-xxxxxxxx``. Without a config,
    :meth:`ZenohConfig.from_env` is used.

    With a PSK, every payload is sealed with AES-256-GCM under a key derived for this
    sender and this run (HKDF-SHA256), and every received message must authenticate and
    must not be a replay; failures are dropped, counted in :meth:`stats` and logged as
    ``WARNING Decryption failed for topic: <topic>`` on the ``evospikenet.zenoh_comm``
    logger (rate-limited). A node with a PSK never accepts plaintext; one without a PSK
    cannot read encrypted traffic.

    Callbacks and serve handlers run one at a time on a dedicated thread of this
    communicator, never on Zenoh's network threads. Publishing is safe from any number of
    threads. Close with :meth:`close` or a ``with`` block.

    Raises:
        evospikenet.errors.ConfigError: (a ``ValueError``) a malformed node id (1-64
            characters of letters, digits, ``-_.``).
        evospikenet.errors.TransportError: (a ``ConnectionError``) the Zenoh session could
            not be opened (e.g. a listen port in use).
        ImportError: ``metrics_port`` without ``prometheus_client`` installed.
        OSError: ``metrics_port`` cannot be bound.

    Once closed, every method but :meth:`close`, :meth:`stats` and the properties
    ``node_id``, ``namespace`` and ``closed`` raises
    :class:`~evospikenet.errors.CommunicatorClosedError` (a ``RuntimeError``).
    """

    def __new__(
        cls, node_id: str | ZenohConfig | None = None, config: ZenohConfig | None = None
    ) -> Self: ...
    @property
    def node_id(self) -> str:
        """This node's id, the sender id its messages carry."""
    @property
    def namespace(self) -> str:
        """The prefix of every topic on the wire (from the config)."""
    @property
    def encrypted(self) -> bool:
        """Whether payloads are sealed: a PSK is configured or DH keys are in use."""
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the ``with`` block ended)."""
    @property
    def locators(self) -> list[str]:
        """The endpoints this node listens on, with the real port when 0 was requested."""
    def connected_peers(self) -> int:
        """How many Zenoh peers and routers this node currently has a link to."""
    def present_nodes(self, timeout: float = 1.0) -> list[str]:
        """The node ids whose presence tokens (Zenoh liveliness, declared by nodes in
        ``key_exchange="auto"`` mode) answer within ``timeout`` seconds, sorted. Tokens
        are unauthenticated: this lists who claims to be present.

        Raises:
            ValueError: a negative or non-finite timeout.
            evospikenet.errors.CommunicatorClosedError: after close.
        """
    def publish(
        self,
        topic: str,
        data: Any,
        serialize: _Serializer = "json",
        compress: bool | Literal["zstd", "lz4"] | None = None,
    ) -> None:
        """Encrypt and publish ``data`` on ``topic`` (under the namespace).

        Serializers: ``"json"`` (dict, list, str, int, float, bool, None, and numpy
        scalars), ``"raw"`` (bytes-like; bytes are sent without an extra copy) and
        ``"numpy"`` (an ndarray of any numeric or bool dtype and any shape; received as an
        ndarray of the same dtype and shape). Blocks (never drops) while the network is
        congested.

        ``compress``: ``None`` follows the configuration (``ZenohConfig(compression=...)``),
        ``True`` compresses with it or zstd, ``False`` never, or the algorithm by name. The
        payload is compressed before sealing (sent as it is under 1 KiB, or when that does
        not make it shorter) and the algorithm is flagged inside the authenticated
        plaintext: receivers need no setting. Compression shows in the message length how
        well the data compresses: never compress secrets together with data an attacker
        chooses (SECURITY.md, "Compression").

        After :meth:`complete_key_exchange`, publications are held until the peer confirms
        the session, then sent in order (see there).

        Raises:
            ValueError: unknown serializer or compression, invalid topic (wildcards are for
                subscribing), non-finite floats in json.
            TypeError: data the serializer cannot encode.
            evospikenet.errors.KeyExchangeError: (a ``ValueError``) publications held for
                an unconfirmed key exchange passed their limit.
            evospikenet.errors.CommunicatorClosedError: (a ``RuntimeError``) the
                communicator is closed.
        """
    def subscribe(
        self, topic: str, callback: Callable[..., Any], *, with_info: bool = False
    ) -> Subscription:
        """Call ``callback(data)`` for each authentic message on ``topic``.

        ``topic`` may use Zenoh wildcards: ``*`` (one chunk) and ``**`` (any chunks). With
        ``with_info=True`` the callback is called as ``callback(data, sender_node_id,
        topic)``. An exception in the callback is logged with its traceback and counted in
        ``stats()["dropped_by_callback_error"]``; the subscription keeps running.
        """
    def subscribe_queue(
        self, topic: str, maxsize: int = 10000, *, with_info: bool = False
    ) -> MessageQueue:
        """Subscribe into a bounded :class:`MessageQueue` instead of a callback.

        Read it with ``get(timeout=...)`` or by iterating; with ``with_info=True`` each
        item is ``(data, sender_node_id, topic)``. At most ``maxsize`` messages wait:
        others are dropped and counted in ``stats()["dropped_queue_full"]``.
        """
    def request(
        self, topic: str, data: Any, serialize: _Serializer = "json", timeout: float = 5.0
    ) -> Any:
        """Send an encrypted request and return the first authentic reply's data.

        The request goes to every service on ``topic`` (its responder set); each takes it
        once, and a copy replayed to any of them is refused.

        Raises:
            evospikenet.errors.DeadlineExceededError: (a ``TimeoutError``) no authentic
                reply within ``timeout`` seconds.
            evospikenet.errors.RemoteHandlerError: (a ``RuntimeError``) the service's
                handler raised (see :meth:`serve`).
        """
    def serve(
        self, topic: str, handler: Callable[[Any], Any], serialize: _Serializer = "json"
    ) -> Service:
        """Answer requests on ``topic`` with ``handler(data)``, encoded with ``serialize``.

        The reply is encrypted and bound to the request it answers. If the handler raises,
        the error is logged with its traceback and the requester's :meth:`request` raises
        :class:`~evospikenet.errors.RemoteHandlerError` naming the exception's type.
        """
    def initiate_key_exchange(self, peer_id: str) -> bytes:
        """Start an X25519 exchange with ``peer_id``: returns our fresh 32-byte public key
        to give to the peer (e.g. ``print(key.hex())``). Initiating again with the same
        peer replaces the pending exchange.

        Raises:
            evospikenet.errors.KeyExchangeError: (a ``ValueError``) a malformed peer id, or
                this node's own id. Logged as ``ERROR Key exchange failed: <reason>``.
        """
    def complete_key_exchange(
        self, peer_public_key: bytes | str, peer_id: str | None = None
    ) -> None:
        """Complete the pending exchange with the peer's public key: 32 bytes, or 64 hex
        digits (spaces, ``:`` and line breaks are ignored). ``peer_id`` may be left out when
        a single exchange is pending.

        Session keys come from HKDF-SHA256 over the X25519 secret and both node ids and
        public keys (and the PSK, if configured). From now on this node is in DH mode: it
        seals with its own sender key, hands it to the peer over the new channel (sent
        again until acknowledged), and accepts no plaintext. Compare
        :meth:`fingerprint` and :meth:`peer_fingerprint` with the peer's screen to rule
        out a man in the middle.

        It returns at once, while the peer may not have completed its side yet. From
        here until the peer confirms the session (it holds our key, we hold its),
        :meth:`publish` holds publications, in order, and sends them once it does: the
        next ``publish`` reaches the peer. At most 4096 messages or 64 MiB are held;
        past that ``publish`` raises :class:`~evospikenet.errors.KeyExchangeError`.
        Requests are not held: call :meth:`wait_for_session` before :meth:`request`.

        Raises:
            evospikenet.errors.KeyExchangeError: (a ``ValueError``) a malformed or unusable
                key (wrong length, not hex, a low-order point, our own key), nothing
                pending (never initiated, or completed already), several pending and no
                ``peer_id``. Logged as ``ERROR Key exchange failed: <reason>``, never with
                key material.
        """
    def fingerprint(self, peer_id: str | None = None) -> str:
        """The fingerprint of our public key in the exchange with ``peer_id`` (default:
        our identity key if configured, else the latest exchange's key):
        ``XXXX XXXX XXXX XXXX XXXX XXXX XXXX XXXX``, the first 128 bits of SHA-256 over a
        label and the key. Both nodes print the same text for the same key."""
    def peer_fingerprint(self, peer_id: str) -> str:
        """The fingerprint of the key ``peer_id`` used in our latest exchange (its identity
        key when identity keys authenticated the exchange)."""
    def session_established(self, peer_id: str) -> bool:
        """Whether traffic flows encrypted both ways with ``peer_id``: the exchange is
        complete on our side, the peer acknowledged our sender key and we hold its."""
    def wait_for_session(self, peer_id: str, timeout: float = 10.0) -> None:
        """Block until :meth:`session_established`; otherwise raise
        :class:`~evospikenet.errors.DeadlineExceededError` (a ``TimeoutError``) naming the
        peer."""
    def session_peers(self) -> list[str]:
        """Peers with an established session, sorted."""
    def rekey(self) -> list[str]:
        """Draw a new sender key and run a new X25519 exchange with every peer (each
        authenticated by the previous channel). The node seals with the new key once every
        peer acknowledged it, or after 3 s for those that did not (they keep being sent it);
        returns then, with the peers that acknowledged it. Receivers erase the old key
        ``session_grace`` seconds after a message under the new one authenticated. Runs
        automatically after ``rekey_after_seconds`` or ``rekey_after_messages``."""
    def rotate_psk(
        self, new_psk: str | bytes, grace_seconds: float = 30.0, *, seal_after: float = 0.0
    ) -> None:
        """Rotate the pre-shared key. ``new_psk`` is accepted at once and sealed with after
        ``seal_after`` seconds; the previous key stays accepted ``grace_seconds`` after that,
        then is erased. Messages carry the 4-byte key id, so receivers pick the right key.
        Nodes that all call ``rotate_psk`` within ``seal_after`` seconds of each other lose
        no message. In DH mode the PSK authenticates new exchanges; sessions already
        established carry on.

        Raises:
            evospikenet.errors.ConfigError: (a ``ValueError``) a malformed PSK.
            ValueError: a communicator without a PSK.
        """
    def stats(self) -> Stats:
        """The counters since the communicator was opened (see :class:`Stats`); still
        readable after close."""
    def sender_stats(self) -> list[SenderStats]:
        """What each sender published on each topic this node subscribes to, accepted or
        refused (see :class:`SenderStats`), sorted by sender and topic. Bounded: past
        4096 pairs, new ones are counted in one row with ``sender`` ``None``.

        Raises:
            evospikenet.errors.CommunicatorClosedError: after close.
        """
    def close(self) -> None:
        """Close the Zenoh session and stop the callback thread. Idempotent."""

# Spike-update kernels (src/py/kernels/): the native functions behind evospikenet.kernels,
# whose module documentation gives the rules for array arguments, errors and threads.

KERNEL_PARALLEL_MIN_LEN: int
"""Population size from which ``threads=None`` uses every thread of the kernel pool."""

def kernel_default_threads(n: int) -> int:
    """Number of threads ``threads=None`` uses for ``n`` neurons.

    1 below ``KERNEL_PARALLEL_MIN_LEN``, otherwise the size of the kernel thread pool.
    """

def kernel_defaults() -> dict[str, dict[str, Any]]:
    """The models' default parameters, as the Rust core defines them:
    ``{"lif_int": {"leak": ..., ...}, "lif_float": {...}, "izhikevich": {...}}``.

    :mod:`evospikenet.kernels` takes its defaults from here.
    """

def kernel_lif_int_step(
    v: NDArray[np.int16],
    i_syn: NDArray[np.int16] | NDArray[np.int32],
    leak: int,
    threshold: int,
    reset: int,
    *,
    spikes: SpikeForm = "mask",
    out: Spikes | None = None,
    threads: int | None = None,
) -> Spikes:
    """Integer LIF step (EvoSpikeNet's ``LIFNeuronLayer``), in place on ``v``.

    ``v = clip((v * leak) // 256 + i_syn, -32768, 32767)`` (floor division), then
    ``spike = v >= threshold`` and ``v[spike] = reset``. ``leak``, ``threshold`` and
    ``reset`` must fit in int16. ``spikes``, ``out`` and the result are as the module
    documentation of :mod:`evospikenet.kernels` says for every step function.
    """

def kernel_lif_float_step(
    v: NDArray[np.float32],
    i_syn: NDArray[np.float32],
    refractory: NDArray[np.int32],
    i_in: NDArray[np.float32] | float | None,
    params: LifFloatParams,
    *,
    spikes: SpikeForm = "mask",
    out: Spikes | None = None,
    threads: int | None = None,
) -> Spikes:
    """Current-based LIF step with exact integration (NEST's ``iaf_psc_exp``).

    In place on ``v`` (mV), ``i_syn`` (pA) and ``refractory`` (steps left); ``i_in`` is
    the input current arriving this step. ``params`` as :class:`LifFloatParams` documents.
    """

def kernel_izhikevich_step(
    v: NDArray[np.float32],
    u: NDArray[np.float32],
    i_in: NDArray[np.float32] | float,
    params: IzhikevichParams,
    *,
    spikes: SpikeForm = "mask",
    out: Spikes | None = None,
    threads: int | None = None,
) -> Spikes:
    """Izhikevich (2003) step, forward Euler, in place on ``v`` and ``u``.

    ``i_in`` and the ``a``, ``b``, ``c``, ``d`` of ``params`` are scalars or one float32
    per neuron. A spike is ``v >= params.v_peak`` after the step.
    """

def kernel_propagate(
    spikes: NDArray[np.uint32],
    weights: CsrLike,
    target: NDArray[np.int16] | NDArray[np.int32] | NDArray[np.float32],
) -> int:
    """Add the CSR row of every neuron in ``spikes`` into ``target``; return the event count.

    Dtypes, saturation and checks as :func:`evospikenet.kernels.propagate` documents.
    """

def kernel_validate_csr(weights: CsrLike) -> None:
    """Check a whole CSR matrix: lengths, ``indptr`` non-decreasing from 0, columns in range."""

def kernel_spikes_to_indices(mask: NDArray[np.bool_]) -> NDArray[np.uint32]:
    """Return the sorted uint32 indices of the set entries of a bool mask."""

def kernel_indices_to_spikes(indices: NDArray[np.uint32], out: NDArray[np.bool_]) -> None:
    """Write the mask of ``indices`` into ``out`` (cleared first; indices checked first)."""
