"""DH mode under concurrency and attack, on the real Zenoh: two honest nodes in automatic
mode and a raw eclipse-zenoh participant on the same mesh, holding no key. Each test names
the finding of the key-management review it covers."""

import contextlib
import os
import struct
import threading
import time

import pytest
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import LOOPBACK_ANY_PORT, RawZenoh, publish_until, wait_until

LOGGER = "evospikenet.zenoh_comm"
KEY_EXCHANGE = "evospikenet/security/key_exchange/"


class Exposed:
    """A raw eclipse-zenoh session (the attacker, holding no key) linked to node-1 before
    node-2 exists, and to node-2 as soon as it joins (gossip): it sees and can inject
    every message between them."""

    def __init__(self, psk: str) -> None:
        pytest.importorskip("zenoh")
        self.psk = psk
        self.nodes: list[ZenohCommunicator] = [self._node("node-1", [])]
        self.raw = RawZenoh(self.nodes[0].locators)

    def _node(self, node_id: str, connect: list[str]) -> ZenohCommunicator:
        cfg = ZenohConfig(
            listen=[LOOPBACK_ANY_PORT], connect=connect, psk=self.psk, key_exchange="auto"
        )
        return ZenohCommunicator(node_id, cfg)

    def pair(self):
        """node-2 joins; both must have a session within 5 s."""
        a = self.nodes[0]
        b = self._node("node-2", a.locators)
        self.nodes.append(b)
        wait_until(
            lambda: len(list(self.raw.session.info.peers_zid())) == 2,
            what="the raw client to link",
        )
        a.wait_for_session("node-2", timeout=5)
        b.wait_for_session("node-1", timeout=5)
        return a, b

    def close(self) -> None:
        for n in self.nodes:
            n.close()
        self.raw.close()


@pytest.fixture
def exposed(psk):
    with contextlib.closing(Exposed(psk)) as e:
        yield e


def pair(mesh, psk):
    a = mesh.node("node-1", psk=psk, key_exchange="auto")
    b = mesh.node("node-2", psk=psk, key_exchange="auto")
    a.wait_for_session("node-2", timeout=5)
    b.wait_for_session("node-1", timeout=5)
    return a, b


INBOXES: dict[str, list] = {}


def with_inboxes(*nodes) -> None:
    """Each node subscribes once to "flow"; what it receives goes to INBOXES[node id]."""
    for n in nodes:
        INBOXES[n.node_id] = inbox = []
        n.subscribe("flow", inbox.append)


def both_ways(a, b, marker) -> None:
    """A message each way gets through."""
    for tx, rx in ((a, b), (b, a)):
        got = INBOXES[rx.node_id]
        got.clear()
        publish_until(tx, "flow", marker, lambda got=got: marker in got, timeout=5)


def forged_init(sender: str, recipient: str, base: bytes | None) -> bytes:
    """An INIT as a keyless attacker can make one: right layout, random MAC."""
    flags = 4 if base is not None else 1
    msg = bytes([0xE3, 1, len(sender)]) + sender.encode() + bytes([len(recipient)])
    msg += recipient.encode() + os.urandom(16) + bytes([flags]) + os.urandom(4)
    msg += struct.pack(">Q", int(time.time() * 1000) + 10_000) + os.urandom(32)
    if base is not None:
        msg += base
    return msg + os.urandom(32)


def test_simultaneous_rekeys_thirty_times_keep_both_directions(mesh, psk):
    """Finding 1: two nodes that rekey at the same moment (as nodes started together do)
    never desynchronize."""
    a, b = pair(mesh, psk)
    with_inboxes(a, b)
    both_ways(a, b, "start")
    for round_ in range(30):
        barrier = threading.Barrier(2)
        results: dict[str, list[str]] = {}

        def rekey(node, results=results, barrier=barrier):
            barrier.wait()
            results[node.node_id] = node.rekey()

        threads = [threading.Thread(target=rekey, args=(n,)) for n in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The sender key switches once the peer acknowledged it: both report their peer.
        assert results == {"node-1": ["node-2"], "node-2": ["node-1"]}, round_
        assert a.session_established("node-2") and b.session_established("node-1")
        both_ways(a, b, f"round-{round_}")
    assert a.stats()["rekeys"] >= 30 and b.stats()["rekeys"] >= 30


def test_a_silent_queryable_and_fake_presence_delay_no_exchange(exposed, psk):
    """Finding 2: a keyless participant answering nothing on the key-exchange key space,
    with 15 fake presence tokens, does not delay sessions (up within 5 s) or rekeys."""
    raw = exposed.raw.session
    held: list = []
    keep = exposed.raw.declared
    keep.append(raw.declare_queryable(f"{KEY_EXCHANGE}**", held.append))
    keep.append(raw.declare_queryable("evospikenet/security/**", lambda q: None))
    keep += [
        raw.liveliness().declare_token(f"evospikenet/security/nodes/fake-{i}") for i in range(15)
    ]
    a, b = exposed.pair()  # sessions within 5 s, or this raises
    with_inboxes(a, b)
    both_ways(a, b, "through")
    for _ in range(3):
        started = time.monotonic()
        # Acknowledged by the peer (a rekey that timed out would return []).
        assert a.rekey() == ["node-2"]
        assert time.monotonic() - started < 5.0
        both_ways(a, b, "after-rekey")
    held.clear()


def test_keyless_forged_inits_during_rekeys_change_nothing(exposed, psk):
    """Finding 1 (attacker form): forged INITs claiming to come from a peer, sent while
    it rekeys, are refused and break nothing."""
    a, b = exposed.pair()
    with_inboxes(a, b)
    stop = threading.Event()
    sent = [0]

    def flood():
        while not stop.is_set():
            for sender, recipient in (("node-1", "node-2"), ("node-2", "node-1")):
                for base in (None, os.urandom(16)):
                    exposed.raw.put(KEY_EXCHANGE + recipient, forged_init(sender, recipient, base))
                    sent[0] += 1
            time.sleep(0.001)

    attacker = threading.Thread(target=flood)
    attacker.start()
    try:
        for round_ in range(10):
            assert (a if round_ % 2 else b).rekey() != []
            both_ways(a, b, f"round-{round_}")
    finally:
        stop.set()
        attacker.join()
    assert sent[0] > 100
    assert b.stats()["key_exchange_failures"] > 0  # counted as refused INITs
    assert a.session_established("node-2") and b.session_established("node-1")


def test_replayed_key_exchange_messages_change_nothing(exposed, psk):
    """Finding 7 and the INIT replay rule: every key-exchange message captured during
    set-up and rekeys, replayed later, completes nothing; traffic and rekeys go on."""
    exposed.raw.capture(f"{KEY_EXCHANGE}**")
    a, b = exposed.pair()
    with_inboxes(a, b)
    a.rekey()
    b.rekey()
    both_ways(a, b, "before")
    captured = list(exposed.raw.captured)
    assert len(captured) >= 8
    before = (a.stats()["key_exchanges"], b.stats()["key_exchanges"])
    for key, payload in captured:
        exposed.raw.put(key, payload)
    both_ways(a, b, "after-replay")
    assert (a.stats()["key_exchanges"], b.stats()["key_exchanges"]) == before
    assert a.rekey() == ["node-2"]
    both_ways(a, b, "after-rekey")


def test_messages_recorded_before_a_restart_are_not_replayed_to_the_new_run(mesh, raw_zenoh, psk):
    """A node restarted with the same id gets a sender key from each peer with the time of
    the handover: copies of earlier messages, recorded on the wire, are refused."""
    a, b = pair(mesh, psk)
    raw = raw_zenoh()
    raw.capture("evospikenet/flow")
    got: list = []
    b.subscribe("flow", got.append)
    # Until both b and the recorder (whose subscription reaches a later) have one.
    publish_until(a, "flow", "recorded", lambda: "recorded" in got and raw.captured)
    recorded = [p for _, p in raw.captured]
    b.close()
    b2 = mesh.node("node-2", psk=psk, key_exchange="auto")
    b2.wait_for_session("node-1", timeout=5)
    wait_until(lambda: len(list(raw.session.info.peers_zid())) >= 2, what="the raw client")
    again: list = []
    b2.subscribe("flow", again.append)
    publish_until(a, "flow", "fresh", lambda: "fresh" in again)
    before = b2.stats()
    for payload in recorded:
        raw.put("evospikenet/flow", payload)
    wait_until(
        lambda: (
            b2.stats()["replays_rejected"] + b2.stats()["decrypt_failures"]
            >= before["replays_rejected"] + before["decrypt_failures"] + len(recorded)
        ),
        what="the recorded messages to be refused",
    )
    assert "recorded" not in again
