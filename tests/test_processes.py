"""Communicators in separate processes (started with `spawn`), and the guide's snippet."""

import multiprocessing as mp
import os
import queue
import subprocess
import sys
import textwrap

import pytest
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import publish_until, wait_until
from support.procs import run


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


GUIDE = textwrap.dedent(
    """
    import os, sys, time
    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

    config = ZenohConfig(psk=os.getenv("EVOSPIKENET_PSK"))
    comm = ZenohCommunicator(sys.argv[1], config)
    seen = []
    comm.subscribe("topic", lambda data: seen.append(data) or print(data, flush=True))
    me, other = sys.argv[1], sys.argv[2]
    deadline, stop = time.time() + 40, None
    while time.time() < (stop or deadline):
        comm.publish("topic", {"data": "secret", "from": me}, serialize="json")
        if stop is None and any(d.get("from") == other for d in seen):
            stop = time.time() + 2  # keep publishing so the other side sees us too
        time.sleep(0.1)
    comm.close()
    """
)


def test_guide_snippet_two_processes_default_config(tmp_path, psk):
    """The published snippet, unchanged: no endpoints, two processes on one machine find
    each other over the loopback rendezvous (no multicast)."""
    script = tmp_path / "guide.py"
    script.write_text(GUIDE)
    env = {**os.environ, "EVOSPIKENET_PSK": psk}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), me, other],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for me, other in (("node-1", "node-2"), ("node-2", "node-1"))
    ]
    try:
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    report = "\n".join(
        f"{name} exit {p.returncode}, stderr:\n{err[-3000:]}"
        for name, p, (_, err) in zip(("node-1", "node-2"), procs, results, strict=True)
    )
    assert "{'data': 'secret', 'from': 'node-2'}" in results[0][0], report
    assert "{'data': 'secret', 'from': 'node-1'}" in results[1][0], report


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
