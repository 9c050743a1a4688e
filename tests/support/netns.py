"""Linux network namespaces made (and deleted) by the tests: a star of "machines" around a
router, and a private loopback for the fixed rendezvous port.

All addresses exist only inside namespaces the tests create; nothing touches the host's
interfaces. Names carry the pid and a random tag, so concurrent runs never collide.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# Zenoh's usual port: the routers here listen on it, and the zero-configuration local
# mesh has its rendezvous on it (127.0.0.1, src/config.rs, DEFAULT_LOCAL_ENDPOINT).
ZENOH_PORT = 7447


def _ip(command: str) -> None:
    """Run ``ip <command>`` (names and addresses here never contain spaces)."""
    subprocess.run(["ip", *command.split()], check=True, capture_output=True, text=True, timeout=30)


def _reason(e: subprocess.CalledProcessError) -> str:
    return (e.stderr or "").strip() or f"exit {e.returncode}"


def _tag() -> str:
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def exec_in(ns: str) -> list[str]:
    """The argv prefix that runs a command in namespace ``ns``."""
    return ["ip", "netns", "exec", ns]


def _why_not() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


class Star:
    """A router namespace and ``leaves`` node namespaces, each linked to the router by a
    veth pair (``10.200.N.1`` on the router side, ``10.200.N.2`` on leaf N's)."""

    def __init__(self, leaves: int) -> None:
        tag = _tag()
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
                [*exec_in(r), "sysctl", "-qw", "net.ipv4.ip_forward=1"],
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
        return exec_in(ns)

    def python_in_leaf(self, i: int, *args: str) -> list[str]:
        """This interpreter with ``args``, in leaf ``i`` (1-based)."""
        return [*exec_in(self.leaf_ns[i - 1]), sys.executable, *args]

    def router_endpoints(self, port: int = ZENOH_PORT) -> list[str]:
        return [f"tcp/{self.router_address(i)}:{port}" for i in range(1, len(self.leaf_ns) + 1)]

    def delete(self) -> None:
        # Deleting a namespace also deletes the veth ends inside it (and so their peers).
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._created.clear()


@contextmanager
def star_network(leaves: int, *, routed: bool) -> Iterator[Star]:
    """A :class:`Star`, deleted on the way out; skips where namespaces cannot be made."""
    why = _why_not()
    if why:
        pytest.skip(why)
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


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@contextmanager
def private_loopback() -> Iterator[list[str]]:
    """An argv prefix that runs commands in a network namespace of their own, with only
    a loopback interface: for tests of the zero-configuration mesh, whose rendezvous
    (127.0.0.1:7447) is one fixed port per machine. On the host's loopback, anything else
    holding that port (another test run, a demo, any program) would be the rendezvous the
    test's nodes join. Where namespaces cannot be made, the prefix is empty (the host's
    loopback) and the test skips if the port is taken."""
    if _why_not() is None:
        ns = f"esn-{_tag()}-lo"
        try:
            _ip(f"netns add {ns}")
        except subprocess.CalledProcessError:
            pass
        else:
            try:
                _ip(f"-n {ns} link set lo up")
                yield exec_in(ns)
            finally:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            return
    if _port_in_use(ZENOH_PORT):
        pytest.skip(
            f"127.0.0.1:{ZENOH_PORT} is taken on this machine and no private network "
            "namespace can be made here"
        )
    yield []
