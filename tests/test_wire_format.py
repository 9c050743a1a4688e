"""The wire format and key schedule, checked by an independent implementation.

A message captured off the wire is parsed and opened here with Python's `cryptography`
(HKDF-SHA256, AES-256-GCM), following the layout documented in src/crypto/envelope.rs and
the schedule in src/crypto/keys.rs. If either side drifts from the documentation, this fails.
"""

import json
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from support.comm import publish_until


def hkdf(ikm: bytes, salt: bytes | None, info: bytes, n: int) -> bytes:
    return HKDF(hashes.SHA256(), n, salt=salt, info=info).derive(ikm)


def parse_header(msg: bytes) -> dict:
    assert msg[0] == 0xE1
    n = msg[7]
    sid_at = 8 + n
    start, offset, counter = struct.unpack(">QIQ", msg[sid_at + 16 : sid_at + 36])
    return {
        "mode": msg[1],
        "kind": msg[2],
        "key_id": msg[3:7],
        "sender": msg[8 : 8 + n].decode(),
        "session_id": msg[sid_at : sid_at + 16],
        "start": start,
        "offset": offset,
        "counter": counter,
        "len": sid_at + 36,
    }


def open_message(msg: bytes, topic: str, psk_hex: str) -> tuple[int, bytes]:
    psk = bytes.fromhex(psk_hex)
    h = parse_header(msg)
    key_id = hkdf(psk, None, b"evospikenet/v1/key-id", 4)
    assert h["key_id"] == key_id
    okm = hkdf(psk, h["session_id"], b"evospikenet/v1/psk" + key_id + h["sender"].encode(), 44)
    key, iv = okm[:32], okm[32:]
    counter = b"\0\0\0\0" + h["counter"].to_bytes(8, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, counter, strict=True))
    aad = msg[: h["len"]] + topic.encode()
    plaintext = AESGCM(key).decrypt(nonce, msg[h["len"] :], aad)
    return plaintext[-1], plaintext[:-1]


def test_captured_message_opens_with_an_independent_implementation(mesh, raw_zenoh, psk):
    a = mesh.node("node-1", psk)
    raw = raw_zenoh()
    raw.capture("evospikenet/**")
    publish_until(a, "wire/check", {"spikes": [1, 2, 3]}, lambda: raw.captured)
    key, msg = raw.captured[0]
    h = parse_header(msg)
    assert (h["mode"], h["kind"], h["sender"]) == (1, 0, "node-1")
    fmt, payload = open_message(msg, key, psk)
    assert fmt == 1  # json
    assert json.loads(payload) == {"spikes": [1, 2, 3]}
    # Header overhead: 44 bytes + the sender id; tag: 16 bytes; format byte: 1.
    assert len(msg) == 44 + len("node-1") + len(payload) + 1 + 16


def test_counters_increase_and_sessions_differ_per_run(mesh, raw_zenoh, psk):
    a = mesh.node("node-1", psk)
    raw = raw_zenoh()
    raw.capture("evospikenet/**")
    publish_until(a, "wire/c", 0, lambda: raw.captured)
    for i in range(5):
        a.publish("wire/c", i)
    publish_until(a, "wire/c", 9, lambda: len(raw.captured) >= 7)
    headers = [parse_header(m) for _, m in raw.captured]
    counters = [h["counter"] for h in headers]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert len({h["session_id"] for h in headers}) == 1
    b = mesh.node("node-1b", psk)
    publish_until(
        b,
        "wire/c",
        1,
        lambda: any(
            h["sender"] == "node-1b" for h in map(parse_header, (m for _, m in raw.captured))
        ),
    )
    other = [parse_header(m) for _, m in raw.captured if parse_header(m)["sender"] == "node-1b"]
    assert other[0]["session_id"] != headers[0]["session_id"]
