"""The callback thread contains a panic of ours (in decoding or dispatch): the message is
dropped, counted in ``stats()["internal_errors"]`` and logged at ERROR, and the thread
goes on delivering. A test hook makes one chosen payload panic while it is decoded."""

import logging

import pytest
from evospikenet import _native, errors
from support.comm import publish_until, wait_until

POISON = b"\xde\xad payload that panics"


@pytest.fixture
def poison():
    _native._panic_on_payload(POISON)
    try:
        yield POISON
    finally:
        _native._panic_on_payload(None)


def internal_error_records(caplog):
    return [r for r in caplog.records if r.getMessage().startswith("Internal error")]


def test_a_panic_while_decoding_a_delivery_is_contained(mesh, psk, poison, caplog):
    caplog.set_level(logging.ERROR, logger="evospikenet.zenoh_comm")
    a = mesh.node("a", psk)
    got = []
    a.subscribe("p", got.append)
    publish_until(a, "p", poison, lambda: a.stats()["internal_errors"], serialize="raw")
    publish_until(a, "p", b"after", lambda: b"after" in got, serialize="raw")
    assert poison not in got
    assert a.stats()["dropped_by_callback_error"] == 0
    records = internal_error_records(caplog)
    assert records and all(r.levelno == logging.ERROR for r in records)
    assert "topic p" in records[0].getMessage()


def test_a_panic_while_serving_is_contained(mesh, psk, poison, caplog):
    caplog.set_level(logging.ERROR, logger="evospikenet.zenoh_comm")
    server = mesh.node("server", psk)
    client = mesh.node("client", psk)
    server.serve("rpc/echo", lambda d: d, serialize="raw")
    wait_until(lambda: _answers(client), what="the service to answer")
    # The requester of the panicking request is told at once; the next one is served.
    with pytest.raises(errors.RemoteHandlerError, match="internal error"):
        client.request("rpc/echo", poison, serialize="raw", timeout=5)
    assert client.request("rpc/echo", b"next", serialize="raw", timeout=5) == b"next"
    assert server.stats()["internal_errors"] == 1
    assert internal_error_records(caplog)


def _answers(client):
    try:
        return client.request("rpc/echo", b"ping", serialize="raw", timeout=0.2) == b"ping"
    except TimeoutError:
        return False


def test_the_hook_is_off_by_default(mesh, psk):
    a = mesh.node("a", psk)
    got = []
    a.subscribe("p", got.append)
    publish_until(a, "p", POISON, lambda: got, serialize="raw")
    assert got[0] == POISON and a.stats()["internal_errors"] == 0
