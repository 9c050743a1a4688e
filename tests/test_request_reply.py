"""Encrypted query/reply."""

import logging
import time

import numpy as np
import pytest
from support.comm import new_psk, wait_until


def request_until_served(comm, topic, data, timeout=10.0, **kw):
    """The service declaration reaches other nodes asynchronously: retry until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return comm.request(topic, data, timeout=0.5, **kw)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def test_request_reply(mesh, psk):
    server = mesh.node("server", psk)
    client = mesh.node("client", psk)
    server.serve("rpc/add", lambda d: {"sum": d["a"] + d["b"]})
    assert request_until_served(client, "rpc/add", {"a": 2, "b": 40}) == {"sum": 42}
    assert client.request("rpc/add", {"a": 1, "b": 1}) == {"sum": 2}


def test_numpy_request_and_reply(mesh, psk):
    server = mesh.node("server", psk)
    client = mesh.node("client", psk)
    server.serve("rpc/double", lambda arr: arr * 2, serialize="numpy")
    x = np.arange(10, dtype=np.float32)
    out = request_until_served(client, "rpc/double", x, serialize="numpy")
    np.testing.assert_array_equal(out, x * 2)


def test_timeout_raises_timeout_error(mesh, psk):
    client = mesh.node("client", psk)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        client.request("rpc/nobody", {}, timeout=0.3)
    assert time.monotonic() - t0 >= 0.25
    assert "rpc/nobody" in str(info.value)


def test_wrong_psk_server_gets_nothing_and_client_times_out(mesh, psk):
    server = mesh.node("server", new_psk())
    client = mesh.node("client", psk)
    called = []
    server.serve("rpc/x", lambda d: called.append(d) or d)
    wait_until(lambda: _try(client) or server.stats()["decrypt_failures"], what="rejected request")
    assert called == []


def _try(client):
    try:
        client.request("rpc/x", {"v": 1}, timeout=0.2)
        return True
    except TimeoutError:
        return False


def test_failing_handler_is_logged_and_requester_is_told(mesh, psk):
    server = mesh.node("server", psk)
    client = mesh.node("client", psk)

    def handler(d):
        if d == "bad":
            raise ValueError("handler failed")
        return "ok"

    server.serve("rpc/h", handler)
    assert request_until_served(client, "rpc/h", "good") == "ok"
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        client.request("rpc/h", "bad", timeout=5)
    assert time.monotonic() - t0 < 4, "the requester should not wait for its timeout"
    assert "rpc/h" in str(info.value) and "ValueError" in str(info.value)
    assert "handler failed" not in str(info.value)
    wait_until(lambda: server.stats()["dropped_by_callback_error"] == 1, what="error count")


def test_service_undeclare(mesh, psk):
    server = mesh.node("server", psk)
    client = mesh.node("client", psk)
    svc = server.serve("rpc/u", lambda d: d)
    assert request_until_served(client, "rpc/u", 1) == 1
    svc.undeclare()
    assert not svc.active
    with pytest.raises(TimeoutError):
        client.request("rpc/u", 1, timeout=0.3)


def test_a_request_reaches_its_whole_responder_set_and_cannot_be_replayed_to_it(
    mesh, raw_zenoh, psk
):
    """A request goes to every service on its key, each of which takes it once: a copy
    captured on the wire and replayed later reaches no handler, on any of the nodes."""
    calls: dict[str, list] = {"server-1": [], "server-2": []}
    servers = [mesh.node(name, psk) for name in calls]
    client = mesh.node("client", psk)
    raw = raw_zenoh()
    for s in servers:
        s.serve("rpc/once", lambda d, name=s.node_id: calls[name].append(d) or {"by": name})
    captured: list[bytes] = []
    raw.session.declare_queryable(
        "evospikenet/rpc/once",
        lambda q: captured.append(q.payload.to_bytes()) if q.payload is not None else None,
    )
    # Warm-up requests until the client reaches both services and the spy (the services'
    # routes say nothing about the spy's). Some may still be on their way afterwards.
    wait_until(
        lambda: (
            request_until_served(client, "rpc/once", 0) is not None
            and all(calls.values())
            and captured
        ),
        what="both services and the spy to be reached",
    )
    # The request under test, told apart from the warm-ups by its size on the wire.
    data = "the request under test"
    warm_up_size = max(len(c) for c in captured)
    client.request("rpc/once", data, timeout=5)
    wait_until(
        lambda: (
            all(data in c for c in calls.values())
            and [c for c in captured if len(c) > warm_up_size]
        ),
        what="each service and the spy to see the request",
    )
    assert all(c.count(data) == 1 for c in calls.values()), calls
    (request,) = [c for c in captured if len(c) > warm_up_size]
    before = [s.stats()["replays_rejected"] for s in servers]
    for _ in range(3):
        list(raw.session.get("evospikenet/rpc/once", payload=request, timeout=1.0))
    wait_until(
        lambda: all(
            s.stats()["replays_rejected"] > b for s, b in zip(servers, before, strict=True)
        ),
        what="the replays to be refused by both services",
    )
    assert all(c.count(data) == 1 for c in calls.values()), calls


@pytest.mark.parametrize("keyed", [False, True], ids=["plaintext", "psk"])
def test_request_reply_under_a_namespace_of_several_chunks(mesh, caplog, keyed):
    """A namespace with '/' in it: requests and replies work end to end, and the reply's
    plaintext warning names the user topic (not the namespace's tail and the topic)."""
    caplog.set_level(logging.WARNING, logger="evospikenet.zenoh_comm")
    psk = new_psk() if keyed else None
    server = mesh.node("server", psk, namespace="lab/brain-a")
    client = mesh.node("client", psk, namespace="lab/brain-a")
    server.serve("rpc/add", lambda d: {"sum": d["a"] + d["b"]})
    assert request_until_served(client, "rpc/add", {"a": 2, "b": 40}) == {"sum": 42}
    warned = [
        r.getMessage()
        for r in caplog.records
        if "NOT encrypted" in r.getMessage() and "node server" in r.getMessage()
    ]
    if keyed:
        assert warned == []
    else:
        assert len(warned) == 1 and "(here on topic rpc/add)" in warned[0], warned
