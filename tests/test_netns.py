"""Brain nodes on separate "machines": Linux network namespaces joined in a star.

The router namespace sits in the middle with one veth pair and one /24 per node namespace
(``10.200.N.1`` on the router side, ``10.200.N.2`` on the node side), and runs
``evospikenet-router`` on its side of every link. Two variants:

- isolated: node namespaces have no route to each other, so the Zenoh router is the only
  way between them. Zenoh *clients* talk through it (the router relays).
- routed: the router namespace also forwards IP, as a network between machines does. Zenoh
  *peers* need this: zenoh 1.10 routers do not relay between peers; the router introduces
  them (gossip) and they link to each other's listeners. The demo's nodes started with
  ``--connect`` alone are clients, and run in the isolated variant.

All addresses exist only inside namespaces the test creates and deletes; nothing touches
the host's interfaces. Needs root and iproute2; skips otherwise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain

import pytest
from conftest import new_psk
from test_deploy import (
    DEMO,
    NEURONS,
    NODE_TIMEOUT,
    REPO,
    SEED,
    STEPS,
    Proc,
    check_results,
    clean_env,
    require_demo,
    running,
    start_router,
)

ZENOH_PORT = 7447


def _ip(command: str) -> None:
    """Run ``ip <command>`` (names and addresses here never contain spaces)."""
    subprocess.run(["ip", *command.split()], check=True, capture_output=True, text=True, timeout=30)


def _reason(e: subprocess.CalledProcessError) -> str:
    return (e.stderr or "").strip() or f"exit {e.returncode}"


class Star:
    """A router namespace and ``leaves`` node namespaces, each linked to the router by a
    veth pair. Names carry the pid and a random tag, so concurrent runs never collide."""

    def __init__(self, leaves: int) -> None:
        tag = f"{os.getpid()}-{secrets.token_hex(2)}"
        self.router_ns = f"esn-{tag}-r"
        self.leaf_ns = [f"esn-{tag}-{i}" for i in range(1, leaves + 1)]
        self._created: list[str] = []

    def add_namespaces(self) -> None:
        for ns in (self.router_ns, *self.leaf_ns):
            _ip(f"netns add {ns}")
            self._created.append(ns)
            _ip(f"-n {ns} link set lo up")

    def wire(self, routed: bool) -> None:
        """One veth pair per leaf, created directly inside the two namespaces; with
        ``routed``, leaves route everything through the router namespace, which forwards."""
        r = self.router_ns
        for i, leaf in enumerate(self.leaf_ns, start=1):
            _ip(f"link add vr{i} netns {r} type veth peer name vn0 netns {leaf}")
            _ip(f"-n {r} addr add {self.router_address(i)}/24 dev vr{i}")
            _ip(f"-n {leaf} addr add {self.leaf_address(i)}/24 dev vn0")
            _ip(f"-n {r} link set vr{i} up")
            _ip(f"-n {leaf} link set vn0 up")
            if routed:
                _ip(f"-n {leaf} route add default via {self.router_address(i)}")
        if routed:
            # A namespace has its own sysctls: this changes nothing outside it.
            subprocess.run(
                [*self.exec_in(r), "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            )

    @staticmethod
    def router_address(i: int) -> str:
        """The router's address on leaf ``i``'s link (1-based)."""
        return f"10.200.{i}.1"

    @staticmethod
    def leaf_address(i: int) -> str:
        return f"10.200.{i}.2"

    def exec_in(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def python_in_leaf(self, i: int, *args: str) -> list[str]:
        """This interpreter with ``args``, in leaf ``i`` (1-based)."""
        return [*self.exec_in(self.leaf_ns[i - 1]), sys.executable, *args]

    def router_endpoints(self) -> list[str]:
        return [
            f"tcp/{self.router_address(i)}:{ZENOH_PORT}" for i in range(1, len(self.leaf_ns) + 1)
        ]

    def delete(self) -> None:
        # Deleting a namespace also deletes the veth ends inside it (and so their peers).
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._created.clear()


@contextmanager
def star_network(leaves: int, *, routed: bool) -> Iterator[Star]:
    """A :class:`Star`, deleted on the way out; skips where namespaces cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    star = Star(leaves)
    try:
        try:
            star.add_namespaces()
        except subprocess.CalledProcessError as e:
            pytest.skip(f"`ip netns add` failed here: {_reason(e)}")
        try:
            star.wire(routed)
        except subprocess.CalledProcessError as e:
            pytest.skip(f"cannot link network namespaces here (veth, routes): {_reason(e)}")
        yield star
    finally:
        star.delete()


# Runs in a leaf: whether the other leaf's address answers at all (a refused connection is
# an answer; no route or a timeout is not).
REACHABLE = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], 9), timeout=3).close()
    except ConnectionRefusedError:
        print("reachable")
    except OSError as e:
        print("unreachable:", e.strerror or e)
    else:
        print("reachable")
    """
)

# Both echo ends: argv = node id, Zenoh mode, router endpoint, own listen endpoint or "-".
_OPEN = """
import json, os, sys, time
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

node, mode, router, listen = sys.argv[1:5]
cfg = ZenohConfig(mode=mode, connect=[router], listen=None if listen == "-" else [listen],
                  psk=os.environ["EVOSPIKENET_PSK"])
"""

# Serves an encrypted echo until its stdin closes.
ECHO_SERVER = _OPEN + textwrap.dedent(
    """
    with ZenohCommunicator(node, cfg) as comm:
        comm.serve("netns/echo", lambda data: {"echo": data, "by": node})
        print("serving", flush=True)
        sys.stdin.read()
        print("decrypt_failures", comm.stats()["decrypt_failures"], flush=True)
    """
)

# Asks until the server answers (the first requests may find no route yet).
ECHO_CLIENT = _OPEN + textwrap.dedent(
    """
    with ZenohCommunicator(node, cfg) as comm:
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = comm.request("netns/echo", {"from": node}, timeout=1.0)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        print("reply", json.dumps(reply, sort_keys=True), flush=True)
        print("decrypt_failures", comm.stats()["decrypt_failures"], flush=True)
    """
)


@pytest.mark.parametrize(
    ("mode", "routed"),
    [("client", False), ("peer", True)],
    ids=["clients-relayed-by-router", "peers-introduced-by-router"],
)
def test_encrypted_echo_between_namespaces_through_the_router(mode, routed):
    with star_network(2, routed=routed) as star:
        probe = Proc(star.python_in_leaf(1, "-c", REACHABLE, star.leaf_address(2)))
        with running(probe):
            assert probe.wait(30) == 0, probe.output
        expected = "reachable" if routed else "unreachable"
        assert "".join(probe.stdout).split(":")[0].strip() == expected, probe.output

        endpoints = star.router_endpoints()
        router, locators = start_router(endpoints, star.exec_in(star.router_ns))
        env = clean_env({"EVOSPIKENET_PSK": new_psk()})

        def listen(i: int) -> str:
            return f"tcp/{star.leaf_address(i)}:0" if mode == "peer" else "-"

        with running(router) as started:
            assert sorted(locators) == sorted(endpoints)
            server = Proc(
                star.python_in_leaf(1, "-c", ECHO_SERVER, "left", mode, endpoints[0], listen(1)),
                env=env,
                stdin=subprocess.PIPE,
            )
            started.append(server)
            server.wait_for_line("serving")
            client = Proc(
                star.python_in_leaf(2, "-c", ECHO_CLIENT, "right", mode, endpoints[1], listen(2)),
                env=env,
            )
            started.append(client)
            assert client.wait(90) == 0, client.output
            assert server.popen.stdin is not None
            server.popen.stdin.close()
            assert server.wait(30) == 0, server.output
            assert router.stop() == 0, router.output
    out = "".join(client.stdout)
    assert 'reply {"by": "left", "echo": {"from": "right"}}' in out, client.output
    assert "decrypt_failures 0" in out, client.output
    assert "decrypt_failures 0" in "".join(server.stdout), server.output


@pytest.mark.timeout(NODE_TIMEOUT + 120)
def test_demo_nodes_in_separate_namespaces_match_single_process(tmp_path):
    """default_brain's three regions on three nodes, one per namespace, PSK mode."""
    require_demo()
    node_ids = ["motor-0", "pfc-0", "visual-0"]
    env = clean_env({"EVOSPIKENET_PSK": new_psk()})  # not on the command line: `ps` shows it
    nodes: dict[str, Proc] = {}
    # No IP forwarding: the nodes (Zenoh clients: --connect only) reach each other only
    # through the router process.
    with star_network(len(node_ids), routed=False) as star:
        router, _ = start_router(star.router_endpoints(), star.exec_in(star.router_ns))
        with running(router) as started:
            for i, node in enumerate(node_ids, start=1):
                flags = {
                    "--node-id": node,
                    "--peer-id": ",".join(n for n in node_ids if n != node),
                    "--mode": "psk",
                    "--connect": f"tcp/{star.router_address(i)}:{ZENOH_PORT}",
                    "--steps": str(STEPS),
                    "--neurons": str(NEURONS),
                    "--seed": str(SEED),
                    "--out": str(tmp_path),
                    "--timeout": "120",
                }
                argv = star.python_in_leaf(i, str(REPO / DEMO), *chain.from_iterable(flags.items()))
                nodes[node] = Proc(argv, env=env, cwd=REPO)
                started.append(nodes[node])
            for proc in nodes.values():
                proc.wait(NODE_TIMEOUT)
            assert router.stop() == 0, router.output
    check_results(tmp_path, nodes, steps=STEPS, neurons=NEURONS, seed=SEED)
