"""Fuzzing live communicators from the network.

A raw eclipse-zenoh client injects random bytes and mutated real messages (bit flips,
truncations, extensions, headers claiming huge lengths, a real header over a garbage body,
messages moved to another topic, replays) at a subscriber with a PSK, at a subscriber in
DH mode (and its key-exchange queryable) and at a `serve()` queryable. Nothing injected
may reach user code, every drop must be counted, the process must survive, and genuine
traffic must still arrive after. A node without a key accepts plaintext from anyone, so
its JSON and numpy decoders get arbitrary payloads: each is delivered intact or counted.
The parsers themselves are fuzzed far harder in Rust (`fuzz/`); this checks the whole
receive path of the installed package, Python callbacks included.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.comm import publish_until, wait_until

zenoh = pytest.importorskip("zenoh", reason="eclipse-zenoh is a test dependency (.[test])")

TOPIC = "fuzz/t"
KEY = f"evospikenet/{TOPIC}"
# Other keys the subscription ("fuzz/**") also covers: a message moved there must fail.
OTHER_KEYS = ["evospikenet/fuzz/other", "evospikenet/fuzz/t/deeper", "evospikenet/fuzz/T"]
COUNTERS = ("decrypt_failures", "replays_rejected", "decode_errors", "dropped_by_callback_error")


def header_len(msg: bytes) -> int:
    """Length of the cleartext header (see src/crypto/envelope.rs): 44 + sender id."""
    return 44 + msg[7]


def flip(msg: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(msg)
    out[pos % len(out)] ^= 1 << bit
    return bytes(out)


def put_u64(msg: bytes, offset: int, value: int) -> bytes:
    return msg[:offset] + struct.pack(">Q", value) + msg[offset + 8 :]


def huge_claims(msg: bytes) -> list[bytes]:
    """The same message with each length or number in its header at its maximum."""
    n = header_len(msg)
    longest_sender = msg[:7] + b"\xff" + msg[8:]  # a 255-byte sender id in a short message
    return [
        longest_sender,
        longest_sender[: 8 + 255],
        put_u64(msg, n - 8, 2**64 - 1),  # counter
        put_u64(msg, n - 20, 2**64 - 1),  # session start
        msg[: n - 12] + b"\xff\xff\xff\xff" + msg[n - 8 :],  # time offset
        msg[:n] + b"\xff" * 17,  # a body of only 0xff, tag included
    ]


def injections(genuine: list[bytes], key: str, other_keys: list[str]):
    """(key, payload) pairs derived from `genuine` (captured messages the target got)."""
    msg = st.sampled_from(genuine)
    mutated = st.one_of(
        st.binary(max_size=300),
        st.builds(flip, msg, st.integers(0, 10_000), st.integers(0, 7)),
        msg.flatmap(lambda m: st.integers(0, len(m) - 1).map(lambda cut: m[:cut])),
        st.builds(lambda m, extra: m + extra, msg, st.binary(min_size=1, max_size=64)),
        st.builds(lambda m, body: m[: header_len(m)] + body, msg, st.binary(max_size=120)),
        msg.flatmap(lambda m: st.sampled_from(huge_claims(m))),
    ).map(lambda p: (key, p))
    moved = st.tuples(st.sampled_from(other_keys), msg)
    replayed = msg.map(lambda m: (key, m))
    return st.one_of(mutated, mutated, mutated, moved, replayed)


def put(raw, key: str, payload: bytes) -> None:
    # Blocking congestion control: an injected message is never dropped on the way, so
    # every one of them must show up in the counters.
    raw.session.put(key, payload, congestion_control=zenoh.CongestionControl.BLOCK)


def counters(comm) -> dict[str, int]:
    stats = comm.stats()
    return {k: stats[k] for k in COUNTERS}


def run_injections(
    target,
    genuine: list[bytes],
    send: Callable[[str, bytes], None],
    max_examples: int,
    key: str,
    other_keys: list[str],
    replayable: list[bytes],
) -> tuple[int, int, dict[str, int]]:
    """Inject `max_examples` hostile messages into `target`'s consumer on `key` (and on
    each of `other_keys`); wait until all are counted. An unchanged message of
    `replayable` sent to `key` is a replay; everything else must fail authentication.
    Returns (injected, replays among them, counter increase)."""
    before = counters(target)
    sent = {"all": 0, "replays": 0}

    @settings(max_examples=max_examples, deadline=None, database=None)
    @given(injections(genuine, key, other_keys))
    def inject(injection: tuple[str, bytes]) -> None:
        k, payload = injection
        send(k, payload)
        sent["all"] += 1
        sent["replays"] += k == key and payload in replayable

    inject()
    n, replays = sent["all"], sent["replays"]

    def delta() -> dict[str, int]:
        now = counters(target)
        return {k: now[k] - before[k] for k in COUNTERS}

    deadline = time.monotonic() + 30
    while (d := delta())["decrypt_failures"] + d["replays_rejected"] < n:
        assert time.monotonic() < deadline, f"{n} injected ({replays} replays), counted {d}"
        time.sleep(0.01)
    time.sleep(0.2)  # anything counted twice would show now
    d = delta()
    assert d == {
        "decrypt_failures": n - replays,
        "replays_rejected": replays,
        "decode_errors": 0,
        "dropped_by_callback_error": 0,
    }, (n, replays, d)
    return n, replays, d


def figure(capsys, what: str, n: int, replays: int, d: dict[str, int], extra: str = "") -> None:
    with capsys.disabled():
        print(
            f"\n[fuzz-live] {what}: {n} messages injected ({replays} replays) -> "
            f"decrypt_failures +{d['decrypt_failures']}, replays_rejected "
            f"+{d['replays_rejected']}, decode_errors +{d['decode_errors']}, "
            f"delivered 0{extra}"
        )


def subscriber_case(mesh, raw_zenoh, capsys, what: str, **node_kw):
    a = mesh.node("receiver", **node_kw)
    b = mesh.node("sender", **node_kw)
    if node_kw.get("key_exchange") == "auto":
        a.wait_for_session("sender")
        b.wait_for_session("receiver")
    raw = raw_zenoh()
    raw.capture("evospikenet/fuzz/**")
    got: list = []
    a.subscribe("fuzz/**", lambda d, s, t: got.append((d, s, t)), with_info=True)
    publish_until(b, TOPIC, {"step": 0, "spikes": [1, 2, 3]}, lambda: got and raw.captured)
    # Routes are up: from now on the receiver gets every message the raw client captures.
    # (A captured message the receiver never got would be accepted once when "replayed",
    # which is correct, and would blur the accounting.)
    raw.captured.clear()
    received = len(got)
    for step in (1, 2, 3):
        b.publish(TOPIC, {"step": step, "spikes": [step]})
    wait_until(lambda: len(raw.captured) >= 3 and len(got) >= received + 3, what="genuine messages")
    genuine = [p for k, p in raw.captured if k == KEY]
    assert len(genuine) == 3 and len(got) == received + 3
    if node_kw.get("key_exchange") == "auto":
        assert all(p[1] == 2 for p in genuine), "DH mode on the wire"
    delivered = list(got)
    assert all(s == "sender" and t == TOPIC for _, s, t in delivered)

    n, replays, d = run_injections(
        a, genuine, lambda k, p: put(raw, k, p), 250, KEY, OTHER_KEYS, replayable=genuine
    )

    assert got == delivered, "an injected message reached the callback"
    # Still working: a genuine message arrives after all that.
    publish_until(b, TOPIC, {"after": True}, lambda: any(x[0] == {"after": True} for x in got))
    assert all(s == "sender" for _, s, _ in got)
    figure(capsys, what, n, replays, d)
    return a, b, raw


def test_psk_subscriber_drops_everything_injected(mesh, raw_zenoh, psk, capsys):
    subscriber_case(mesh, raw_zenoh, capsys, "PSK subscriber", psk=psk)


def test_dh_subscriber_and_key_exchange_drop_everything_injected(mesh, raw_zenoh, psk, capsys):
    a, b, raw = subscriber_case(
        mesh, raw_zenoh, capsys, "DH-mode subscriber", psk=psk, key_exchange="auto"
    )
    # The key manager parses network bytes too: garbage is counted and ignored.
    before = a.stats()["key_exchange_failures"]
    sent = {"n": 0}

    @settings(max_examples=100, deadline=None, database=None)
    @given(st.binary(min_size=1, max_size=200))
    def inject(junk: bytes) -> None:
        if junk[:1] == b"\xe3":  # the control magic: keep every input unparseable
            junk = b"\x00" + junk[1:]
        raw.put("evospikenet/security/key_exchange/receiver", junk)
        sent["n"] += 1

    inject()
    wait_until(
        lambda: a.stats()["key_exchange_failures"] - before >= sent["n"],
        what="malformed key-exchange messages to be counted",
    )
    assert a.session_established("sender") and b.session_established("receiver")
    with capsys.disabled():
        print(
            f"\n[fuzz-live] DH key exchange: {sent['n']} malformed messages -> "
            f"key_exchange_failures +{a.stats()['key_exchange_failures'] - before}"
        )
    got: list = []
    a.subscribe("fuzz/again", got.append)
    publish_until(b, "fuzz/again", "still here", lambda: got)


def test_service_drops_injected_requests(mesh, raw_zenoh, psk, capsys):
    server = mesh.node("server", psk=psk)
    client = mesh.node("client", psk=psk)
    raw = raw_zenoh()
    key = "evospikenet/fuzz/rpc"
    # A genuine request, captured while only the raw client (which never answers) serves
    # the key: a query goes to one queryable, so a spy next to the service would see only
    # some of them.
    requests: list[bytes] = []
    spy = raw.session.declare_queryable(
        key, lambda q: requests.append(q.payload.to_bytes()) if q.payload is not None else None
    )

    def ask() -> list[bytes]:
        try:
            client.request("fuzz/rpc", {"n": 1}, timeout=0.3)
        except TimeoutError:
            pass
        return requests

    wait_until(ask, what="the raw client to capture a request")
    spy.undeclare()
    request = requests[0]
    calls: list = []
    server.serve("fuzz/rpc", lambda d: calls.append(d) or {"ok": d})
    # A second service: a request moved to its key must fail there.
    server.serve("fuzz/rpc2", lambda d: calls.append(d) or {"ok": d})

    def deliver() -> list:
        # The server has not seen this request: it is genuine and fresh, so accepted once.
        list(raw.session.get(key, payload=request, timeout=2))
        return calls

    wait_until(deliver, what="the server to accept the captured request")
    assert calls == [{"n": 1}]
    # A genuine *publication* on the same key, sent as a request, must fail too: the
    # message kind is authenticated.
    raw.capture("evospikenet/fuzz/rpc")
    publish_until(client, "fuzz/rpc", {"n": 2}, lambda: raw.captured)
    publication = raw.captured[-1][1]
    calls_before = len(calls)
    handles = []

    def send(key: str, payload: bytes) -> None:
        handles.append(raw.session.get(key, payload=payload, timeout=5))

    n, replays, d = run_injections(
        server,
        [request, publication],
        send,
        200,
        key,
        ["evospikenet/fuzz/rpc2"],
        replayable=[request],
    )
    assert len(calls) == calls_before, "an injected request reached the handler"
    replies = [r for h in handles for r in h]
    assert replies == [], "a reply was sent to an injected request"
    assert client.request("fuzz/rpc", {"n": 3}, timeout=5.0) == {"ok": {"n": 3}}
    figure(capsys, "serve() queryable", n, replays, d, extra=f", replies 0 of {len(handles)}")


# ----- a node without a key: the payload decoders face the network directly -----


def plain_message(payload: bytes, fmt: int, counter: int) -> bytes:
    """A plaintext-mode message (mode 0) as a keyless node accepts from anyone."""
    sender = b"raw-client"
    header = bytes([0xE1, 0, 0, 0, 0, 0, 0, len(sender)]) + sender + b"\x07" * 16
    header += struct.pack(">QIQ", int(time.time() * 1000), 0, counter)
    return header + payload + bytes([fmt])


def numpy_payload(data: bytes, dims: list[int], dtype: bytes, ndim=None, dtype_len=None) -> bytes:
    """A numpy payload (src/codec.rs): data, u64be dims, dtype text, ndim, dtype length."""
    trailer = b"".join(struct.pack(">Q", d) for d in dims) + dtype
    n = len(dims) if ndim is None else ndim
    k = len(dtype) if dtype_len is None else dtype_len
    return data + trailer + bytes([n, k])


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
DTYPES = ["|b1", "|u1", "<i2", ">i4", "<u8", "<f2", ">f4", "<f8", "<c8", ">c16"]


@st.composite
def plain_payloads(draw):
    """(payload, format byte, expected object or None, expected counter or None)."""
    import json

    import numpy as np

    kind = draw(st.sampled_from(["json", "json-bytes", "nested", "array", "trailer", "raw", "tag"]))
    if kind == "json":
        value = draw(JSON_VALUES)
        return json.dumps(value).encode(), 1, ("value", value)
    if kind == "json-bytes":
        return draw(st.binary(max_size=200)), 1, None
    if kind == "nested":
        depth = draw(st.integers(1, 100_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return opener * depth + b"1" + closer * depth, 1, None
    if kind == "array":
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        count = int(np.prod(shape)) if shape else 1
        itemsize = np.dtype(dtype).itemsize
        data = draw(st.binary(min_size=count * itemsize, max_size=count * itemsize))
        expected = np.frombuffer(data, dtype=dtype).reshape(shape)
        return numpy_payload(data, shape, dtype.encode()), 3, ("array", expected)
    if kind == "trailer":
        dims = draw(st.lists(st.sampled_from([0, 1, 3, 2**32, 2**63, 2**64 - 1]), max_size=4))
        # A byte-order mark then any text: what numpy dtype strings look like, or nearly
        # (non-ASCII text included: it once split a character and panicked).
        text = st.text(max_size=3) | st.text(st.characters(min_codepoint=0x80), max_size=2)
        mark_and_text = st.tuples(st.sampled_from("<>|="), text)
        dtype = draw(
            st.sampled_from(DTYPES).map(str.encode)
            | mark_and_text.map(lambda t: (t[0] + t[1]).encode())
            | st.binary(max_size=8)
        )
        data = draw(st.binary(max_size=64))
        ndim = draw(st.none() | st.integers(0, 255))
        dtype_len = draw(st.none() | st.integers(0, 255))
        return numpy_payload(data, dims, dtype, ndim, dtype_len), 3, None
    if kind == "raw":
        data = draw(st.binary(max_size=200))
        return data, 2, ("value", data)
    tag = draw(st.integers(0, 255).filter(lambda t: t not in (1, 2, 3)))
    return draw(st.binary(max_size=50)), tag, ("counter", "decode_errors")


def test_keyless_node_decoders_survive_arbitrary_payloads(mesh, raw_zenoh, capsys):
    """A node without a PSK accepts plaintext from anyone (documented, warned), so its
    JSON and numpy decoders get arbitrary bytes: each message is delivered intact or
    counted as dropped, and the node keeps working."""
    import numpy as np

    a = mesh.node("keyless")
    b = mesh.node("keyless-sender")
    raw = raw_zenoh()
    got: list = []
    a.subscribe("fuzz/plain", got.append)
    publish_until(b, "fuzz/plain", "first", lambda: got)
    key = "evospikenet/fuzz/plain"
    outcomes = {"delivered": 0, "dropped_by_callback_error": 0, "decode_errors": 0}
    counter = [0]

    def snapshot() -> tuple[int, int, int]:
        s = a.stats()
        return len(got), s["dropped_by_callback_error"], s["decode_errors"]

    @settings(max_examples=200, deadline=None, database=None)
    @given(plain_payloads())
    # Once fatal: `numeric_itemsize` split the character and panicked in the thread that
    # runs callbacks, so nothing was delivered any more.
    @example((numpy_payload(b"\0", [1], "<\u0113\u0031".encode()), 3, None))
    def inject(case) -> None:
        payload, fmt, expected = case
        before = snapshot()
        counter[0] += 1
        put(raw, key, plain_message(payload, fmt, counter[0]))
        after = wait_until(
            lambda: (s := snapshot()) != before and s, what="the message to be handled"
        )
        moved = [x - y for x, y in zip(after, before, strict=True)]
        assert sorted(moved) == [0, 0, 1], (moved, payload[:80], fmt)
        outcome = list(outcomes)[moved.index(1)]
        outcomes[outcome] += 1
        if expected is None:
            return
        what, value = expected
        if what == "counter":
            assert outcome == value
        elif what == "array":
            assert outcome == "delivered"
            arr = got[-1]
            assert (arr.dtype, arr.shape, arr.tobytes()) == (
                value.dtype,
                value.shape,
                value.tobytes(),
            )
        else:
            assert outcome == "delivered" and got[-1] == value

    inject()
    got.clear()
    publish_until(b, "fuzz/plain", np.arange(3, dtype="<u4"), lambda: got, serialize="numpy")
    assert got[0].tolist() == [0, 1, 2]
    with capsys.disabled():
        print(
            f"\n[fuzz-live] keyless node decoders: {counter[0]} plaintext payloads -> "
            + ", ".join(f"{k} {v}" for k, v in outcomes.items())
        )
