"""Exceptions by kind: every run-time error is an ``EvoSpikeNetError`` subclass that is also
the built-in exception callers caught before; a wrong argument stays a built-in error."""

import pytest
from evospikenet import errors
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

KINDS = [
    (errors.ConfigError, ValueError),
    (errors.KeyExchangeError, ValueError),
    (errors.CommunicatorClosedError, RuntimeError),
    (errors.RemoteHandlerError, RuntimeError),
    (errors.DeadlineExceededError, TimeoutError),
    (errors.TransportError, ConnectionError),
    (errors.RunMismatchError, ValueError),
]


@pytest.mark.parametrize("cls, builtin", KINDS)
def test_each_kind_is_also_the_builtin_it_was(cls, builtin):
    assert issubclass(cls, errors.EvoSpikeNetError)
    assert issubclass(cls, builtin)
    assert cls.__doc__


def test_every_public_class_is_listed():
    listed = {c for c, _ in KINDS} | {errors.EvoSpikeNetError}
    assert {getattr(errors, name) for name in errors.__all__} == listed


def test_malformed_psk_is_a_config_error():
    with pytest.raises(errors.ConfigError, match="64 hex"):
        ZenohConfig(psk="zz")


def test_closed_communicator(mesh):
    a = mesh.node("a")
    a.close()
    with pytest.raises(errors.CommunicatorClosedError, match="communicator is closed"):
        a.publish("t", 1)
    with pytest.raises(RuntimeError):
        a.subscribe("t", print)


def test_key_exchange_failures(mesh):
    a = mesh.node("a")
    a.initiate_key_exchange("b")
    with pytest.raises(errors.KeyExchangeError, match="32 bytes"):
        a.complete_key_exchange(b"\x01" * 5, "b")
    with pytest.raises(errors.KeyExchangeError):
        a.initiate_key_exchange(a.node_id)
    assert a.stats()["key_exchange_failures"] == 2


def test_remote_handler_error(mesh, psk):
    a = mesh.node("a", psk)
    b = mesh.node("b", psk)

    def handler(_data):
        raise KeyError("local detail")

    b.serve("svc", handler)
    with pytest.raises(errors.RemoteHandlerError) as info:
        for _ in range(100):  # until the service's declaration reached a
            try:
                a.request("svc", 1, timeout=0.2)
            except errors.DeadlineExceededError:
                continue
    assert "KeyError" in str(info.value) and "local detail" not in str(info.value)


def test_no_reply_is_a_deadline_exceeded(mesh):
    a = mesh.node("a")
    with pytest.raises(errors.DeadlineExceededError, match="no reply"):
        a.request("nobody", 1, timeout=0.1)
    with pytest.raises(errors.DeadlineExceededError, match='"peer-x"'):
        a.wait_for_session("peer-x", timeout=0.05)


def test_port_in_use_is_a_transport_error(mesh):
    taken = mesh.node("a").locators[0]
    with pytest.raises(errors.TransportError, match="zenoh"):
        ZenohCommunicator("b", ZenohConfig(listen=[taken]))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.publish("t", 1, serialize="xml"),
        lambda c: c.publish("a//b", 1),
        lambda c: c.publish("t", {1, 2}),
        lambda c: c.subscribe("t", "not callable"),
        lambda c: c.subscribe_queue("t", maxsize=0),
    ],
)
def test_wrong_arguments_stay_builtin(mesh, call):
    a = mesh.node("a")
    with pytest.raises((TypeError, ValueError)) as info:
        call(a)
    assert not isinstance(info.value, errors.EvoSpikeNetError)
