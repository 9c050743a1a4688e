"""Communicators in separate processes (started with `spawn`), and the guide's snippet."""

import multiprocessing as mp
import os
import queue
import subprocess
import sys
import textwrap
import time

import pytest
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import publish_until, wait_until
from support.netns import private_loopback
from support.procs import Proc, close_inputs_and_expect_success, run, running

pytestmark = pytest.mark.system


def _publisher(locator: str, psk: str, n: int, ready) -> None:
    cfg = ZenohConfig(connect=[locator], psk=psk)
    with ZenohCommunicator("publisher-proc", cfg) as comm:
        q = comm.subscribe_queue("control/go")
        ready.set()
        q.get(timeout=30)  # the parent saw our first message: send the stream
        for i in range(n):
            comm.publish("stream", {"i": i, "spikes": [i, i + 1, i + 2]})
        comm.publish("stream", {"done": True})
        q.get(timeout=30)  # wait until the parent has everything


def next_or_none(inbox):
    try:
        return inbox.get_nowait()
    except queue.Empty:
        return None


def test_two_processes_exchange_encrypted_messages(mesh, psk):
    parent = mesh.node("parent", psk)
    inbox = parent.subscribe_queue("stream", maxsize=100_000)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    n = 2000
    proc = ctx.Process(target=_publisher, args=(mesh.locator, psk, n, ready))
    proc.start()
    try:
        assert ready.wait(30)
        wait_until(lambda: parent.connected_peers(), what="child link")
        # Tell the child to start, repeating until it is listening.
        got = [publish_until(parent, "control/go", 1, lambda: next_or_none(inbox), timeout=30)]
        while "done" not in got[-1]:
            got.append(inbox.get(timeout=30))
        parent.publish("control/go", 2)
        items = [m["i"] for m in got if "i" in m]
        assert items == list(range(n))
        assert parent.stats()["decrypt_failures"] == 0
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0


# The guide's snippet (README), publishing until the test has seen both processes receive
# the other's message, and then told them to stop by closing their stdin.
GUIDE = textwrap.dedent(
    """
    import os, sys, threading
    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

    config = ZenohConfig(psk=os.getenv("EVOSPIKENET_PSK"))
    comm = ZenohCommunicator(sys.argv[1], config)
    comm.subscribe("topic", lambda data: print(data, flush=True))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(0.1):
        comm.publish("topic", {"data": "secret", "from": sys.argv[1]}, serialize="json")
    comm.close()
    """
)


def _expect_each_hears_the_other(procs: dict[str, Proc]) -> None:
    for me, other in (("node-1", "node-2"), ("node-2", "node-1")):
        line = f"{{'data': 'secret', 'from': '{other}'}}"
        if procs[me].read_line(line) is None:
            pytest.fail(
                f"{me} never received {other}'s messages\n"
                + "\n".join(f"== {n}\n{p.output}" for n, p in procs.items())
            )
    close_inputs_and_expect_success(procs.values())


def test_guide_snippet_two_processes_default_config(tmp_path, psk):
    """The published snippet: no endpoints, two processes on one machine find each other
    over the loopback rendezvous (no multicast)."""
    script = tmp_path / "guide.py"
    script.write_text(GUIDE)
    env = {**os.environ, "EVOSPIKENET_PSK": psk}
    with private_loopback() as netns:
        procs = {
            me: Proc([*netns, sys.executable, str(script), me], env=env, stdin=subprocess.PIPE)
            for me in ("node-1", "node-2")
        }
        with running(*procs.values()):
            _expect_each_hears_the_other(procs)


# Holds the rendezvous port without listening on it, until its stdin closes.
HOLD_RENDEZVOUS = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket()
    s.bind(("127.0.0.1", 7447))
    print("held", flush=True)
    sys.stdin.read()
    """
)


def test_nodes_refused_the_rendezvous_together_still_meet(tmp_path, psk):
    """Two nodes whose listens on the rendezvous port are both refused, with nobody
    listening there (what two nodes listening at the same instant can get from the
    kernel; here the port is held by a socket that never listens). Neither may take the
    refusal for another node's ownership and only connect: once the port is free, one
    of them owns it and they meet."""
    script = tmp_path / "guide.py"
    script.write_text(
        GUIDE.replace("config = ZenohConfig", 'print("opening", flush=True)\nconfig = ZenohConfig')
    )
    env = {**os.environ, "EVOSPIKENET_PSK": psk}
    with private_loopback() as netns:
        holder = Proc([*netns, sys.executable, "-c", HOLD_RENDEZVOUS], stdin=subprocess.PIPE)
        with running(holder):
            holder.wait_for_line("held", timeout=30)
            procs = {
                me: Proc([*netns, sys.executable, str(script), me], env=env, stdin=subprocess.PIPE)
                for me in ("node-1", "node-2")
            }
            with running(*procs.values()):
                for p in procs.values():
                    p.wait_for_line("opening", timeout=60)
                # Both have been refused by now (a refused listen returns at once), and
                # keep trying for seconds more: free the port.
                time.sleep(1.0)
                close_inputs_and_expect_success([holder])
                _expect_each_hears_the_other(procs)


@pytest.mark.parametrize("close", [True, False])
def test_interpreter_exit_neither_hangs_nor_crashes(tmp_path, close):
    """Exit with callbacks in flight, a daemon thread blocked on a queue, and (or without)
    an explicit close. Repeated, since the failure it guards against is a race."""
    script = tmp_path / "exit.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import threading
            from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
            comm = ZenohCommunicator("x", ZenohConfig(listen=["tcp/127.0.0.1:0"], psk="ab" * 32))
            comm.subscribe("t", lambda d: print(d) if d["a"] == 0 else None)
            q = comm.subscribe_queue("t")
            threading.Thread(target=lambda: [m for m in q], daemon=True).start()
            for i in range(300):
                comm.publish("t", {{"a": i}})
            if {close}:
                comm.close()
            print("done")
            """
        )
    )
    for _ in range(5):
        out = run([sys.executable, str(script)], timeout=60)
        assert out.returncode == 0, out.output
        assert "done" in out.out
