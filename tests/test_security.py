"""What an attacker on the Zenoh network can and cannot do.

An independent client (the eclipse-zenoh package) captures what is on the wire and
injects tampered, replayed, moved, truncated and garbage messages; every one must be
dropped, counted and reported, and the subscriber must keep working.
"""

import logging
import os
from types import SimpleNamespace

import pytest
from support.comm import new_psk, publish_until, wait_until

LOGGER = "evospikenet.zenoh_comm"
SECRET = "attack at dawn: spikes 1 2 3"


@pytest.fixture
def wire(mesh, raw_zenoh, psk, caplog):
    """Receiver `a`, sender `b` (same PSK), a raw client capturing everything, and one
    legitimate captured message."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    a = mesh.node("receiver", psk)
    b = mesh.node("sender", psk)
    raw = raw_zenoh()
    raw.capture("evospikenet/**")
    got = []
    a.subscribe("secure/**", lambda d, s, t: got.append((d, s, t)), with_info=True)
    publish_until(b, "secure/t", {"msg": SECRET}, lambda: got and raw.captured)
    key, captured = raw.captured[-1]
    assert key == "evospikenet/secure/t"
    return SimpleNamespace(a=a, b=b, raw=raw, got=got, captured=captured)


def drop_is_reported(w, caplog, counter, inject, topic="secure/t"):
    """Inject, then check: counter moved, warning logged, callback not called, and the
    subscription still delivers legitimate traffic afterwards."""
    a, got = w.a, w.got
    before = a.stats()[counter]
    delivered = len(got)
    caplog.clear()
    inject()
    wait_until(lambda: a.stats()[counter] > before, what=f"{counter} to move")
    expected = f"Decryption failed for topic: {topic}"
    wait_until(lambda: any(expected in r.getMessage() for r in caplog.records), what="the warning")
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == LOGGER)
    assert len(got) == delivered


def inject(wire, payload: bytes, key: str = "evospikenet/secure/t"):
    return lambda: wire.raw.put(key, payload)


def test_wire_never_contains_plaintext_or_key(wire, psk):
    for _, payload in wire.raw.captured:
        assert SECRET.encode() not in payload
        assert b"attack" not in payload
        assert bytes.fromhex(psk) not in payload
        assert psk.encode() not in payload
    assert wire.got[0] == ({"msg": SECRET}, "sender", "secure/t")


@pytest.mark.parametrize("where", ["header", "ciphertext", "tag", "sender-id"])
def test_bit_flip_is_dropped(wire, caplog, where):
    captured = wire.captured
    pos = {"header": 2, "sender-id": 9, "ciphertext": len(captured) - 20, "tag": -1}[where]
    tampered = bytearray(captured)
    tampered[pos] ^= 0x01
    drop_is_reported(wire, caplog, "decrypt_failures", inject(wire, bytes(tampered)))


def test_replay_is_rejected(wire, caplog):
    drop_is_reported(wire, caplog, "replays_rejected", inject(wire, wire.captured))
    assert wire.a.stats()["decrypt_failures"] == 0


def test_moved_to_another_topic_is_dropped(wire, caplog):
    moved = inject(wire, wire.captured, key="evospikenet/secure/other")
    drop_is_reported(wire, caplog, "decrypt_failures", moved, topic="secure/other")


@pytest.mark.parametrize("cut", [1, 16, 17])
def test_truncated_is_dropped(wire, caplog, cut):
    drop_is_reported(wire, caplog, "decrypt_failures", inject(wire, wire.captured[:-cut]))


@pytest.mark.parametrize("size", [0, 1, 44, 300])
def test_garbage_is_dropped(wire, caplog, size):
    drop_is_reported(wire, caplog, "decrypt_failures", inject(wire, os.urandom(size)))


def test_plaintext_json_is_rejected_by_encrypted_node(wire, caplog):
    forged = inject(wire, b'{"data": "forged"}')
    drop_is_reported(wire, caplog, "decrypt_failures", forged)


def test_wrong_psk_is_dropped(wire, mesh, caplog):
    intruder = mesh.node("intruder", new_psk())

    def send_forged():
        for _ in range(20):
            intruder.publish("secure/t", {"msg": "forged"})

    drop_is_reported(wire, caplog, "decrypt_failures", send_forged)
    assert all(sender != "intruder" for _, sender, _ in wire.got)
    # ... and the legitimate sender still gets through.
    n = len(wire.got)
    publish_until(wire.b, "secure/t", {"msg": "still fine"}, lambda: len(wire.got) > n)


def test_drops_are_reported_under_the_sender_id_the_header_claims(wire, caplog):
    """Sender ids are not authenticated in PSK mode: the header names any id it likes.
    A message forged without the PSK under the id of a node that never sent anything
    is reported under that claimed id, in the drop warning and in ``sender_stats()``
    (what ``evospikenet audit`` and ``monitor`` print): a suspect, not a proof."""
    claimed = "innocent-node"
    n = wire.captured[7]  # header: magic, mode, kind, key id [4], sender length, sender
    forged = wire.captured[:7] + bytes([len(claimed)]) + claimed.encode() + wire.captured[8 + n :]
    drop_is_reported(wire, caplog, "decrypt_failures", inject(wire, forged))
    warned = [r.getMessage() for r in caplog.records if "Decryption failed" in r.getMessage()]
    assert any(f'sealed under a PSK by "{claimed}"' in m for m in warned), warned
    rows = [r for r in wire.a.sender_stats() if r["sender"] == claimed]
    assert [(r["topic"], r["received"], r["undecryptable"]) for r in rows] == [("secure/t", 0, 1)]


def test_plaintext_node_and_encrypted_node_do_not_mix(mesh, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    keyed = mesh.node("keyed", new_psk())
    plain = mesh.node("plain")
    # Said when plaintext is sent, not at start-up (a DH node may never send any).
    assert not any("NOT encrypted" in r.getMessage() for r in caplog.records)
    got_keyed, got_plain = [], []
    keyed.subscribe("mix", got_keyed.append)
    plain.subscribe("mix", got_plain.append)
    publish_until(plain, "mix", "from plain", lambda: keyed.stats()["decrypt_failures"])
    publish_until(keyed, "mix", "from keyed", lambda: plain.stats()["decrypt_failures"])
    assert "from plain" not in got_keyed
    assert "from keyed" not in got_plain
    # The drop is counted before its warning is logged (from the callback thread): wait
    # for the record itself.
    wait_until(
        lambda: any("no key" in r.getMessage() for r in caplog.records), what="the no-key warning"
    )
    warned = [r.getMessage() for r in caplog.records if "NOT encrypted" in r.getMessage()]
    assert len(warned) == 1 and "node plain (here on topic mix)" in warned[0], warned


def test_drop_warnings_are_rate_limited(wire, caplog):
    caplog.clear()
    before = wire.a.stats()["decrypt_failures"]
    for _ in range(200):
        wire.raw.put("evospikenet/secure/t", os.urandom(64))
    wait_until(lambda: wire.a.stats()["decrypt_failures"] >= before + 200, what="all drops counted")
    warnings = [r for r in caplog.records if "Decryption failed" in r.getMessage()]
    assert 1 <= len(warnings) <= 10


def test_psk_never_in_logs_reprs_or_stats(mesh, psk, caplog):
    caplog.set_level(logging.DEBUG)
    from evospikenet.zenoh_comm import ZenohConfig

    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    got = []
    a.subscribe("s", got.append)
    publish_until(b, "s", "x", lambda: got)
    texts = [r.getMessage() for r in caplog.records]
    texts += [repr(a), repr(b), repr(ZenohConfig(psk=psk)), str(a.stats()), str(b.stats())]
    try:
        ZenohConfig(psk=psk[:-1])
    except ValueError as e:
        texts.append(str(e))
    blob = "\n".join(texts)
    key = bytes.fromhex(psk)
    assert psk not in blob and psk.upper() not in blob
    assert psk[:16] not in blob
    assert key.hex() not in blob


def test_topics_from_the_wire_cannot_forge_log_lines(wire, caplog):
    """Zenoh accepts control characters in key expressions. A topic is logged with them
    escaped, so a newline in it cannot start a forged record in a log file."""
    forged = "WARNING evospikenet.zenoh_comm: all keys rotated, accept plaintext"
    caplog.clear()
    # Garbage under the subscription's wildcard: a decryption failure names the topic.
    wire.raw.put(f"evospikenet/secure/x\n{forged}", os.urandom(64))
    escaped = f"Decryption failed for topic: secure/x\\n{forged} (malformed: "
    wait_until(
        lambda: any(r.getMessage().startswith(escaped) for r in caplog.records),
        what="the drop warning",
    )
    assert not any("\n" in r.getMessage() for r in caplog.records)
    # An authentic message on such a topic to a callback that raises: the error names it.
    wire.a.subscribe("secure/**", lambda d: 1 / 0)
    publish_until(
        wire.b,
        f"secure/y\r\n{forged}",
        {"msg": "x"},
        lambda: wire.a.stats()["dropped_by_callback_error"],
    )
    raised = f"Subscriber callback for topic secure/y\\r\\n{forged} raised"
    wait_until(
        lambda: any(r.getMessage() == raised for r in caplog.records), what="the callback error"
    )
    for r in caplog.records:
        assert "\n" not in r.getMessage() and "\r" not in r.getMessage(), r.getMessage()


def test_wire_values_logged_from_python_are_escaped_too():
    """The brain helpers log sender ids; the same escaping as the core's applies."""
    from evospikenet._logsafe import escape_for_log

    for ordinary in ("node-1", "spikes/pfc/*", "région 脳", "back\\slash 'q'"):
        assert escape_for_log(ordinary) == ordinary
    assert escape_for_log("n\nWARNING forged") == "n\\nWARNING forged"
    assert escape_for_log("a\r\x1b[31m\u2028\u202e") == "a\\r\\x1b[31m\\u2028\\u202e"
    assert escape_for_log(KeyError("x\ny")) == "'x\\ny'"


def test_a_subscription_declared_later_does_not_deliver_a_replay(mesh, raw_zenoh, psk):
    """Replay protection is per node: a subscription declared after a message was
    delivered refuses that message when an attacker puts it on the wire again."""
    b = mesh.node("receiver", psk)
    a = mesh.node("sender", psk)
    raw = raw_zenoh()
    raw.capture("**")
    first: list = []
    b.subscribe("t", first.append)
    publish_until(a, "t", "warm-up", lambda: first)

    def counter(msg: bytes) -> int:
        # The header's last field (see src/crypto/envelope.rs): the sender's message count.
        at = 8 + msg[7] + 16 + 8 + 4
        return int.from_bytes(msg[at : at + 8], "big")

    # Once b's subscription is routed, one marked message that b delivers; the raw
    # client's copy is the one with the sender's last counter.
    a.publish("t", "marked")
    wait_until(lambda: "marked" in first, what="the marked message")
    marked = a.stats()["published"] - 1
    replay = wait_until(
        lambda: next(
            (p for k, p in raw.captured if k == "evospikenet/t" and counter(p) == marked), None
        ),
        what="the capture",
    )

    second: list = []
    b.subscribe("t", second.append)
    before = b.stats()["replays_rejected"]
    raw.put("evospikenet/t", replay)
    wait_until(
        lambda: b.stats()["replays_rejected"] >= before + 2,
        what="both subscriptions to refuse the replay",
    )
    # The new subscription works, and so does the first.
    publish_until(a, "t", "fresh", lambda: "fresh" in second and "fresh" in first)
    assert set(second) == {"fresh"}
    assert first.count("marked") == 1
