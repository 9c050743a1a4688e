"""The distributed brain: the model, distributed runs equal to single-process runs, the
demo script's commands and errors, and the spike helper of the original API."""

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
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
from support.comm import LOOPBACK_ANY_PORT, run_each_in_thread, wait_until
from support.demo import DEMO_PATH
from support.netns import private_loopback
from support.procs import Proc, children_of, free_ports, run, running

DEMO = [sys.executable, str(DEMO_PATH)]


def demo(*args: str, timeout: float = 180, **kw) -> Proc:
    """Run the demo script to completion (in a session of its own: cleanup ends any node it
    started too)."""
    return run([*DEMO, *args], timeout=timeout, **kw)


def demo_pair(args1: list[str], args2: list[str], timeout: float) -> tuple[Proc, Proc]:
    """Run node-1 (listening on a free loopback port) and node-2 (connecting to it), each
    with its own extra flags, to completion."""
    (port,) = free_ports(1)
    ends = (["--listen", f"tcp/127.0.0.1:{port}"], ["--connect", f"tcp/127.0.0.1:{port}"])
    with running() as procs:
        for (me, peer), extra, endpoint in zip(
            (("node-1", "node-2"), ("node-2", "node-1")), (args1, args2), ends, strict=True
        ):
            procs.append(Proc([*DEMO, "--node-id", me, "--peer-id", peer, *extra, *endpoint]))
        for p in procs:
            p.wait(timeout)
    return procs[0], procs[1]


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
    with contextlib.ExitStack() as cleanup:
        first = ZenohCommunicator("n1", ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk))
        comms = [cleanup.enter_context(first)]
        for n in ("n2", "n3"):
            cfg = ZenohConfig(connect=first.locators, listen=[LOOPBACK_ANY_PORT], psk=psk)
            comms.append(cleanup.enter_context(ZenohCommunicator(n, cfg)))
        assignment = assign_regions(net, [c.node_id for c in comms])
        results = run_each_in_thread(
            comms, lambda c: BrainNode(net, c, assignment, timeout=30).run(120)
        )
        merged = {}
        for node, r in results.items():
            assert not isinstance(r, Exception), (node, r)
            raster, metrics = r
            merged.update(raster)
            assert metrics.steps == 120 and metrics.duplicates == 0
        assert raster_digest(merged) == raster_digest(ref)
        assert all(c.stats()["decrypt_failures"] == 0 for c in comms)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"steps": 60}, "steps is 60 there and 40 here"),
        ({"neurons": 300}, "the number of neurons in region 'visual' is 300 there and 200"),
        ({"seed": 5}, "seed is 5 there and 1 here"),
    ],
)
def test_nodes_that_disagree_both_stop_at_the_start_barrier(psk, change, named):
    """Every node checks, at the start barrier, that its peers run the same network, seed
    and steps; each one raises naming the first difference, before any step."""
    from evospikenet.errors import RunMismatchError

    base = {"steps": 40, "neurons": 200, "seed": 1}
    runs = {"n1": base, "n2": {**base, **change}}
    with contextlib.ExitStack() as cleanup:
        first = ZenohCommunicator("n1", ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk))
        cfg = ZenohConfig(connect=first.locators, listen=[LOOPBACK_ANY_PORT], psk=psk)
        comms = [cleanup.enter_context(first), cleanup.enter_context(ZenohCommunicator("n2", cfg))]

        def run(c: ZenohCommunicator) -> object:
            r = runs[c.node_id]
            net = default_brain(r["neurons"], seed=r["seed"])
            return BrainNode(net, c, assign_regions(net, ["n1", "n2"]), timeout=30).run(r["steps"])

        results = run_each_in_thread(comms, run, timeout=60)
    for node, r in results.items():
        assert isinstance(r, RunMismatchError), (node, r)
        assert isinstance(r, ValueError)
    assert named in str(results["n1"])
    assert "node 'n1' runs a different simulation" in str(results["n2"])


# ----- the demo script -----


@pytest.mark.system
@pytest.mark.parametrize("mode", ["psk", "dh"])
def test_local_brain_in_three_processes_equals_single_process(tmp_path, mode):
    out = tmp_path / "out"
    r = demo("--local", "--steps", "150", "--neurons", "1000", "--out", str(out), "--mode", mode)
    assert r.returncode == 0, r.output
    assert "spikes identical to a single-process run of the same network: yes" in r.out
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


@pytest.mark.system
def test_guide_two_terminal_commands_either_start_order(tmp_path):
    """The guide's commands unchanged (default loopback rendezvous, no endpoint flag);
    node-2 starts first."""
    psk = os.urandom(32).hex()
    base = ["--psk", psk, "--mode", "psk", "--steps", "200", "--neurons", "500"]
    with private_loopback() as netns:
        p2 = Proc([*netns, *DEMO, "--node-id", "node-2", "--peer-id", "node-1", *base])
        with p2:
            # node-2 is up (and owns the rendezvous) before node-1 starts.
            p2.wait_for_line("node-2: regions")
            with Proc([*netns, *DEMO, "--node-id", "node-1", "--peer-id", "node-2", *base]) as p1:
                p1.wait(120)
                p2.wait(120)
    assert p1.returncode == 0 and p2.returncode == 0, (p1.output, p2.output)
    ref = simulate(default_brain(500, 0), 200)
    # node-1 runs visual and motor, node-2 pfc.
    assert digest_of(p1.out) == raster_digest({r: ref[r] for r in ("visual", "motor")})
    assert digest_of(p2.out) == raster_digest({"pfc": ref["pfc"]})
    assert "steps/s" in p1.out and "decryption failures 0" in p1.out


@pytest.mark.system
def test_dh_mode_prompts_for_the_peer_key_on_stdin():
    (port,) = free_ports(1)
    common = ["--mode", "dh", "--steps", "100", "--neurons", "300", "--timeout", "60"]
    argv = {
        "node-1": [*DEMO, "--node-id", "node-1", "--peer-id", "node-2",
                   "--listen", f"tcp/127.0.0.1:{port}", *common],
        "node-2": [*DEMO, "--node-id", "node-2", "--peer-id", "node-1",
                   "--connect", f"tcp/127.0.0.1:{port}", "--listen", LOOPBACK_ANY_PORT, *common],
    }  # fmt: skip
    procs: dict[str, Proc] = {}
    try:
        for name, cmd in argv.items():
            procs[name] = Proc(cmd, stdin=subprocess.PIPE)
        keys, fps = {}, {}
        for name, p in procs.items():
            keys[name] = p.wait_for_line("Public key: ").split(": ")[1].strip()
            fps[name] = p.wait_for_line("Fingerprint: ").split(": ")[1].strip()
        # Pasted with spaces and a line break, as from a terminal.
        k1, k2 = keys["node-1"], keys["node-2"]
        procs["node-1"].write(f"{k2[:30]} {k2[30:40]}\n{k2[40:]}\n")
        procs["node-2"].write(k1 + "\n")
        for p in procs.values():
            p.wait(120)
    finally:
        for p in procs.values():
            p.kill()
    for p in procs.values():
        assert p.returncode == 0, p.output
    out1, out2 = procs["node-1"].out, procs["node-2"].out
    assert f"node-2's fingerprint: {fps['node-2']}" in out1
    assert f"node-1's fingerprint: {fps['node-1']}" in out2
    ref = simulate(default_brain(300, 0), 100)
    assert digest_of(out2) == raster_digest({"pfc": ref["pfc"]})


@pytest.mark.system
def test_demo_errors_are_one_line_with_an_exit_code():
    r = demo("--node-id", "a", "--peer-id", "b", "--psk", "abc", "--mode", "psk")
    assert r.returncode == 2 and r.err.startswith("error: invalid configuration: PSK must be")
    assert "Traceback" not in r.err and "abc" not in r.err
    r = demo(
        "--node-id",
        "a",
        "--peer-id",
        "b",
        "--mode",
        "psk",
        env={**os.environ, "EVOSPIKENET_PSK": ""},
    )
    assert r.returncode == 2 and "needs --psk" in r.err
    # A peer that never appears: a timeout naming it.
    r = demo(
        "--node-id", "a", "--peer-id", "ghost", "--psk", os.urandom(32).hex(),
        "--listen", LOOPBACK_ANY_PORT, "--timeout", "3", "--steps", "10",
    )  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.err
    assert "node 'ghost'" in r.err and "did not appear" in r.err


@pytest.mark.system
def test_demo_nodes_that_disagree_on_neurons_both_stop_with_one_line():
    psk = os.urandom(32).hex()
    args = ["--steps", "50", "--timeout", "60", "--mode", "psk", "--psk", psk]
    p1, p2 = demo_pair(["--neurons", "500", *args], ["--neurons", "1000", *args], timeout=60)
    for p in (p1, p2):
        assert p.returncode == 1, p.output
        assert "Traceback" not in p.err, p.output
        errors = [line for line in p.err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "number of neurons in region" in errors[0], p.output
        assert "--neurons" in errors[0]
        assert "step 1/" not in p.out  # stopped before the first step


def test_demo_local_node_counts_it_cannot_run_are_refused_in_one_line():
    for n in ("1", "4", "0"):
        r = demo("--local", "--nodes", n, timeout=60)
        assert r.returncode == 2, r.output
        assert r.err.strip().count("\n") == 0 and "Traceback" not in r.err, r.output
        assert r.err.startswith(f"error: --nodes {n}: the brain has 3 regions"), r.output
        assert "use --nodes 2 to 3" in r.err


def test_demo_help_shows_the_defaults_and_never_the_key():
    psk = os.urandom(32).hex()
    r = demo("--help", timeout=60, env={**os.environ, "EVOSPIKENET_PSK": psk})
    assert r.returncode == 0
    text = " ".join(r.out.split())
    for shown in ("--steps STEPS simulation steps (the same on every node) (default: 1000)",
                  "(default: $EVOSPIKENET_PSK)", "--quiet", "(default: 60.0)", "(default: 0)",
                  "(default: psk)", "(default: manual)", "(default: 3)"):  # fmt: skip
        assert shown in text, shown
    assert psk not in r.out


@pytest.mark.system
def test_demo_reports_mismatched_keys_as_decryption_failures():
    args = ["--steps", "50", "--neurons", "200", "--timeout", "4", "--mode", "psk"]
    p1, p2 = demo_pair(
        ["--psk", os.urandom(32).hex(), *args], ["--psk", os.urandom(32).hex(), *args], timeout=60
    )
    for p in (p1, p2):
        assert p.returncode == 1, p.output
        assert "Traceback" not in p.err
    assert any("keys differ" in p.err for p in (p1, p2)), (p1.output, p2.output)


@pytest.mark.system
def test_local_ctrl_c_stops_every_process_it_started(tmp_path):
    with Proc(
        [*DEMO, "--local", "--steps", "1000000", "--neurons", "200", "--out", str(tmp_path)],
    ) as p:  # fmt: skip
        p.wait_for_line("Starting an encrypted brain")
        # The nodes run (a progress line): interrupt the launcher only, as a terminal's
        # Ctrl-C would (the launcher relays it to its nodes).
        p.wait_for_line("[node-1] step")
        nodes = children_of(p.pid)
        assert len(nodes) == 3, nodes
        p.popen.send_signal(signal.SIGINT)
        code = p.wait(30)
        assert code == 130, p.output
        assert "Traceback" not in p.err, p.output
        assert not [pid for pid in nodes if os.path.exists(f"/proc/{pid}")], "nodes still run"


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


@pytest.mark.system
def test_local_ctrl_c_while_nodes_start_stops_those_already_started():
    r = run([sys.executable, "-c", LAUNCH_RACE, str(DEMO_PATH)], timeout=120)
    assert r.returncode == 0, r.output
    assert "exit 130 nodes still running 0" in r.out, r.output


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


def test_a_with_block_closes_the_brain_communicator_through_its_own_close(psk):
    """``with`` calls the object's own ``close()``: the brain communicator's also stops
    its heartbeat thread."""
    cfg = ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk)
    with ZenohBrainCommunicator("pfc-0", cfg, module_type="pfc") as comm:
        comm.announce(interval=0.05)
        beat = comm._heartbeat
        assert beat.is_alive()
    assert comm.closed
    assert comm._stop.is_set() and not beat.is_alive()
