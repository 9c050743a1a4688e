"""DH mode: the guide's manual exchange, the automatic authenticated handshake, a man in
the middle, rekeying and PSK rotation."""

import contextlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from evospikenet.errors import KeyExchangeError
from evospikenet.zenoh_comm import (
    ZenohCommunicator,
    ZenohConfig,
    generate_identity_key,
    identity_fingerprint,
)
from support.comm import LOOPBACK_ANY_PORT, new_psk, publish_until, wait_until
from support.netns import private_loopback
from support.procs import Proc, close_inputs_and_expect_success, running

LOGGER = "evospikenet.zenoh_comm"


def manual_pair(a: ZenohCommunicator, b: ZenohCommunicator) -> None:
    """The guide's exchange between two in-process nodes, keys passed as hex text."""
    ka = a.initiate_key_exchange(b.node_id).hex()
    kb = b.initiate_key_exchange(a.node_id).hex()
    a.complete_key_exchange(kb, b.node_id)
    b.complete_key_exchange(ka, a.node_id)
    a.wait_for_session(b.node_id)
    b.wait_for_session(a.node_id)


def refuses_from_then_on(receiver, sender, topic: str, label: str) -> None:
    """`sender` publishes "probe" on `topic` until `receiver` refuses one (its route exists
    from then on); then each of 10 more, labelled ``label-<i>``, is refused too."""
    before = receiver.stats()["decrypt_failures"]
    wait_until(
        lambda: (
            sender.publish(topic, "probe"),
            receiver.stats()["decrypt_failures"] > before,
        )[1],
        what=f"{receiver.node_id} to refuse {sender.node_id}'s traffic",
    )
    refused = receiver.stats()["decrypt_failures"]
    for i in range(10):
        sender.publish(topic, f"{label}-{i}")
    wait_until(
        lambda: receiver.stats()["decrypt_failures"] >= refused + 10, what="10 more refusals"
    )


def collect(comm: ZenohCommunicator, topic: str) -> list:
    got: list = []
    comm.subscribe(topic, lambda data, sender, t: got.append((sender, data)), with_info=True)
    return got


def pinned_nodes(mesh, ids: list[str], **kw) -> list[ZenohCommunicator]:
    """Automatic DH nodes, in the order of ``ids``, each with an identity key and pinning
    every other's fingerprint (plus any ``kw`` setting, such as a PSK)."""
    keys = {n: generate_identity_key() for n in ids}
    fps = {n: identity_fingerprint(k) for n, k in keys.items()}
    return [
        mesh.node(
            me,
            key_exchange="auto",
            identity_key=keys[me],
            trusted_peers={p: fps[p] for p in ids if p != me},
            **kw,
        )
        for me in ids
    ]


# ----- the manual API -----

# The guide's DH flow as written: one publish right after completing; then each process
# waits until the test, having seen both receive the other's message, closes its stdin.
GUIDE_DH = textwrap.dedent(
    """
    import sys, threading
    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

    me, other = sys.argv[1], sys.argv[2]
    comm = ZenohCommunicator(me, ZenohConfig())
    public_key = comm.initiate_key_exchange(other)
    print(f"Public key: {public_key.hex()}", flush=True)
    print(f"Fingerprint: {comm.fingerprint()}", flush=True)
    peer_public_key = bytes.fromhex(sys.stdin.readline().strip())
    got, say = [], threading.Lock()

    def on_data(data):
        if data["from"] == other:  # a node also hears itself
            if not got:
                with say:
                    print("RECEIVED", data, flush=True)
            got.append(data)

    comm.subscribe("topic", on_data)
    comm.complete_key_exchange(peer_public_key)
    # The guide's next line: its first message must arrive.
    comm.publish("topic", {"data": "secret", "from": me}, serialize="json")
    with say:
        print(f"Peer fingerprint: {comm.peer_fingerprint(other)}", flush=True)
    sys.stdin.read()
    comm.close()
    """
)


def lines_in_any_order(proc: Proc, *prefixes: str, timeout: float = 60.0) -> dict[str, str]:
    """The first stdout line starting with each of ``prefixes``, whatever their order;
    fails the test when one does not come within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while len(found) < len(prefixes):
        line = proc.read_line("", max(deadline - time.monotonic(), 0.0))
        if line is None:
            missing = [p for p in prefixes if p not in found]
            proc.kill()
            pytest.fail(f"no line starting with {missing} within {timeout} s\n{proc.output}")
        for prefix in prefixes:
            if line.startswith(prefix) and prefix not in found:
                found[prefix] = line
    return found


@pytest.mark.system
def test_guide_dh_snippet_between_two_processes(tmp_path):
    """The guide's DH flow as written, with ZenohConfig() (no PSK, no endpoints): each
    process prints its public key, reads the other's as hex, completes, and publishes
    once at once: that first message reaches the other process."""
    script = tmp_path / "guide_dh.py"
    script.write_text(GUIDE_DH)
    pairs = (("node-1", "node-2"), ("node-2", "node-1"))
    with private_loopback() as netns:
        procs = {
            me: Proc([*netns, sys.executable, str(script), me, other], stdin=subprocess.PIPE)
            for me, other in pairs
        }
        with running(*procs.values()):
            keys = {
                me: p.wait_for_line("Public key: ").split(": ", 1)[1] for me, p in procs.items()
            }
            fp = {me: p.wait_for_line("Fingerprint: ").split(": ", 1)[1] for me, p in procs.items()}
            assert all(len(k) == 64 for k in keys.values())
            for me, other in pairs:
                procs[me].write(keys[other] + "\n")
            # Printed by two threads: the peer's message may come first.
            lines = {
                me: lines_in_any_order(p, "Peer fingerprint: ", "RECEIVED ")
                for me, p in procs.items()
            }
            peer_fp = {me: got["Peer fingerprint: "] for me, got in lines.items()}
            received = {me: got["RECEIVED "] for me, got in lines.items()}
            close_inputs_and_expect_success(procs.values())
    # Both screens show the same fingerprints: what users compare to rule out a MITM.
    assert fp["node-1"] in peer_fp["node-2"] and fp["node-2"] in peer_fp["node-1"]
    assert received["node-1"] == "RECEIVED {'data': 'secret', 'from': 'node-2'}"
    assert received["node-2"] == "RECEIVED {'data': 'secret', 'from': 'node-1'}"


def test_three_nodes_pairwise_and_only_session_peers_read(mesh):
    n1, n2 = mesh.node("node-1"), mesh.node("node-2")
    # node-3 links to both directly (peers do not forward each other's traffic).
    cfg = ZenohConfig(connect=[n1.locators[0], n2.locators[0]], listen=[LOOPBACK_ANY_PORT])
    n3 = ZenohCommunicator("node-3", cfg)
    mesh.nodes.append(n3)
    wait_until(lambda: n3.connected_peers() >= 2, what="node-3 to link to both")
    manual_pair(n1, n2)
    manual_pair(n1, n3)
    assert n1.session_peers() == ["node-2", "node-3"]
    assert n2.session_peers() == ["node-1"]
    got2, got3 = collect(n2, "spikes/**"), collect(n3, "spikes/**")
    publish_until(n1, "spikes/a", {"n": 1}, lambda: got2 and got3)
    assert got2[0] == ("node-1", {"n": 1}) and got3[0] == ("node-1", {"n": 1})
    # node-2 and node-3 never exchanged keys: node-3 cannot read node-2.
    got1 = collect(n1, "from2/**")
    seen_by_3 = collect(n3, "from2/**")
    refused = n3.stats()["decrypt_failures"]
    # Until both subscriptions are reached: node-1's route says nothing about node-3's.
    publish_until(
        n2,
        "from2/x",
        {"n": 2},
        lambda: got1 and n3.stats()["decrypt_failures"] > refused,
    )
    assert seen_by_3 == []
    assert n1.encrypted and n2.encrypted and n3.encrypted


def test_bad_public_keys_and_misuse_raise_and_log_without_key_material(mesh, caplog):
    comm = mesh.node("node-1")
    own = comm.initiate_key_exchange("node-2")
    caplog.set_level(logging.ERROR, logger=LOGGER)
    bad = [
        ("ab" * 31, "64 hexadecimal digits"),
        ("zz" * 32, "hexadecimal digits"),
        (b"\x01" * 31, "32 bytes"),
        (bytes(32), "low-order"),
        (own, "own public key"),
    ]
    for key, why in bad:
        with pytest.raises(ValueError, match=why):
            comm.complete_key_exchange(key, "node-2")
    with pytest.raises(TypeError):
        comm.complete_key_exchange(12345)
    with pytest.raises(ValueError, match="initiate_key_exchange"):
        comm.complete_key_exchange(os.urandom(32).hex(), "node-9")
    with pytest.raises(ValueError, match="own id"):
        comm.initiate_key_exchange("node-1")
    # Spaces and line breaks from copy/paste are fine; completing twice is not.
    peer = mesh.node("node-2")
    pk = peer.initiate_key_exchange("node-1").hex()
    pasted = "\n".join(" ".join(pk[i : i + 4] for i in range(j, j + 32, 4)) for j in (0, 32))
    comm.complete_key_exchange(pasted)
    with pytest.raises(ValueError, match="initiate_key_exchange"):
        comm.complete_key_exchange(pk, "node-2")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Key exchange failed: " in m for m in messages) >= len(bad) + 2
    for m in messages:
        assert own.hex() not in m and pk not in m
    assert comm.stats()["key_exchange_failures"] >= len(bad) + 2


def test_the_guides_publish_right_after_complete_is_delivered_in_order(mesh, caplog):
    """The guide's lines: `complete_key_exchange(...)`, then `publish(...)` at once, while
    the peer has not completed its side yet (a person is still pasting the key there).
    Those publications are held until the peer confirms, then arrive, in order, with no
    decryption failure on either side."""
    a, b = mesh.node("node-1"), mesh.node("node-2")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    ka = a.initiate_key_exchange("node-2")
    kb = b.initiate_key_exchange("node-1")
    got_b, got_a = collect(b, "topic"), collect(a, "topic")
    a.complete_key_exchange(kb)
    for i in range(3):
        a.publish("topic", {"data": "secret", "i": i})
    time.sleep(0.5)  # the peer completes later
    assert got_b == [] and not a.session_established("node-2")
    b.complete_key_exchange(ka)
    b.publish("topic", {"data": "reply"})
    reply = ("node-2", {"data": "reply"})
    wait_until(lambda: len(got_b) >= 3 and reply in got_a, what="the held publications")
    assert [d["i"] for s, d in got_b if s == "node-1"] == [0, 1, 2]
    # A node hears itself: the held ones reach node-1's own subscriber too, once sent.
    assert [d.get("i") for s, d in got_a if s == "node-1"] == [0, 1, 2]
    assert a.stats()["decrypt_failures"] == b.stats()["decrypt_failures"] == 0
    assert not [r for r in caplog.records if "Decryption failed" in r.getMessage()]
    # Nothing was ever sent in the clear, so nothing claims it was.
    assert not [r for r in caplog.records if "NOT encrypted" in r.getMessage()]


def test_publications_held_for_a_peer_that_never_completes_are_bounded(mesh, caplog):
    """Held publications are bounded: past the limit `publish` raises and names the
    awaited peer; closing reports what was never sent."""
    a = mesh.node("node-1")
    a.initiate_key_exchange("node-9")
    a.complete_key_exchange(os.urandom(32).hex(), "node-9")
    big = np.zeros(1 << 20, dtype=np.uint8)
    with pytest.raises(KeyExchangeError, match=r"node-9.*wait_for_session"):
        for _ in range(100):
            a.publish("topic", big, serialize="numpy")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    a.close()
    assert any("were not sent" in r.getMessage() for r in caplog.records)


def test_drops_name_the_sender_and_the_cause_of_their_mode(mesh, psk, caplog):
    """In DH mode a dropped message says "no session with <sender> yet"; in PSK mode it
    says the sender's PSK probably differs."""
    a, b, c = mesh.node("node-1"), mesh.node("node-2"), mesh.node("node-3")
    manual_pair(a, c)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    collect(b, "t")
    texts = warnings_of_a_drop(b, a, "t", caplog)
    assert any('no session with "node-1" yet' in t for t in texts), texts
    assert not any("configure the same PSK" in t for t in texts), texts

    d, e = mesh.node("node-4", psk=psk), mesh.node("node-5", psk=new_psk())
    collect(d, "u")
    texts = warnings_of_a_drop(d, e, "u", caplog)
    assert any('"node-5": its PSK probably differs' in t for t in texts), texts


def warnings_of_a_drop(receiver, sender, topic: str, caplog) -> list[str]:
    """``sender`` publishes on ``topic`` until ``receiver`` drops a message; the texts
    logged meanwhile."""
    caplog.clear()
    before = receiver.stats()["decrypt_failures"]
    wait_until(
        lambda: (
            sender.publish(topic, {"x": 1}),
            receiver.stats()["decrypt_failures"] > before,
        )[1],
        what=f"{receiver.node_id} to drop {sender.node_id}'s traffic",
    )
    # The drop is counted before its warning is logged: wait for the record too.
    wait_until(
        lambda: any("Decryption failed" in r.getMessage() for r in caplog.records),
        what="the drop warning",
    )
    return [r.getMessage() for r in caplog.records]


def test_no_session_traffic_is_dropped_with_the_documented_warning(mesh, caplog):
    a, b = mesh.node("node-1"), mesh.node("node-2")
    # node-1 enters DH mode with node-3 (absent); node-2 sends plaintext.
    a.initiate_key_exchange("node-3")
    a.complete_key_exchange(b.initiate_key_exchange("node-3"), "node-3")
    got = collect(a, "t")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    texts = warnings_of_a_drop(a, b, "t", caplog)
    assert got == []
    assert any(
        t.startswith('Decryption failed for topic: t (plaintext from "node-2", refused')
        for t in texts
    ), texts


# ----- the automatic handshake -----


def test_auto_handshake_with_psk_and_raw_observer_sees_no_secret(mesh, raw_zenoh, psk):
    a = mesh.node("node-1", psk=psk, key_exchange="auto")
    b = mesh.node("node-2", psk=psk, key_exchange="auto")
    raw = raw_zenoh()
    raw.capture("**")
    a.wait_for_session("node-2")
    b.wait_for_session("node-1")
    assert a.peer_fingerprint("node-2") == b.fingerprint("node-1")
    got = collect(b, "t")
    publish_until(a, "t", {"marker": "PLAINTEXT-MARKER-42"}, lambda: got)
    a.rekey()
    got.clear()
    publish_until(a, "t", {"marker": "PLAINTEXT-MARKER-42"}, lambda: got)
    blob = b"".join(p for _, p in raw.captured)
    assert raw.captured
    assert b"PLAINTEXT-MARKER-42" not in blob
    assert bytes.fromhex(psk) not in blob and psk.encode() not in blob
    assert all(p[1] == 2 for _, p in raw.captured if p[:1] == b"\xe1")  # DH mode on the wire


def test_trusted_peers_pin_identity_keys(mesh):
    keys = {n: generate_identity_key() for n in ("node-1", "node-2", "rogue")}
    fps = {n: identity_fingerprint(k) for n, k in keys.items()}

    def node(name: str, trusted: dict[str, str]) -> ZenohCommunicator:
        return mesh.node(name, key_exchange="auto", identity_key=keys[name], trusted_peers=trusted)

    a = node("node-1", {"node-2": fps["node-2"]})
    b = node("node-2", {"node-1": fps["node-1"].replace(" ", "").lower()})
    # The rogue pins both honest nodes but neither pins it.
    rogue = node("rogue", {"node-1": fps["node-1"], "node-2": fps["node-2"]})
    a.wait_for_session("node-2")
    assert a.peer_fingerprint("node-2") == fps["node-2"]
    assert b.peer_fingerprint("node-1") == fps["node-1"] == a.fingerprint()
    wait_until(
        lambda: a.stats()["key_exchange_failures"] + rogue.stats()["key_exchange_failures"] > 0,
        what="the rogue's exchange to fail",
    )
    assert not rogue.session_established("node-1") and not a.session_established("rogue")
    with pytest.raises(ValueError, match="identity_key"):
        ZenohConfig(key_exchange="auto", trusted_peers={"node-2": fps["node-2"]})
    with pytest.raises(ValueError, match="fingerprint"):
        ZenohConfig(identity_key=keys["node-1"], trusted_peers={"node-2": "1234"})
    with pytest.raises(ValueError, match="authenticate"):
        ZenohConfig(key_exchange="auto")


class KeyExchangeRelay:
    """A man in the middle: two zenoh sessions, one linked only to node-1, the other only
    to node-2, forwarding everything between them (publications, presence tokens, key
    exchange messages). With ``substitute`` it replaces every X25519 public key in the
    exchange with its own, as an attacker would."""

    def __init__(self, left: str, right: str, substitute: bool) -> None:
        import zenoh
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.zenoh = zenoh
        self.substitute = substitute
        self.attacker_key = (
            X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        self.seen: list[bytes] = []
        self.sides = [self._open(left), self._open(right)]
        self.keep: list = []
        self.stop = threading.Event()
        self.threads = []
        for i in (0, 1):
            src, dst = self.sides[i], self.sides[1 - i]
            self.keep.append(
                src.declare_subscriber(
                    "**",
                    lambda s, dst=dst: self._forward_put(dst, s),
                    allowed_origin=zenoh.Locality.REMOTE,
                )
            )
            tokens: dict[str, object] = {}
            self.keep.append(
                src.liveliness().declare_subscriber(
                    "evospikenet/security/nodes/*",
                    lambda s, dst=dst, tokens=tokens: self._forward_token(dst, s, tokens),
                    history=True,
                )
            )
            self.keep.append(tokens)

    def _open(self, locator: str):
        conf = self.zenoh.Config()
        conf.insert_json5("mode", '"peer"')
        conf.insert_json5("connect/endpoints", json.dumps([locator]))
        conf.insert_json5("listen/endpoints", "[]")
        conf.insert_json5("scouting/multicast/enabled", "false")
        conf.insert_json5("scouting/gossip/enabled", "false")
        return self.zenoh.open(conf)

    def _forward_put(self, dst, sample) -> None:
        payload = sample.payload.to_bytes()
        self.seen.append(payload)
        key = str(sample.key_expr)
        if key.startswith("evospikenet/security/key_exchange/"):
            payload = self._swap(payload)
        dst.put(key, payload)

    def _forward_token(self, dst, sample, tokens) -> None:
        key = str(sample.key_expr)
        if sample.kind == self.zenoh.SampleKind.PUT:
            if key not in tokens:
                tokens[key] = dst.liveliness().declare_token(key)
        else:
            token = tokens.pop(key, None)
            if token is not None:
                token.undeclare()

    def _swap(self, msg: bytes) -> bytes:
        """Replace the ephemeral public key of an INIT or RESP."""
        if not self.substitute or len(msg) < 3 or msg[0] != 0xE3 or msg[1] not in (1, 2):
            return msg
        pos = 2
        for _ in range(2):
            pos += 1 + msg[pos]
        pos += 16 + 1  # exchange id, flags
        if msg[1] == 1:
            pos += 4 + 8  # PSK key id, timestamp
        return msg[:pos] + self.attacker_key + msg[pos + 32 :]

    def close(self) -> None:
        self.stop.set()
        for s in self.sides:
            s.close()


@pytest.mark.parametrize("substitute", [False, True], ids=["honest-relay", "key-swapping-mitm"])
def test_man_in_the_middle_fails_and_cannot_read_or_inject(psk, substitute):
    pytest.importorskip("zenoh")
    cfg = dict(listen=[LOOPBACK_ANY_PORT], psk=psk, key_exchange="auto")
    with contextlib.ExitStack() as cleanup:
        a = cleanup.enter_context(ZenohCommunicator("node-1", ZenohConfig(**cfg)))
        b = cleanup.enter_context(ZenohCommunicator("node-2", ZenohConfig(**cfg)))
        relay = KeyExchangeRelay(a.locators[0], b.locators[0], substitute)
        cleanup.callback(relay.close)
        got = collect(b, "t")
        if not substitute:
            # The relay itself works: through it the nodes agree and talk.
            a.wait_for_session("node-2", timeout=20)
            publish_until(a, "t", {"marker": "RELAYED-SECRET"}, lambda: got)
        else:
            wait_until(
                lambda: (
                    a.stats()["key_exchange_failures"] + b.stats()["key_exchange_failures"] >= 2
                ),
                timeout=20,
                what="the swapped exchange to fail",
            )
            for _ in range(20):
                a.publish("t", {"marker": "RELAYED-SECRET"})
                time.sleep(0.02)
            time.sleep(0.5)
            assert not a.session_established("node-2")
            assert not b.session_established("node-1")
            assert got == []  # cannot inject: nothing node-1 (or the relay) sent was accepted
            assert b.stats()["decrypt_failures"] > 0
        assert all(b"RELAYED-SECRET" not in s for s in relay.seen)


# ----- rekeying and PSK rotation -----


def test_10k_messages_across_10_rekeys_and_a_psk_rotation_lose_nothing(mesh, psk):
    a = mesh.node("node-1", psk=psk, key_exchange="auto")
    b = mesh.node("node-2", psk=psk, key_exchange="auto")
    a.wait_for_session("node-2")
    b.wait_for_session("node-1")
    seen: list[int] = []
    b.subscribe("stream", lambda data: seen.append(data))
    publish_until(a, "stream", -1, lambda: seen)
    stop = threading.Event()
    sent = [0]

    def produce() -> None:
        # A continuous stream for as long as the rekeys and the rotation take.
        while not (stop.is_set() and sent[0] >= 10_000):
            a.publish("stream", sent[0])
            sent[0] += 1
            if sent[0] % 100 == 0:
                time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        for r in range(10):
            time.sleep(0.1)
            (a if r % 2 == 0 else b).rekey()
            if r == 4:
                new = new_psk()
                a.rotate_psk(new, grace_seconds=5.0, seal_after=1.0)
                b.rotate_psk(new, grace_seconds=5.0, seal_after=1.0)
        rekeyed_at = sent[0]
    finally:
        stop.set()
        producer.join()
    total = sent[0]
    assert rekeyed_at > 1000 and total >= 10_000
    wait_until(lambda: len(seen) >= total + 1, timeout=30, what="every message")
    time.sleep(0.3)
    data = [x for x in seen if x != -1]
    assert sorted(data) == list(range(total))  # none lost, none duplicated
    for n in (a, b):
        s = n.stats()
        assert s["decrypt_failures"] == 0 and s["replays_rejected"] == 0, s
    assert a.stats()["rekeys"] + b.stats()["rekeys"] >= 10
    # After the rotation, new exchanges authenticate with the new PSK.
    a.rekey()
    assert a.session_established("node-2")


def test_automatic_rekey_by_time_and_old_epochs_are_erased(mesh, raw_zenoh, psk):
    a = mesh.node(
        "node-1", psk=psk, key_exchange="auto", rekey_after_seconds=0.3, session_grace=0.2
    )
    b = mesh.node("node-2", psk=psk, key_exchange="auto", session_grace=0.2)
    raw = raw_zenoh()
    raw.capture("evospikenet/old")
    a.wait_for_session("node-2")
    got = collect(b, "old")
    # Both the receiver and the raw client must be reached: either alone says nothing
    # about the other's route.
    publish_until(a, "old", "epoch-0", lambda: got and raw.captured)
    first = raw.captured[0][1]
    # Rekeys by time run from the start: count those after this message was sealed, so
    # that what follows is sealed under a newer key than it.
    sealed_after = a.stats()["rekeys"]
    wait_until(lambda: a.stats()["rekeys"] >= sealed_after + 2, what="automatic rekeys")
    got.clear()
    publish_until(a, "old", "later", lambda: got)
    time.sleep(0.5)  # past the grace period (0.2 s) of the keys older than "later"'s
    before = b.stats()
    raw.put("evospikenet/old", first)
    wait_until(
        lambda: b.stats()["decrypt_failures"] > before["decrypt_failures"],
        what="the old-epoch message to be refused",
    )
    # Refused because its key is gone (a decryption failure), not as a replay.
    assert b.stats()["replays_rejected"] == before["replays_rejected"]


def test_psk_mode_rotation_loses_nothing(mesh, psk):
    a = mesh.node("node-1", psk=psk)
    b = mesh.node("node-2", psk=psk)
    seen: list[int] = []
    b.subscribe("r", lambda d: seen.append(d))
    publish_until(a, "r", -1, lambda: seen)
    new = new_psk()
    for i in range(2000):
        a.publish("r", i)
        if i == 500:
            a.rotate_psk(new, grace_seconds=2.0, seal_after=0.3)
        if i == 700:
            b.rotate_psk(new, grace_seconds=2.0, seal_after=0.3)
        if i % 50 == 0:
            time.sleep(0.01)
    wait_until(lambda: len([x for x in seen if x != -1]) >= 2000, what="every message")
    assert sorted(x for x in seen if x != -1) == list(range(2000))
    assert b.stats()["decrypt_failures"] == 0
    time.sleep(2.5)
    # The old key is gone: a node still on it is locked out (node-3 links to node-1).
    late: list[int] = []
    a.subscribe("r", lambda d: late.append(d))
    old = mesh.node("node-3", psk=psk)
    wait_until(
        lambda: (old.publish("r", 99999), a.stats()["decrypt_failures"] > 0)[1],
        what="the old key to be refused",
    )
    assert 99999 not in late
    with pytest.raises(ValueError, match="psk"):
        mesh.node("node-4").rotate_psk(new)


def test_psk_rotation_revokes_the_old_key_for_senders_already_seen(mesh, psk):
    """After the grace, nothing under the old PSK is accepted, not even from a sender
    whose session key the receiver derived (and cached) before the rotation."""
    b = mesh.node("node-b", psk=psk)
    a = mesh.node("node-a", psk=psk)
    c = mesh.node("node-c", psk=psk)
    got = collect(b, "r")
    publish_until(c, "r", "c-before", lambda: ("node-c", "c-before") in got)
    new = new_psk()
    a.rotate_psk(new, grace_seconds=0.5)
    b.rotate_psk(new, grace_seconds=0.5)
    # node-c keeps the old key: once b refuses it, b refuses everything node-c sends.
    refuses_from_then_on(b, c, "r", "c-after")
    publish_until(a, "r", "a-after", lambda: ("node-a", "a-after") in got)
    assert not [d for _, d in got if d.startswith("c-after")]


def test_a_dh_node_accepts_no_psk_mode_data(mesh, psk):
    """A PSK holder in PSK mode cannot speak for a node that a DH-mode node authenticated
    by its pinned identity key."""
    b, a = pinned_nodes(mesh, ["node-2", "node-1"], psk=psk)
    b.wait_for_session("node-1")
    a.wait_for_session("node-2")
    got = collect(b, "t")
    publish_until(a, "t", "genuine", lambda: got)
    assert got[0] == ("node-1", "genuine")
    # Same PSK, PSK mode, claiming node-1's id; linked to node-2 (the mesh's first node).
    forger = mesh.node("node-1", psk=psk)
    refuses_from_then_on(b, forger, "t", "forged")
    assert not [d for _, d in got if d.startswith("forged")]
    got.clear()
    publish_until(a, "t", "still genuine", lambda: got)
    assert all(s == "node-1" and d == "still genuine" for s, d in got)


@pytest.mark.parametrize("mode", ["psk", "pins"])
def test_a_dh_node_hears_itself_and_pins_log_no_plaintext_warning(mesh, psk, caplog, mode):
    """In DH mode a node subscribed to its own topic receives its publications, as in PSK
    mode, with no decryption failure; with pinned identities and no PSK nothing claims
    the traffic is unencrypted."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    if mode == "psk":
        kw = {"psk": psk, "key_exchange": "auto"}
        a, _ = mesh.node("node-1", **kw), mesh.node("node-2", **kw)
    else:
        a, _ = pinned_nodes(mesh, ["node-1", "node-2"])
    a.wait_for_session("node-2")
    own: list = []
    a.subscribe("echo", own.append)
    publish_until(a, "echo", {"n": 1}, lambda: own)
    assert a.stats()["decrypt_failures"] == 0
    assert not any("NOT encrypted" in r.getMessage() for r in caplog.records)
