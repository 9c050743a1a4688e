"""Fixtures (the helpers themselves are in `support`), and the rules every test runs
under: no inherited settings, and no process outliving its test."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

import pytest
from support.comm import Mesh, RawZenoh, new_psk, wait_until
from support.procs import become_subreaper, leftover_children


def pytest_configure(config: pytest.Config) -> None:
    # A run started in the background by a non-interactive shell (a CI script, `pytest &`)
    # inherits an ignored SIGINT, and every process it starts would inherit it too: a
    # Python program then gets no KeyboardInterrupt, and the tests of what a Ctrl-C does
    # would test nothing (or hang). Processes started here see SIGINT as a terminal's
    # Ctrl-C delivers it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Orphans (a node whose launcher died first) are reparented to this process, so the
    # check below sees them.
    become_subreaper()


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """Every process a test starts has ended when the test ends, pass or fail. Any still
    running is killed, with its descendants, and the test errors."""
    yield
    leftover = leftover_children()
    if leftover:
        pytest.fail("processes outlived the test (now killed):\n" + "\n".join(leftover))


@pytest.fixture(autouse=True)
def _no_ambient_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a PSK, node id or endpoints from the developer's shell."""
    for var in (
        "EVOSPIKENET_PSK",
        "EVOSPIKENET_PSK_FILE",
        "EVOSPIKENET_IDENTITY_KEY_FILE",
        "NODE_ID",
        "EVOSPIKENET_CONNECT",
        "EVOSPIKENET_LISTEN",
        "EVOSPIKENET_MODE",
        "EVOSPIKENET_NAMESPACE",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def psk() -> str:
    return new_psk()


@pytest.fixture
def mesh() -> Iterator[Mesh]:
    with contextlib.closing(Mesh()) as m:
        yield m


@pytest.fixture
def raw_zenoh(mesh: Mesh) -> Iterator[Callable[[], RawZenoh]]:
    pytest.importorskip("zenoh", reason="eclipse-zenoh is a test dependency (pip install .[test])")
    made: list[RawZenoh] = []

    def make() -> RawZenoh:
        """A raw client linked directly to every node of the mesh."""
        assert mesh.nodes, "create mesh nodes first"
        r = RawZenoh([n.locators[0] for n in mesh.nodes])
        made.append(r)
        wait_until(
            lambda: len(list(r.session.info.peers_zid())) == len(mesh.nodes),
            what="the raw client to link to every node",
        )
        return r

    try:
        yield make
    finally:
        for r in made:
            r.close()
