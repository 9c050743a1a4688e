"""The distributed brain: the model, distributed runs equal to single-process runs, the
demo script's commands and errors, and the spike helper of the original API."""

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import LOOPBACK_ANY_PORT, wait_until
from evospikenet.brain import (
    BrainNode,
    Network,
    Projection,
    Region,
    ZenohBrainCommunicator,
    assign_regions,
    default_brain,
    raster_digest,
    simulate,
)
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

DEMO = Path(__file__).resolve().parent.parent / "examples" / "secure_distributed_brain_demo.py"


def demo(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def digest_of(output: str) -> str:
    found = re.findall(r"raster digest: ([0-9a-f]{64})", output)
    assert len(found) == 1, output
    return found[0]


# ----- the model -----


def test_network_rejects_bad_definitions():
    r = (Region("a", 10), Region("b", 10))
    with pytest.raises(ValueError, match="delay"):
        Network(r, (Projection("a", "b", delay=0),))
    with pytest.raises(ValueError, match="no region 'c'"):
        Network(r, (Projection("a", "c"),))
    with pytest.raises(ValueError, match="twice"):
        Network((Region("a", 10), Region("a", 5)))
    with pytest.raises(ValueError, match="letters"):
        Network((Region("a/b", 10),))


def test_simulation_is_deterministic_and_active():
    net = default_brain(500, seed=7)
    a, b = simulate(net, 100), simulate(net, 100)
    assert raster_digest(a) == raster_digest(b)
    assert raster_digest(simulate(default_brain(500, seed=8), 100)) != raster_digest(a)
    for name, steps in a.items():
        counts = [len(s) for s in steps]
        assert sum(counts) > 100, name  # the regions do spike
        assert all(np.all(np.diff(s.astype(np.int64)) > 0) for s in steps)  # sorted, unique


def test_assignment_is_the_same_on_every_node():
    net = default_brain(10)
    assert assign_regions(net, ["node-2", "node-1"]) == assign_regions(net, ["node-1", "node-2"])
    assert assign_regions(net, ["b", "a"]) == {"visual": "a", "pfc": "b", "motor": "a"}


def test_nodes_in_threads_match_the_single_process_run(psk):
    """Three nodes (one region each) in one process, over encrypted zenoh."""
    net = default_brain(800, seed=1)
    ref = simulate(net, 120)
    first = ZenohCommunicator("n1", ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk))
    comms = [first] + [
        ZenohCommunicator(
            n, ZenohConfig(connect=first.locators, listen=[LOOPBACK_ANY_PORT], psk=psk)
        )
        for n in ("n2", "n3")
    ]
    try:
        assignment = assign_regions(net, [c.node_id for c in comms])
        results: dict[str, object] = {}

        def run(c: ZenohCommunicator) -> None:
            try:
                results[c.node_id] = BrainNode(net, c, assignment, timeout=30).run(120)
            except Exception as e:  # reported below
                results[c.node_id] = e

        threads = [threading.Thread(target=run, args=(c,)) for c in comms]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        merged = {}
        for node, r in results.items():
            assert not isinstance(r, Exception), (node, r)
            raster, metrics = r
            merged.update(raster)
            assert metrics.steps == 120 and metrics.duplicates == 0
        assert raster_digest(merged) == raster_digest(ref)
        assert all(c.stats()["decrypt_failures"] == 0 for c in comms)
    finally:
        for c in comms:
            c.close()


# ----- the demo script -----


@pytest.mark.parametrize("mode", ["psk", "dh"])
def test_local_brain_in_three_processes_equals_single_process(tmp_path, mode):
    out = tmp_path / "out"
    r = demo("--local", "--steps", "150", "--neurons", "1000", "--out", str(out), "--mode", mode)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "spikes identical to a single-process run of the same network: yes" in r.stdout
    ref = simulate(default_brain(1000, 0), 150)
    seen = set()
    for node in ("node-1", "node-2", "node-3"):
        summary = json.loads((out / f"{node}.json").read_text())
        assert summary["stats"]["decrypt_failures"] == 0
        assert summary["stats"]["published"] >= 150
        for region, d in summary["region_digests"].items():
            assert d == raster_digest({region: ref[region]})
            seen.add(region)
        png = out / f"{node}_raster.png"
        pytest.importorskip("matplotlib")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen == {"visual", "pfc", "motor"}
    if mode == "dh":
        assert all(
            json.loads((out / f"{n}.json").read_text())["stats"]["key_exchanges"] >= 1
            for n in ("node-1", "node-2", "node-3")
        )


def test_guide_two_terminal_commands_either_start_order(tmp_path):
    """The guide's commands unchanged (default loopback rendezvous, no endpoint flag);
    node-2 starts first."""
    psk = os.urandom(32).hex()
    base = ["--psk", psk, "--mode", "psk", "--steps", "200", "--neurons", "500"]
    cmd = [sys.executable, str(DEMO)]
    p2 = subprocess.Popen(
        [*cmd, "--node-id", "node-2", "--peer-id", "node-1", *base],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    p1 = subprocess.Popen(
        [*cmd, "--node-id", "node-1", "--peer-id", "node-2", *base],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        o1, e1 = p1.communicate(timeout=120)
        o2, e2 = p2.communicate(timeout=120)
    finally:
        for p in (p1, p2):
            if p.poll() is None:
                p.kill()
    assert p1.returncode == 0 and p2.returncode == 0, (o1, e1, o2, e2)
    ref = simulate(default_brain(500, 0), 200)
    # node-1 runs visual and motor, node-2 pfc.
    assert digest_of(o1) == raster_digest({r: ref[r] for r in ("visual", "motor")})
    assert digest_of(o2) == raster_digest({"pfc": ref["pfc"]})
    assert "steps/s" in o1 and "decryption failures 0" in o1


def test_dh_mode_prompts_for_the_peer_key_on_stdin(tmp_path):
    ports = [f"tcp/127.0.0.1:{p}" for p in free_ports(1)]
    common = ["--mode", "dh", "--steps", "100", "--neurons", "300", "--timeout", "60"]
    procs = {
        "node-1": subprocess.Popen(
            [sys.executable, str(DEMO), "--node-id", "node-1", "--peer-id", "node-2",
             "--listen", ports[0], *common],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ),
        "node-2": subprocess.Popen(
            [sys.executable, str(DEMO), "--node-id", "node-2", "--peer-id", "node-1",
             "--connect", ports[0], "--listen", LOOPBACK_ANY_PORT, *common],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ),
    }  # fmt: skip
    try:
        keys, fps = {}, {}
        for name, p in procs.items():
            line = p.stdout.readline()
            assert line.startswith("Public key: "), (line, p.stderr.read())
            keys[name] = line.split(": ")[1].strip()
            fps[name] = p.stdout.readline().split(": ")[1].strip()
        # Pasted with spaces and a line break, as from a terminal.
        k1, k2 = keys["node-1"], keys["node-2"]
        procs["node-1"].stdin.write(f"{k2[:30]} {k2[30:40]}\n{k2[40:]}\n")
        procs["node-2"].stdin.write(k1 + "\n")
        results = {}
        for p in procs.values():
            p.stdin.flush()
        for name, p in procs.items():
            results[name] = p.communicate(timeout=120)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    for name, p in procs.items():
        assert p.returncode == 0, results[name]
    out1, out2 = results["node-1"][0], results["node-2"][0]
    assert f"node-2's fingerprint: {fps['node-2']}" in out1
    assert f"node-1's fingerprint: {fps['node-1']}" in out2
    ref = simulate(default_brain(300, 0), 100)
    assert digest_of(out2) == raster_digest({"pfc": ref["pfc"]})


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_demo_errors_are_one_line_with_an_exit_code():
    r = demo("--node-id", "a", "--peer-id", "b", "--psk", "abc", "--mode", "psk")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid configuration: PSK must be")
    assert "Traceback" not in r.stderr and "abc" not in r.stderr
    r = demo(
        "--node-id",
        "a",
        "--peer-id",
        "b",
        "--mode",
        "psk",
        env={**os.environ, "EVOSPIKENET_PSK": ""},
    )
    assert r.returncode == 2 and "needs --psk" in r.stderr
    # A peer that never appears: a timeout naming it.
    port = free_ports(1)[0]
    r = demo(
        "--node-id", "a", "--peer-id", "ghost", "--psk", os.urandom(32).hex(),
        "--listen", f"tcp/127.0.0.1:{port}", "--timeout", "3", "--steps", "10",
    )  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "node 'ghost'" in r.stderr and "did not appear" in r.stderr


def test_demo_reports_mismatched_keys_as_decryption_failures():
    port = free_ports(1)[0]
    args = ["--steps", "50", "--neurons", "200", "--timeout", "4", "--mode", "psk"]
    p1 = subprocess.Popen(
        [sys.executable, str(DEMO), "--node-id", "node-1", "--peer-id", "node-2",
         "--psk", os.urandom(32).hex(), "--listen", f"tcp/127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    p2 = subprocess.Popen(
        [sys.executable, str(DEMO), "--node-id", "node-2", "--peer-id", "node-1",
         "--psk", os.urandom(32).hex(), "--connect", f"tcp/127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        outs = [p.communicate(timeout=60) for p in (p1, p2)]
    finally:
        for p in (p1, p2):
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip((p1, p2), outs, strict=True):
        assert p.returncode == 1, err
        assert "Traceback" not in err
    assert any("keys differ" in err for _, err in outs), outs


# ----- the original API's spike helper -----


def test_brain_communicator_publishes_and_subscribes_spikes(psk, caplog):
    cfg = ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk)
    pfc = ZenohBrainCommunicator("pfc-0", cfg, module_type="pfc")
    motor = ZenohBrainCommunicator(
        "motor-0",
        ZenohConfig(connect=pfc.locators, listen=[LOOPBACK_ANY_PORT], psk=psk),
        module_type="motor",
    )
    try:
        got = []
        motor.subscribe_spikes("pfc", got.append)
        spikes = np.array([3, 17, 99], dtype=np.uint32)
        wait_until(
            lambda: (pfc.publish_spikes("motor", spikes, {"step": 4}), got)[1],
            what="motor to receive pfc's spikes",
        )
        msg = got[0]
        assert msg["node_id"] == "pfc-0" and msg["metadata"] == {"step": 4}
        assert isinstance(msg["spikes"], np.ndarray) and msg["spikes"].dtype == np.uint32
        assert msg["spikes"].tolist() == [3, 17, 99]
        assert abs(msg["timestamp_ns"] - time.time_ns()) < 60e9
        caplog.set_level(logging.INFO, logger="evospikenet.brain")
        pfc.announce(interval=0.2, lost_after=1.0)
        motor.announce(interval=0.2, lost_after=1.0)
        wait_until(lambda: pfc.peers == ["motor-0"], what="pfc to see motor")
        motor.close()
        wait_until(lambda: pfc.peers == [], what="pfc to notice motor left")
        text = " ".join(r.getMessage() for r in caplog.records)
        assert "node motor-0 joined" in text and "node motor-0 left" in text
        with pytest.raises(ValueError, match="module_type"):
            ZenohBrainCommunicator("x", cfg, module_type="a/b")
    finally:
        pfc.close()
        motor.close()


def test_local_ctrl_c_stops_every_process_it_started(tmp_path):
    import signal

    p = subprocess.Popen(
        [sys.executable, str(DEMO), "--local", "--steps", "1000000", "--neurons", "200",
         "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert p.stdout.readline().startswith("Starting an encrypted brain")
        # Wait until the nodes run (a progress line), then interrupt the launcher only.
        deadline = time.monotonic() + 60
        while "steps/s" not in p.stdout.readline() and time.monotonic() < deadline:
            pass
        children = children_of(p.pid)
        assert len(children) == 3, children
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), f"node process {pid} still runs"


# The launcher, with a Ctrl-C that arrives right after its second node started, before
# `Popen` returned to the launcher's loop: the worst moment.
LAUNCH_RACE = textwrap.dedent(
    """
    import importlib.util, os, signal, subprocess, sys

    spec = importlib.util.spec_from_file_location("demo", sys.argv[1])
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    started = []
    real_popen = subprocess.Popen

    def popen(cmd, **kw):
        p = real_popen(cmd, **kw)
        started.append(p.pid)
        if len(started) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return p

    subprocess.Popen = popen
    code = demo.main(["--local", "--steps", "1000000", "--neurons", "50", "--quiet"])
    subprocess.Popen = real_popen
    alive = [pid for pid in started if os.path.exists(f"/proc/{pid}")]
    print("exit", code, "nodes still running", len(alive), flush=True)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    """
)


def test_local_ctrl_c_while_nodes_start_stops_those_already_started():
    r = subprocess.run(
        [sys.executable, "-c", LAUNCH_RACE, str(DEMO)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exit 130 nodes still running 0" in r.stdout, r.stdout + r.stderr


def children_of(pid: int) -> list[str]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(stat.parent.name)
    return out
