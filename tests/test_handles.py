"""One closable-handle class: subscriptions, services and queues share ``Handle``'s
``topic``, ``active``, ``undeclare()``, ``close()`` and context-manager protocol."""

import gc

import pytest
from evospikenet.zenoh_comm import Handle, MessageQueue, Service, Subscription
from support.comm import publish_until


def declare_each(comm):
    return [
        comm.subscribe("h/sub", lambda _d: None),
        comm.serve("h/svc", lambda d: d),
        comm.subscribe_queue("h/queue"),
    ]


def test_every_handle_is_a_handle(mesh):
    a = mesh.node("a")
    handles = declare_each(a)
    assert [type(h) for h in handles] == [Subscription, Service, MessageQueue]
    for h in handles:
        assert isinstance(h, Handle)
        assert h.active and h.topic.startswith("h/")
        assert type(h).__name__ in repr(h) and h.topic in repr(h)


@pytest.mark.parametrize("close", ["undeclare", "close", "with"])
def test_each_way_of_closing_closes_every_kind(mesh, close):
    a = mesh.node("a")
    for h in declare_each(a):
        if close == "with":
            with h as entered:
                assert entered is h
        else:
            getattr(h, close)()
        assert not h.active
        h.close()  # idempotent, never raises
        h.undeclare()


def test_closing_the_communicator_closes_its_handles(mesh):
    a = mesh.node("a")
    handles = declare_each(a)
    a.close()
    assert not any(h.active for h in handles)
    for h in handles:
        h.close()


def test_a_dropped_subscription_keeps_running(mesh):
    a = mesh.node("a")
    got = []
    a.subscribe("h/kept", got.append)
    gc.collect()
    publish_until(a, "h/kept", 1, lambda: got)


def test_a_closed_queue_can_still_be_drained(mesh):
    a = mesh.node("a")
    q = a.subscribe_queue("h/drain")
    publish_until(a, "h/drain", 7, lambda: q.qsize())
    with q:
        pass
    assert not q.active
    assert q.get(timeout=1) == 7
