"""The Rust simulation engine through the Python API: the three models, any partition
of the regions giving the same spikes, one-call runs with progress and Ctrl-C, network
files, node assignment and run records."""

import contextlib
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from evospikenet import _native
from evospikenet.brain import (
    BrainNode,
    Network,
    NetworkFileError,
    Projection,
    Region,
    assign_regions,
    default_brain,
    load_network,
    load_record,
    merge_records,
    model_defaults,
    raster_digest,
    save_record,
    simulate,
)
from evospikenet.brain.record import Record
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import LOOPBACK_ANY_PORT, RawZenoh, new_psk, run_each_in_thread, wait_until
from support.procs import Proc

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "networks"


def mixed_network(n: int = 300, seed: int = 5) -> Network:
    """One region per model, with recurrence, feedback and delays 1 to 3."""
    regions = (
        Region("a", n, drive_rate=0.05, drive_weight=600),
        Region(
            "b", n + 11, model="lif_float", params={"tau_m": 12.0}, weight=(0.0, 150.0),
            fan_out=5, drive_rate=0.05, drive_weight=900.0,
        ),
        Region(
            "c", n // 2, model="izhikevich", params={"d": 6.0}, fan_out=0,
            drive_rate=0.1, drive_weight=12.0,
        ),
    )  # fmt: skip
    projections = (
        Projection("a", "b", fan_out=8, weight=150.0, delay=2),
        Projection("b", "c", p=0.02, weight=(0.0, 6.0)),
        Projection("c", "a", fan_out=6, weight=(100, 300), delay=3),
        Projection("c", "b", fan_out=4, weight=(100.0, 300.0)),
    )
    return Network(regions, projections, seed)


def lock_step(net: Network, groups: list[list[str]], steps: int) -> dict[str, list]:
    """Engines for ``groups`` of regions stepped together, each handed the others' spikes."""
    engines = [net.engine(g) for g in groups]
    raster: dict[str, list] = {name: [] for name in net.region_names}
    for t in range(steps):
        for e in engines:
            e.step([(src, s, raster[src][s]) for src, s in e.needed(t)])
        for e in engines:
            for name, spikes in zip(e.local_regions, e.last_spikes(), strict=True):
                raster[name].append(spikes)
    return raster


def test_every_partition_gives_the_single_engine_spikes_in_every_model():
    net = mixed_network()
    ref = simulate(net, 120)
    for name in net.region_names:
        assert sum(len(s) for s in ref[name]) > 50, f"region {name} is nearly silent"
    for groups in (
        [["a"], ["b", "c"]],
        [["c"], ["a"], ["b"]],
        [["a", "c"], ["b"]],
    ):
        assert raster_digest(lock_step(net, groups, 120)) == raster_digest(ref), groups


def test_runs_are_deterministic_and_seeded():
    net = mixed_network()
    assert raster_digest(simulate(net, 60)) == raster_digest(simulate(net, 60))
    other = mixed_network(seed=6)
    assert raster_digest(simulate(other, 60)) != raster_digest(simulate(net, 60))
    # simulate's regions argument keeps only those.
    assert list(simulate(net, 5, regions=["c"])) == ["c"]


def test_engine_errors_name_what_is_wrong():
    net = mixed_network(50)
    with pytest.raises(ValueError, match=r"has no parameter 'e'.*tau_m"):
        Network((Region("x", 5, model="lif_float", params={"e": 1.0}),))
    with pytest.raises(ValueError, match="model 'hh' is not one of"):
        Network((Region("x", 5, model="hh"),))
    with pytest.raises(ValueError, match=r"region \"x\": drive.weight must be an int32 integer"):
        Network((Region("x", 5, drive_weight=0.5),))
    with pytest.raises(ValueError, match=r"projection x->x: weights.value = 1.5"):
        Network((Region("x", 5),), (Projection("x", "x", weight=1.5),))
    with pytest.raises(ValueError, match="v_reset"):
        Network((Region("x", 5, model="lif_float", params={"v_reset": -50.0}),))
    with pytest.raises(ValueError, match="network description"):
        _native.Engine("{}")
    with pytest.raises(ValueError, match='local: no region "zz"'):
        net.engine(["zz"])
    e = net.engine(["b"])
    e.step()
    with pytest.raises(RuntimeError, match=r"region \"c\" at step 0"):
        e.step()
    with pytest.raises(ValueError, match="not sorted and distinct"):
        e.step([("c", 0, np.array([3, 1], dtype=np.uint32))])
    with pytest.raises(TypeError, match="uint32"):
        e.step([("c", 0, np.array([1, 3], dtype=np.int64))])


def test_model_defaults_come_from_the_engine():
    d = model_defaults()
    assert d["lif_int"] == {"leak": 230, "threshold": 1024, "reset": 0}
    assert d["lif_float"]["tau_m"] == 10.0 and d["izhikevich"]["a"] == pytest.approx(0.02)


def test_a_run_reports_progress_and_counts_its_work():
    net = default_brain(20_000)
    engine = net.engine()
    calls: list[int] = []
    done = engine.run(300, calls.append, 0.0)
    assert done == 300 == engine.current_step
    assert calls and calls[-1] == 300 and calls == sorted(calls)
    stats = engine.stats()
    assert stats["steps"] == 300 and stats["updates"] == 300 * 60_000 and stats["events"] > 0
    # 30 synapses per neuron: 10 recurrent, 10 per projection (pfc receives two).
    assert engine.synapses == 60_000 * 10 + 3 * 20_000 * 10
    assert engine.memory()["synapse_bytes"] >= engine.synapses * 6


def test_ctrl_c_stops_a_long_run_promptly(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from evospikenet.brain import default_brain
        e = default_brain(100_000).engine()
        print("running", flush=True)
        try:
            e.run(10**9)
        except KeyboardInterrupt:
            print("interrupted at", e.current_step, flush=True)
            sys.exit(3)
        """
    )
    with Proc([sys.executable, "-c", script]) as p:
        p.wait_for_line("running", timeout=120)
        threading.Event().wait(0.5)
        p.popen.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 3, p.output
        assert "interrupted at" in p.out


def test_the_default_network_file_is_the_default_brain():
    f = load_network(EXAMPLES / "default.toml")
    assert f.nodes is None
    assert raster_digest(simulate(f.network, 80)) == raster_digest(
        simulate(default_brain(1000, 0), 80)
    )


def test_the_mixed_example_loads_and_its_nodes_match_one_process():
    f = load_network(EXAMPLES / "mixed.toml")
    models = {r.model for r in f.network.regions}
    assert models == {"lif_int", "lif_float", "izhikevich"}
    assert f.nodes == {
        "sensory": ["thalamus", "motor"],
        "cortex": ["cortex_exc", "cortex_inh", "striatum"],
    }
    net = f.network
    ref = simulate(net, 40)
    for name in net.region_names:
        assert sum(len(s) for s in ref[name]) > 0, name
    split = lock_step(net, list(f.nodes.values()), 40)
    assert raster_digest(split) == raster_digest(ref)


A5 = "[[regions]]\nname = 'a'\nn = 5\n"
B5 = "[[regions]]\nname = 'b'\nn = 5\n"
P_AB = "[[projections]]\nsource = 'a'\ntarget = 'b'\n"
P_AA0 = "[[projections]]\nsource = 'a'\ntarget = 'a'\ndelay = 0\n"
IZH_Q = "model = 'izhikevich'\nparams = { q = 1 }\n"
FILE_ERRORS = [
    ("[[regions]]\nname = 'a'\nn = 'x'\n", ":1: regions[0]: key 'n': expected an integer"),
    ("seed = 1\n" + A5 + "fan_oot = 3\n", ":2: regions[0]: unknown key 'fan_oot'"),
    (A5 + P_AB, ":4: projections[0]: projection a->b: no region 'b'"),
    (A5 + P_AA0, ":4: projections[0]: projection a->a: delay"),
    (A5 + "weight = [1, 2, 3]\n", "key 'weight': expected a number or [low, high]"),
    (A5 + IZH_Q, ":1: regions[0]: region 'a': izhikevich has no parameter 'q'"),
    (A5 + "\n[nodes]\nx = ['b']\n", ":5: nodes.x: no region 'b'"),
    (A5 + B5 + "[nodes]\nx = ['a']\n", "no node runs region(s) b"),
    ("[[regions]\nname = 'a'\n", "not valid TOML"),
    ("regions = 3\n", "at least one [[regions]]"),
    ("speed = 3\n" + A5, "key 'speed': unknown"),
]


@pytest.mark.parametrize(("text", "needle"), FILE_ERRORS)
def test_network_file_errors_name_the_file_line_and_key(tmp_path, text, needle):
    path = tmp_path / "net.toml"
    path.write_text(text)
    with pytest.raises(NetworkFileError) as info:
        load_network(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert needle in msg, msg
    with pytest.raises(NetworkFileError, match="cannot read"):
        load_network(tmp_path / "missing.toml")


def test_node_ids_follow_the_compose_convention_or_the_nodes_table():
    net = default_brain(10)
    assert assign_regions(net, ["pfc-0", "visual-0", "motor-0"]) == {
        "visual": "visual-0",
        "pfc": "pfc-0",
        "motor": "motor-0",
    }
    # Regions without a node of their name are shared round robin among all nodes.
    assert assign_regions(net, ["pfc-0", "spare"]) == {
        "visual": "pfc-0",
        "pfc": "pfc-0",
        "motor": "spare",
    }
    table = {"x": ["visual", "motor"], "y": ["pfc"]}
    assert assign_regions(net, ["y", "x"], table) == {"visual": "x", "pfc": "y", "motor": "x"}
    with pytest.raises(ValueError, match="'pfc-0' is not in the network's"):
        assign_regions(net, ["x", "pfc-0"], table)


def test_records_round_trip_and_merge(tmp_path):
    net = mixed_network(60)
    ref = simulate(net, 30)
    e1, e2 = net.engine(["a"]), net.engine(["b", "c"])
    for e in (e1, e2):
        e.start_recording()
    e2.add_probe("c", [0, 5])
    raster: dict[str, list] = {n: [] for n in net.region_names}
    for t in range(30):
        for e in (e1, e2):
            e.step([(src, s, raster[src][s]) for src, s in e.needed(t)])
        for e in (e1, e2):
            for name, spikes in zip(e.local_regions, e.last_spikes(), strict=True):
                raster[name].append(spikes)
    from evospikenet.brain.record import record_from_engine

    paths = []
    for node, e in (("n1", e1), ("n2", e2)):
        paths.append(
            save_record(record_from_engine(node, e.take_recording()), tmp_path / f"{node}.npz")
        )
    rec2 = load_record(paths[1])
    assert rec2.node_id == "n2" and list(rec2.raster) == ["b", "c"]
    (probe,) = rec2.probes
    assert probe.region == "c" and probe.values.shape == (30, 2)
    # The Izhikevich potential starts at c = -65 and stays in its range.
    assert np.all(probe.values <= 30.0) and probe.values[0, 0] != 0.0
    assert raster_digest(merge_records(paths)) == raster_digest(ref)
    with pytest.raises(ValueError, match="region 'a' is in the records of both"):
        merge_records([paths[0], paths[0]])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz: not a readable run record"):
        load_record(bad)
    assert merge_records([Record("n", {"a": []})]) == {"a": []}


def open_mesh(cleanup: contextlib.ExitStack, ids: list[str], psk: str) -> list:
    """Communicators on loopback (port 0), each connected to the first."""
    first = ZenohCommunicator(ids[0], ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk))
    comms = [cleanup.enter_context(first)]
    for n in ids[1:]:
        cfg = ZenohConfig(connect=first.locators, listen=[LOOPBACK_ANY_PORT], psk=psk)
        comms.append(cleanup.enter_context(ZenohCommunicator(n, cfg)))
    return comms


@pytest.mark.parametrize("nodes", [2, 3])
def test_brain_nodes_of_mixed_models_match_one_process(psk, nodes):
    """Encrypted nodes in threads exchanging spikes in Rust; every model crosses nodes."""
    net = mixed_network(200)
    steps = 80
    ref = simulate(net, steps)
    with contextlib.ExitStack() as cleanup:
        comms = open_mesh(cleanup, ["a", "b", "c"][:nodes], psk)
        assignment = assign_regions(net, [c.node_id for c in comms])

        def run(c: ZenohCommunicator) -> object:
            node = BrainNode(net, c, assignment, timeout=30)
            cleanup.callback(node.close)
            mine = [r for r, n in assignment.items() if n == c.node_id]
            return node.run(steps, probes={mine[0]: [0]}), node.record

        results = run_each_in_thread(comms, run, timeout=120)
        merged = {}
        for c in comms:
            r = results.get(c.node_id)
            assert r is not None and not isinstance(r, Exception), (c.node_id, r)
            (raster, metrics), rec = r
            merged.update(raster)
            assert metrics.steps == steps and metrics.messages_sent > 0
            assert metrics.messages_received > 0 and metrics.duplicates == 0
            assert rec.probes[0].values.shape == (steps, 1)
        assert raster_digest(merged) == raster_digest(ref)
        assert all(c.stats()["decrypt_failures"] == 0 for c in comms)


def merged_runs(comms, results: dict) -> tuple[dict, dict]:
    """Every node's raster merged into one, and each node's metrics; fails when a node's
    run raised or never returned."""
    merged, metrics = {}, {}
    for c in comms:
        r = results.get(c.node_id)
        assert r is not None and not isinstance(r, Exception), (c.node_id, r)
        merged.update(r[0])
        metrics[c.node_id] = r[1]
    return merged, metrics


def test_nodes_send_one_message_per_lookahead_window(psk):
    """The smallest delay between the nodes is 2: each node sends one message per two
    steps (and one for the last, short window), and the spikes are still exact."""
    net = Network(
        (
            Region("x", 300),
            Region("y", 200, model="izhikevich", fan_out=0, drive_rate=0.1, drive_weight=12.0),
        ),
        (
            Projection("x", "y", weight=(0.0, 4.0), delay=3),
            Projection("y", "x", weight=(100, 300), delay=2),
        ),
        seed=3,
    )
    steps = 41
    ref = simulate(net, steps)
    with contextlib.ExitStack() as cleanup:
        comms = open_mesh(cleanup, ["x", "y"], psk)
        assignment = {"x": "x", "y": "y"}

        def run(c: ZenohCommunicator) -> object:
            node = BrainNode(net, c, assignment, timeout=30)
            cleanup.callback(node.close)
            return node.run(steps)

        merged, metrics = merged_runs(comms, run_each_in_thread(comms, run, timeout=120))
        for m in metrics.values():
            assert m.messages_sent == 21, m  # 20 windows of 2 steps, then 1 step
            # Counted as of the last step: the windows that step needed (up to step 37
            # for y, 38 for x) are in; the last ones may land after.
            assert m.messages_received >= 19 and m.resend_requests == 0, m
        assert raster_digest(merged) == raster_digest(ref)


def test_a_peer_that_stalls_only_delays_the_run(psk):
    """Node c stalls in its progress callback, longer than a run slice: node b, which
    needs a's and c's spikes for one step, takes a's, runs out of its slice waiting for
    c's, and must resume with a's still in hand: not wait for them again until it asks
    node a to resend them, a second later."""
    net = mixed_network(100)
    steps = 1000  # several run slices of 0.1 s, so that c stalls a few times
    ref = simulate(net, steps)
    with contextlib.ExitStack() as cleanup:
        comms = open_mesh(cleanup, ["a", "b", "c"], psk)
        assignment = {"a": "a", "b": "b", "c": "c"}

        def run(c: ZenohCommunicator) -> object:
            def stall(_m) -> None:
                time.sleep(0.25)

            node = BrainNode(net, c, assignment, timeout=10)
            cleanup.callback(node.close)
            if c.node_id == "c":
                return node.run(steps, progress=stall, progress_every=0.0)
            return node.run(steps)

        merged, metrics = merged_runs(comms, run_each_in_thread(comms, run, timeout=120))
        assert all(m.resend_requests == 0 for m in metrics.values()), metrics
        assert raster_digest(merged) == raster_digest(ref)


def test_a_silent_peer_is_named_with_its_regions(psk):
    """A peer that answers the start barrier but never steps: the waiting node raises
    TimeoutError naming that node and its regions (after asking it to resend)."""
    net = mixed_network(50)
    with contextlib.ExitStack() as cleanup:
        comms = open_mesh(cleanup, ["a", "b"], psk)
        assignment = {"a": "a", "b": "b", "c": "b"}
        silent = BrainNode(net, comms[1], assignment, timeout=2)
        cleanup.callback(silent.close)
        # It answers the start barrier with the same run, then never steps.
        silent._run = silent.describe_run(10)
        node = BrainNode(net, comms[0], assignment, timeout=2)
        cleanup.callback(node.close)
        with pytest.raises(TimeoutError, match=r"from node 'b' \(regions b, c\) within 2 s") as e:
            node.run(10)
        assert "left the mesh" not in str(e.value)  # b is alive, only silent
        assert node._engine.exchange_stats()["resend_requests"] >= 1


def test_a_timeout_names_the_peer_that_left_the_mesh(psk):
    """Node a waits on b and c. b's exchange is gone (its liveliness token withdrawn, as
    when its process dies); c answers the start barrier but never steps, as a live node
    stalled on b would. Whichever a times out on, the error names b as gone."""
    net = mixed_network(50)
    with contextlib.ExitStack() as cleanup:
        comms = open_mesh(cleanup, ["a", "b", "c"], psk)
        assignment = {"a": "a", "b": "b", "c": "c"}
        b, c = (BrainNode(net, comm, assignment, timeout=2) for comm in comms[1:])
        for peer in (b, c):
            cleanup.callback(peer.close)
            peer._run = peer.describe_run(10)  # ready at the barrier, never stepping
        b._engine.close_exchange()
        node = BrainNode(net, comms[0], assignment, timeout=2)
        cleanup.callback(node.close)
        with pytest.raises(TimeoutError) as raised:
            node.run(10)
    message = str(raised.value)
    assert "left the mesh" in message and "'b'" in message, message
    assert "'c' (regions c) left" not in message, message


def test_forged_liveliness_tokens_change_no_spike_only_a_timeout_message(psk):
    """The liveliness tokens ``brain/alive/{node}`` are not authenticated: any Zenoh
    participant can declare one under any id. A raw participant (no key) declares them
    under every node id of the mesh and under one that is in no run: nodes a and b
    still compute exactly the single-process run's spikes. Tokens are read only to word
    a timeout: with a forged token under c, whose exchange is gone, d still times out
    on c, and only the message no longer says that c left the mesh."""
    pytest.importorskip("zenoh", reason="eclipse-zenoh is a test dependency (pip install .[test])")
    net = mixed_network(100)
    steps = 60
    ref = simulate(net, steps)
    with contextlib.ExitStack() as cleanup:
        comms = open_mesh(cleanup, ["a", "b", "c", "d"], psk)
        raw = RawZenoh([c.locators[0] for c in comms])
        cleanup.callback(raw.close)
        wait_until(
            lambda: len(list(raw.session.info.peers_zid())) == len(comms),
            what="the raw participant to link to every node",
        )
        for forged in ("a", "b", "c", "d", "ghost"):
            token = raw.session.liveliness().declare_token(f"evospikenet/brain/alive/{forged}")
            raw.declared.append(token)

        runners = comms[:2]
        assignment = assign_regions(net, [c.node_id for c in runners])
        nodes = {c.node_id: BrainNode(net, c, assignment, timeout=30) for c in runners}
        for node in nodes.values():
            cleanup.callback(node.close)
        results = run_each_in_thread(runners, lambda c: nodes[c.node_id].run(steps), timeout=120)
        merged, _ = merged_runs(runners, results)
        assert raster_digest(merged) == raster_digest(ref)
        assert all(c.stats()["decrypt_failures"] == 0 for c in runners)
        for node in nodes.values():
            node.close()

        # c answers the start barrier, then its exchange goes (its own token with it).
        assignment = {"a": "d", "b": "c", "c": "c"}
        gone = BrainNode(net, comms[2], assignment, timeout=2)
        cleanup.callback(gone.close)
        gone._run = gone.describe_run(10)
        gone._engine.close_exchange()
        waiting = BrainNode(net, comms[3], assignment, timeout=2)
        cleanup.callback(waiting.close)
        with pytest.raises(TimeoutError, match=r"from node 'c' \(regions b, c\) within 2 s") as e:
            waiting.run(10)
    assert "left the mesh" not in str(e.value)


@pytest.mark.system
def test_demo_runs_a_network_file_locally_on_its_nodes(tmp_path):
    """``--local --network``: the processes are the file's [nodes], and their spikes
    equal a single-process run (the demo compares and says so)."""
    from support.demo import DEMO_PATH
    from support.procs import run

    out = tmp_path / "out"
    net = EXAMPLES / "mixed.toml"
    argv = [sys.executable, str(DEMO_PATH), "--local", "--network", str(net)]
    p = run([*argv, "--steps", "60", "--out", str(out), "--quiet"], timeout=300)
    assert p.returncode == 0, p.output
    assert "on 2 processes (cortex, sensory)" in p.out
    assert "identical to a single-process run of the same network: yes" in p.out
    records = [out / "sensory.npz", out / "cortex.npz"]
    merged = merge_records(records)
    assert sorted(merged) == sorted(load_network(net).network.region_names)
    assert raster_digest(merged) == raster_digest(simulate(load_network(net).network, 60))


def test_demo_reports_a_bad_network_file_in_one_line(tmp_path):
    from support.demo import DEMO_PATH
    from support.procs import run

    bad = tmp_path / "bad.toml"
    bad.write_text("[[regions]]\nname = 'a'\nn = -1\n")
    p = run([sys.executable, str(DEMO_PATH), "--local", "--network", str(bad)], timeout=60)
    assert p.returncode == 2, p.output
    assert f"{bad}:1: regions[0]" in p.output and "Traceback" not in p.output


@pytest.mark.system
@pytest.mark.parametrize(
    ("file", "ids"), [("default.toml", ("node-1", "node-2")), ("mixed.toml", ("sensory", "cortex"))]
)
def test_demo_runs_a_network_file_in_the_guides_two_terminal_form(tmp_path, file, ids):
    """The guide's two commands, one per terminal, with ``--network``: each node runs its
    regions (the file's [nodes] table, or round robin) and its spikes equal those regions
    of a single-process run."""
    from support.demo import DEMO_PATH
    from support.netns import private_loopback
    from support.procs import running

    net = load_network(EXAMPLES / file).network
    ref = simulate(net, 80)
    psk = new_psk()
    common = ["--network", str(EXAMPLES / file), "--steps", "80", "--psk", psk, "--quiet"]
    with private_loopback() as netns, running() as procs:
        for me, peer in (ids, ids[::-1]):
            argv = [*netns, sys.executable, str(DEMO_PATH), "--node-id", me, "--peer-id", peer]
            procs.append(Proc([*argv, *common, "--out", str(tmp_path)]))
        for p in procs:
            assert p.wait(300) == 0, p.output
    merged = merge_records([tmp_path / f"{n}.npz" for n in ids])
    assert raster_digest(merged) == raster_digest(ref)
