"""Compression before sealing: every serializer round-trips compressed, the receiver
needs no setting, the bytes on the wire shrink, and bad settings are named."""

from __future__ import annotations

import numpy as np
import pytest
from evospikenet.errors import ConfigError
from evospikenet.zenoh_comm import ZenohConfig
from support.comm import publish_until, wait_until


@pytest.mark.parametrize("compress", [True, "zstd", "lz4"])
def test_every_serializer_round_trips_compressed(mesh, psk, compress):
    a = mesh.node("node-1", psk)
    b = mesh.node("node-2", psk)  # no compression setting on the receiver
    got: list = []
    b.subscribe("c/**", lambda data, sender, topic: got.append((topic, data)), with_info=True)
    array = np.arange(50_000, dtype=np.int32).reshape(250, 200)
    publish_until(a, "c/warmup", {"x": 1}, lambda: got)
    a.publish("c/json", {"spikes": list(range(1000))}, compress=compress)
    a.publish("c/raw", b"\x00" * 100_000, serialize="raw", compress=compress)
    a.publish("c/numpy", array, serialize="numpy", compress=compress)
    a.publish("c/empty", b"", serialize="raw", compress=compress)
    wait_until(lambda: len(got) >= 5, what="the four compressed messages")
    by_topic = dict(got)
    assert by_topic["c/json"] == {"spikes": list(range(1000))}
    assert by_topic["c/raw"] == b"\x00" * 100_000
    assert by_topic["c/empty"] == b""
    np.testing.assert_array_equal(by_topic["c/numpy"], array)
    assert by_topic["c/numpy"].dtype == np.int32 and by_topic["c/numpy"].shape == (250, 200)
    assert b.stats()["decode_errors"] == 0


def wire_size(raw, topic: str) -> int:
    return next(len(msg) for key, msg in raw.captured if key.endswith(topic))


def test_compressed_messages_are_smaller_on_the_wire_and_follow_the_config(mesh, raw_zenoh, psk):
    a = mesh.node("node-1", psk, compression="lz4")
    assert ZenohConfig(compression="lz4").compression == "lz4"
    assert ZenohConfig().compression is None
    b = mesh.node("node-2", psk)
    raw = raw_zenoh()
    raw.capture("evospikenet/**")
    got: list = []
    b.subscribe("z/*", lambda data, sender, topic: got.append(topic), with_info=True)
    publish_until(a, "z/warmup", b"", lambda: got and raw.captured, serialize="raw")
    zeros = b"\x00" * 100_000
    a.publish("z/default", zeros, serialize="raw")  # the config's lz4
    a.publish("z/off", zeros, serialize="raw", compress=False)
    a.publish("z/zstd", zeros, serialize="raw", compress="zstd")
    topics = ("z/default", "z/off", "z/zstd")
    # The raw capture is a subscriber of its own: it may hear them after node-2 does.
    wait_until(
        lambda: len(got) >= 4 and all(any(k.endswith(t) for k, _ in raw.captured) for t in topics),
        what="the three messages, at node-2 and on the wire",
    )
    assert wire_size(raw, "z/off") > 100_000
    assert wire_size(raw, "z/default") < 2_000
    assert wire_size(raw, "z/zstd") < 2_000
    # The plaintext never shows on the wire, compressed or not.
    assert all(b"\x00" * 64 not in msg for _, msg in raw.captured)


def test_bad_compression_settings_are_named(mesh, psk):
    a = mesh.node("node-1", psk)
    with pytest.raises(ValueError, match=r"compress.*gzip"):
        a.publish("t", {"x": 1}, compress="gzip")
    with pytest.raises(TypeError, match="compress"):
        a.publish("t", {"x": 1}, compress=3.5)
    with pytest.raises(ConfigError, match=r"compression.*gzip"):
        ZenohConfig(compression="gzip")
