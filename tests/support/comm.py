"""Communicators on loopback with port 0, never multicast; waiting for what arrives."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

LOOPBACK_ANY_PORT = "tcp/127.0.0.1:0"


def wait_until(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    """Poll ``cond`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def new_psk() -> str:
    return secrets.token_hex(32)


def publish_until(
    comm: ZenohCommunicator,
    topic: str,
    data,
    received: Callable[[], object],
    serialize: str = "json",
    timeout: float = 10.0,
):
    """Publish repeatedly until ``received()`` is truthy: subscriptions reach other nodes
    asynchronously, so the first publications after a subscribe may have no route yet.
    ``received`` must cover every subscriber the test relies on: one subscriber being
    reached says nothing about another's route."""
    deadline = time.monotonic() + timeout
    while True:
        comm.publish(topic, data, serialize=serialize)
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            value = received()
            if value:
                return value
            time.sleep(0.005)
        if time.monotonic() > deadline:
            pytest.fail(f"nothing received on {topic!r} within {timeout} s")


class Mesh:
    """Communicators joined to one listener on a loopback port chosen by the OS."""

    def __init__(self) -> None:
        self.nodes: list[ZenohCommunicator] = []
        self.locator: str | None = None

    def node(self, node_id: str, psk: str | None = None, **kw) -> ZenohCommunicator:
        if self.locator is None:
            cfg = ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk, **kw)
            comm = ZenohCommunicator(node_id, cfg)
            self.locator = comm.locators[0]
        else:
            # Every node also listens, so a raw client can link to it directly (peers do
            # not forward each other's traffic).
            cfg = ZenohConfig(connect=[self.locator], listen=[LOOPBACK_ANY_PORT], psk=psk, **kw)
            comm = ZenohCommunicator(node_id, cfg)
        # Closed by the fixture even if the wait below fails.
        self.nodes.append(comm)
        if len(self.nodes) > 1:
            wait_until(comm.connected_peers, what=f"{node_id} to link to {self.locator}")
        return comm

    def close(self) -> None:
        for n in self.nodes:
            n.close()


class RawZenoh:
    """An independent client (the eclipse-zenoh package) on the same loopback mesh: sees
    exactly what is on the wire and can inject arbitrary bytes."""

    def __init__(self, locators: list[str]) -> None:
        import zenoh

        conf = zenoh.Config()
        conf.insert_json5("mode", '"peer"')
        conf.insert_json5("connect/endpoints", json.dumps(locators))
        conf.insert_json5("listen/endpoints", "[]")
        conf.insert_json5("scouting/multicast/enabled", "false")
        self.session = zenoh.open(conf)
        self.captured: list[tuple[str, bytes]] = []
        #: Declarations kept alive until close (subscribers, queryables, tokens).
        self.declared: list = []

    def capture(self, key: str) -> None:
        def on_sample(sample) -> None:
            self.captured.append((str(sample.key_expr), sample.payload.to_bytes()))

        self.declared.append(self.session.declare_subscriber(key, on_sample))

    def put(self, key: str, payload: bytes) -> None:
        self.session.put(key, payload)

    def close(self) -> None:
        self.declared.clear()
        self.session.close()


def run_each_in_thread(
    comms: Sequence[ZenohCommunicator],
    work: Callable[[ZenohCommunicator], object],
    timeout: float = 120.0,
) -> dict[str, object]:
    """``work(comm)`` for every communicator at once, each in a thread of its own; by
    node id, what it returned or the exception it raised."""
    results: dict[str, object] = {}

    def run(c: ZenohCommunicator) -> None:
        try:
            results[c.node_id] = work(c)
        except Exception as e:  # the caller checks
            results[c.node_id] = e

    threads = [threading.Thread(target=run, args=(c,)) for c in comms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results
