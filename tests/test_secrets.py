"""No secret ever reaches a log line, a repr, an exception message or stats().

Full PSK and DH sessions run with logging at DEBUG; then every record, repr, exception
text and stats dict is searched for every secret, as hex (either case) and raw bytes:
the PSKs, an identity key, and the secrets of a DH exchange. For those, this test plays
the peer itself with Python's `cryptography`: it completes a manual exchange with the
node, computes the X25519 shared secret and the documented key schedule, and opens the
node's sender-key handover to learn its sender key, so it knows every key the node holds.
"""

import hashlib
import json
import logging
import os
import struct
import threading

import pytest
from evospikenet.zenoh_comm import (
    ZenohConfig,
    generate_identity_key,
)
from support.comm import LOOPBACK_ANY_PORT, new_psk, publish_until, wait_until

crypto = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import (  # noqa: E402
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402


def forms(secret: bytes) -> list[bytes]:
    h = secret.hex()
    return [secret, h.encode(), h.upper().encode()]


def dh_schedule(
    my_id: str, my_pub: bytes, peer_id: str, peer_pub: bytes, shared: bytes
) -> dict[str, bytes]:
    """The documented schedule (src/crypto/handshake.rs), no PSK."""
    first = (my_pub, my_id.encode()) <= (peer_pub, peer_id.encode())
    lo, hi = (
        ((my_id, my_pub), (peer_id, peer_pub)) if first else ((peer_id, peer_pub), (my_id, my_pub))
    )
    info = b"evospikenet/v1/dh"
    for ident in (lo[0], hi[0]):
        info += struct.pack(">Q", len(ident)) + ident.encode()
    info += lo[1] + hi[1]
    okm = HKDF(hashes.SHA256(), 120, None, info).derive(shared)
    lo_hi, hi_lo = okm[:44], okm[44:88]
    tx, rx = (lo_hi, hi_lo) if first else (hi_lo, lo_hi)
    return {"tx": tx, "rx": rx, "chain": okm[88:]}


def test_no_secret_in_logs_reprs_exceptions_or_stats(mesh, raw_zenoh, caplog):
    caplog.set_level(logging.DEBUG)
    psk, psk2 = new_psk(), new_psk()
    identity = generate_identity_key()
    secrets: dict[str, bytes] = {
        "psk": bytes.fromhex(psk),
        "rotated psk": bytes.fromhex(psk2),
        "identity key": bytes.fromhex(identity),
    }
    texts: list[str] = []

    # --- a PSK session with failures, a rotation and request/reply
    a = mesh.node("node-a", psk=psk)
    b = mesh.node("node-b", psk=psk)
    wrong = mesh.node("node-w", psk=new_psk())
    got: list = []
    b.subscribe("t", got.append)
    b.serve("svc", lambda d: {"echo": d})
    publish_until(a, "t", {"x": 1}, lambda: got)
    assert a.request("svc", 5, timeout=5) == {"echo": 5}
    wait_until(lambda: (wrong.publish("t", 1), b.stats()["decrypt_failures"] > 0)[1])
    a.rotate_psk(psk2, grace_seconds=1.0)
    b.rotate_psk(psk2, grace_seconds=1.0)
    got.clear()
    publish_until(a, "t", {"x": 2}, lambda: got)

    # --- the node in DH mode against a peer played by this test
    node = mesh.node("node-d", identity_key=identity)
    raw = raw_zenoh()
    captured: list[bytes] = []
    arrived = threading.Event()

    def on_message(sample) -> None:
        captured.append(sample.payload.to_bytes())
        arrived.set()

    raw_q = raw.session.declare_subscriber("evospikenet/security/key_exchange/py-peer", on_message)
    mine = X25519PrivateKey.generate()
    my_pub = mine.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    node_pub = node.initiate_key_exchange("py-peer")
    node.complete_key_exchange(my_pub.hex(), "py-peer")
    shared = mine.exchange(X25519PublicKey.from_public_bytes(node_pub))
    keys = dh_schedule("py-peer", my_pub, "node-d", node_pub, shared)
    assert arrived.wait(10), "the node never handed over its sender key"
    msg = captured[0]
    # KEY = E3 | 3 | len | from | len | to | exchange id[16] | counter u64 | sealed | tag
    pos = 2 + 1 + msg[2]
    pos += 1 + msg[pos] + 16
    counter = struct.unpack(">Q", msg[pos : pos + 8])[0]
    rx_key, rx_iv = keys["rx"][:32], keys["rx"][32:]
    nonce = rx_iv[:4] + bytes(
        x ^ y for x, y in zip(rx_iv[4:], struct.pack(">Q", counter), strict=True)
    )
    announcement = AESGCM(rx_key).decrypt(nonce, msg[pos + 8 :], msg[:pos])
    # The handover: session id, start, key, IV, this peer's sender-auth key, valid-from.
    assert len(announcement) == 108
    secrets.update(
        {
            "DH shared secret": shared,
            "pairwise key node->peer": keys["rx"][:32],
            "pairwise key peer->node": keys["tx"][:32],
            "chain key": keys["chain"],
            "sender key": announcement[24:56],
            "sender-auth key": announcement[68:100],
        }
    )
    raw_q.undeclare()
    node.publish("dh-topic", {"y": 1})
    node.rekey()  # the peer is gone: retried, logged, counted

    # --- misuse that raises, with secrets nearby
    for bad in (psk[:-2] + "zz", psk + "00", " " + psk[:40]):
        with pytest.raises(ValueError) as e:
            ZenohConfig(psk=bad)
        texts.append(str(e.value))
    for bad in (identity[:-1] + "g", identity[:30]):
        with pytest.raises(ValueError) as e:
            ZenohConfig(identity_key=bad)
        texts.append(str(e.value))
    with pytest.raises(ValueError) as e:
        node.complete_key_exchange(shared.hex(), "nobody")
    texts.append(str(e.value))
    with pytest.raises(ValueError) as e:
        a.rotate_psk(psk[:60])
    texts.append(str(e.value))

    # --- everything the library shows
    for c in mesh.nodes:
        texts += [repr(c), json.dumps(c.stats())]
    texts.append(repr(ZenohConfig(psk=psk, identity_key=identity)))
    for r in caplog.records:
        texts.append(r.getMessage())
        texts.append(logging.Formatter().format(r))
    assert any("Decryption failed for topic" in t for t in texts)  # logging did run
    blob = "\n".join(texts).encode()
    for name, secret in secrets.items():
        for form in forms(secret):
            assert form not in blob, f"{name} leaked"
    # A secret's hash prefix (the public key id) is fine; the secret itself never is.
    assert hashlib.sha256(secrets["psk"]).hexdigest().encode() not in blob
    print(
        f"searched {len(texts)} texts ({len(blob):,} bytes, {len(caplog.records)} log records) "
        f"for {len(secrets)} secrets in 3 forms each: none found"
    )


def test_identity_and_config_reprs_are_redacted():
    key = generate_identity_key()
    cfg = ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=os.urandom(32).hex(), identity_key=key)
    assert "<redacted>" in repr(cfg) and key not in repr(cfg)
    assert cfg.identity_fingerprint and key not in cfg.identity_fingerprint
