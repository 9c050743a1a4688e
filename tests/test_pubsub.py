"""Publish/subscribe between communicators over real Zenoh on loopback."""

import logging
import queue
import threading
import time

import numpy as np
import pytest
from support.comm import publish_until, wait_until


def test_guide_json_round_trip(mesh, psk):
    a = mesh.node("node-1", psk)
    b = mesh.node("node-2", psk)
    got = []
    b.subscribe("topic", got.append)
    publish_until(a, "topic", {"data": "secret"}, lambda: got)
    assert got[0] == {"data": "secret"}


@pytest.mark.parametrize(
    "value",
    [
        {"spikes": list(range(32)), "t": 1.5, "ok": True, "none": None, "nested": {"a": [1, "x"]}},
        [1, 2.25, "three", False],
        'a string with ünïcödé and "quotes"\n',
        2**64 - 1,
        -(2**63),
        3.141592653589793,
        {"keys": {1: "int key", "s": 2}},
    ],
)
def test_json_values(mesh, psk, value):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    got = []
    b.subscribe("j", got.append)
    publish_until(a, "j", value, lambda: got)
    if isinstance(value, dict) and "keys" in value:
        assert got[0] == {"keys": {"1": "int key", "s": 2}}
    else:
        assert got[0] == value
        assert type(got[0]) is type(value)


def test_json_key_order_and_numpy_scalars(mesh, psk):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    got = []
    b.subscribe("j", got.append)
    value = {"z": np.int64(3), "a": np.float32(0.5), "m": (1, 2)}
    publish_until(a, "j", value, lambda: got)
    assert list(got[0]) == ["z", "a", "m"]
    assert got[0] == {"z": 3, "a": 0.5, "m": [1, 2]}


def test_raw_round_trip(mesh, psk):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    got = []
    b.subscribe("r", got.append)
    payload = bytes(range(256)) * 40
    publish_until(a, "r", payload, lambda: got, serialize="raw")
    assert got[0] == payload and isinstance(got[0], bytes)
    got.clear()
    publish_until(a, "r", bytearray(b"ba"), lambda: got, serialize="raw")
    assert got[0] == b"ba"
    got.clear()
    publish_until(a, "r", memoryview(b"mv-bytes")[3:], lambda: got, serialize="raw")
    assert got[0] == b"bytes"


@pytest.mark.parametrize(
    "array",
    [
        np.arange(32, dtype=np.uint32),
        np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
        np.arange(24, dtype=">i8").reshape(2, 3, 4),
        np.array([True, False, True]),
        (np.arange(6) + 1j).astype(np.complex64).reshape(2, 3),
        np.array(7.5, dtype=np.float64),
        np.zeros((0, 5), dtype=np.int16),
        np.arange(40, dtype=np.float16)[::3],
        np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    ],
    ids=lambda a: f"{a.dtype.str}{a.shape}",
)
def test_numpy_round_trip(mesh, psk, array):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    got = []
    b.subscribe("n", got.append)
    publish_until(a, "n", array, lambda: got, serialize="numpy")
    out = got[0]
    assert isinstance(out, np.ndarray)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable
    if out.size:
        assert out.ctypes.data % out.dtype.alignment == 0


def test_large_numpy_array(mesh, psk):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    q = b.subscribe_queue("big", maxsize=4)
    arr = np.random.default_rng(1).standard_normal(1 << 18)  # 2 MiB
    publish_until(a, "big", arr, lambda: q.qsize(), serialize="numpy")
    np.testing.assert_array_equal(q.get(timeout=5), arr)


def test_wildcards_and_info(mesh, psk):
    a = mesh.node("sender-1", psk)
    b = mesh.node("b", psk)
    one, deep, info = [], [], []
    b.subscribe("spikes/*/motor", one.append)
    b.subscribe("spikes/**", deep.append)
    b.subscribe("spikes/**", lambda d, s, t: info.append((d, s, t)), with_info=True)
    publish_until(a, "spikes/pfc/motor", 1, lambda: one and deep and info)
    a.publish("spikes/pfc/visual/x", 2)
    wait_until(lambda: 2 in deep, what="deep wildcard delivery")
    assert 2 not in one
    assert info[0] == (1, "sender-1", "spikes/pfc/motor")


def test_every_message_arrives_once_in_order(mesh, psk):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    q = b.subscribe_queue("seq", maxsize=10_000)
    publish_until(a, "seq", -1, lambda: q.qsize())
    while q.qsize():
        q.get()
    n = 5000
    for i in range(n):
        a.publish("seq", i)
    got = [q.get(timeout=10) for _ in range(n)]
    assert got == list(range(n))
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert b.stats()["decrypt_failures"] == 0


def test_publish_from_many_threads(mesh, psk):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)
    q = b.subscribe_queue("mt", maxsize=50_000)
    publish_until(a, "mt", [-1, -1], lambda: q.qsize())
    while q.qsize():
        q.get()

    def worker(t):
        for i in range(1000):
            a.publish("mt", [t, i])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = {tuple(q.get(timeout=10)) for _ in range(4000)}
    assert got == {(t, i) for t in range(4) for i in range(1000)}
    assert b.stats()["replays_rejected"] == 0


def test_queue_iteration_and_close(mesh):
    a = mesh.node("a")
    q = a.subscribe_queue("it")
    publish_until(a, "it", "x", lambda: q.qsize())
    a.publish("it", "y")
    wait_until(lambda: q.qsize() >= 2, what="second message")
    q.close()
    items = list(q)
    assert items[-1] == "y" and set(items) == {"x", "y"}
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)


def test_full_queue_drops_and_counts(mesh, psk):
    a = mesh.node("a", psk)
    q = a.subscribe_queue("f", maxsize=2)
    publish_until(a, "f", 0, lambda: q.qsize())
    for i in range(20):
        a.publish("f", i)
    wait_until(lambda: a.stats()["dropped_queue_full"] > 0, what="drop count")
    assert q.qsize() == 2


def test_callback_exception_is_logged_and_counted(mesh, psk, caplog):
    caplog.set_level(logging.ERROR, logger="evospikenet.zenoh_comm")
    a = mesh.node("a", psk)
    good = []

    def bad(data):
        if data == "boom":
            raise RuntimeError("callback failure")
        good.append(data)

    a.subscribe("cb", bad)
    publish_until(a, "cb", "boom", lambda: a.stats()["dropped_by_callback_error"])
    publish_until(a, "cb", "fine", lambda: good)
    assert any("callback failure" in r.getMessage() or r.exc_info for r in caplog.records)


def test_callback_error_logging_is_rate_limited(mesh, psk, caplog):
    """Input that makes a callback raise may come from the network: every failure is
    counted, but only a few tracebacks per period are logged."""
    caplog.set_level(logging.ERROR, logger="evospikenet.zenoh_comm")
    a = mesh.node("a", psk)
    a.subscribe("always", lambda _d: 1 / 0)
    for i in range(50):
        a.publish("always", i)
    wait_until(lambda: a.stats()["dropped_by_callback_error"] == 50, what="50 failures")
    raised = [r for r in caplog.records if "callback for topic always raised" in r.getMessage()]
    assert 1 <= len(raised) <= 5, len(raised)


def test_undeclare_stops_delivery(mesh):
    a = mesh.node("a")
    got = []
    sub = a.subscribe("u", got.append)
    publish_until(a, "u", 1, lambda: got)
    sub.undeclare()
    assert not sub.active
    n = len(got)
    a.publish("u", 2)
    time.sleep(0.3)
    assert len(got) == n
    sub.close()  # idempotent


@pytest.mark.parametrize(
    "data, serialize, exc, words",
    [
        ({"a": 1}, "pickle", ValueError, "pickle"),
        ({1, 2}, "json", TypeError, "set"),
        ({"big": 2**64}, "json", ValueError, "2**64"),
        (float("nan"), "json", ValueError, "JSON"),
        (np.zeros(3), "json", TypeError, "numpy"),
        ("text", "raw", TypeError, "encode"),
        (12, "raw", TypeError, "bytes-like"),
        ([1, 2], "numpy", TypeError, "ndarray"),
        (np.array(["a"]), "numpy", TypeError, "dtype"),
        (np.array([object()]), "numpy", TypeError, "dtype"),
    ],
)
def test_bad_payloads_raise(mesh, data, serialize, exc, words):
    a = mesh.node("a")
    with pytest.raises(exc) as info:
        a.publish("t", data, serialize=serialize)
    assert words in str(info.value)


@pytest.mark.parametrize("topic", ["", "/x", "x/", "a//b", "a/*", "a/**", "a$b"])
def test_bad_publish_topics(mesh, topic):
    a = mesh.node("a")
    with pytest.raises(ValueError):
        a.publish(topic, 1)


def test_close_is_idempotent_and_final(mesh):
    a = mesh.node("a")
    a.publish("t", 1)
    a.close()
    a.close()
    assert a.closed
    with pytest.raises(RuntimeError):
        a.publish("t", 1)
    stats = a.stats()
    assert stats["published"] == 1


def test_callback_may_publish_and_close(mesh):
    a = mesh.node("a")
    got = []

    def relay(data):
        if data == "ping":
            a.publish("pong", "pong")

    a.subscribe("ping", relay)
    a.subscribe("pong", got.append)
    publish_until(a, "ping", "ping", lambda: got)

    closed = threading.Event()

    def closer(_data):
        a.close()
        closed.set()

    a.subscribe("closer", closer)
    a.publish("closer", 1)
    assert closed.wait(10)
    assert a.closed
