"""Brain benchmark: the spiking network in one process, distributed over encrypted nodes,
and the same sizes in Brian2.

The network is ``default_brain(neurons)``: three regions (visual, pfc, motor) of
``neurons`` integer LIF neurons each, 10 internal synapses per neuron, three projections
of 10 synapses per neuron, and an external drive kicking 5% of the neurons per step.
For each size (``--sizes``, default 10^3, 10^4 and 10^5 neurons per region):

- ``1 process``       :func:`evospikenet.brain.simulate`, the whole network in this process;
- ``k processes``     ``k`` spawned processes on loopback (``--nodes``, default 2 and 3), each
                      a :class:`~evospikenet.brain.BrainNode` with a ZenohCommunicator under a
                      PSK (AES-256-GCM), regions assigned round robin (2 nodes: visual and
                      motor on one, pfc on the other; 3 nodes: one region each). The nodes
                      are linked directly (each connects to every node started before it,
                      ``tcp/127.0.0.1`` port 0, no multicast scouting);
- ``brian2``          Brian2 simulating an equivalent network on one process.

Timing. ``simulate`` is timed whole, minus the time of ``simulate(net, 0)`` (building the
connectivity) measured in the same repetition, after one untimed call. A distributed run
is timed by the nodes themselves: ``RunMetrics.wall_seconds`` starts after the start
barrier and the connectivity build, and the slowest node's figure is the run's time.
Every distributed raster (the nodes' rasters merged) must have the same ``raster_digest``
as the single-process raster of the same size and length: a mismatch is printed in
capitals and the benchmark exits with status 1.

Brian2. The model is equivalent in size and activity, not spike-identical: the same
three groups, synapses and weights drawn by the same rules (CSR matrices handed over
in a file), the same delays, an input of the same rate and size
(``PoissonInput`` with N=1 and p = 0.05 per step is the same Bernoulli kick, from
Brian2's own random stream), and a float LIF ``dv/dt = -v/tau`` integrated exactly with
``exp(-dt/tau) = leak/256``, threshold 1024, reset 0. Brian2 applies synaptic and
external input at the end of a step, so it decays once before the next threshold test:
its weights are divided by ``leak/256`` to arrive with the same size; a projection of
delay ``d`` steps gets a Brian2 delay of ``d - 1`` steps for the same reason. The integer
model floors after the leak, the float one does not; the firing rates printed in the
table ("spk/n/step") show how close the activity is. Brian2's code generation target is
``--brian-target``: ``auto`` (Brian2's choice: Cython when a C compiler works, else
numpy; the default of a full run) or ``numpy`` (the default of ``--quick``, which must not
wait minutes for the first Cython compilation) or ``cython``; the table names the target
that actually ran. Brian2 runs in a subprocess of ``--brian-python`` (default: this
interpreter), so it can live in another environment: Brian2 2.9.0 does not import with
numpy >= 2.4 (``numpy.ndarray.ptp`` is gone; fixed upstream after 2.9.0 in
brian-team/brian2#1705), and an environment with ``numpy<2.4`` and ``brian2`` serves. Its
per-``run()`` preparation, measured with a one-step run just before, is subtracted as the
setup of ``simulate`` is. Without a usable Brian2, its rows are skipped with the reason.

Figures are medians over ``--reps`` repetitions. "ns/n-step" is the time per neuron and
step (how the cost grows with the size); "vs 1 proc" is the step rate relative to the
single-process run of the same size (how it grows with the nodes). The stated target is
that the encrypted 2-process run reaches at least 50% of the single-process step rate at
10^5 neurons per region. Every process and thread shares the machine's cores: on a
2-core machine the 3-process runs are oversubscribed, and concurrent load shows in the
figures (the load average is printed and recorded). Writes JSON to ``--out``.

    python3 bench/brain_bench.py            # full run (about two minutes on 2 cores; Brian2's
                                            # first Cython compilation adds a few minutes once)
    python3 bench/brain_bench.py --quick    # smoke run, under a minute

    python3 -m venv /tmp/brian2-env && /tmp/brian2-env/bin/pip install "numpy<2.4" brian2
    python3 bench/brain_bench.py --brian-python /tmp/brian2-env/bin/python
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread: idle OpenBLAS threads spin after each call, and here they would
# compete for the cores with the processes being measured (node processes inherit it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
NODE_COUNTS = (2, 3)
SEED = 0
ANY_PORT = "tcp/127.0.0.1:0"
NODE_TIMEOUT = 60.0  # seconds a node waits for a peer's spikes
TARGET_NEURONS = 100_000
TARGET_RATIO = 0.50  # encrypted 2-process step rate / single-process step rate
BRIAN_WARM_STEPS = 10


def steps_for(neurons: int, quick: bool) -> int:
    """Steps per run: about 10^8 neuron updates (a couple of seconds on one process)."""
    if quick:
        return max(50, min(200, 2 * 10**6 // (3 * neurons)))
    return max(100, min(2000, 10**8 // (3 * neurons)))


def progress(msg: str) -> None:
    print(f"[brain_bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- one process


def bench_single(neurons: int, steps: int, reps: int) -> dict:
    from evospikenet.brain import default_brain, raster_digest, simulate

    net = default_brain(neurons, SEED)
    seconds, setups, spikes, digests = [], [], [], set()
    simulate(net, 1)  # first calls (imports, allocator) out of the timing
    for rep in range(reps):
        progress(f"1 process, {neurons:,} neurons/region: repetition {rep + 1}/{reps}")
        t0 = time.perf_counter()
        simulate(net, 0)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        raster = simulate(net, steps)
        total = time.perf_counter() - t0
        seconds.append(total - setup)
        setups.append(setup)
        spikes.append(sum(len(s) for per_step in raster.values() for s in per_step))
        digests.add(raster_digest(raster))
    if len(digests) != 1:
        raise RuntimeError(f"simulate is not deterministic at {neurons} neurons/region")
    return {
        "seconds": seconds,
        "setup_seconds": setups,
        "spikes": spikes,
        "digest": digests.pop(),
    }


# --------------------------------------------------------------------------- distributed


def node_main(node_id: str, psk: str, connect: list[str], conn) -> None:
    """One brain node (a spawned process), driven by the parent over ``conn``."""
    from evospikenet.brain import BrainNode, default_brain
    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

    try:
        cfg = ZenohConfig(connect=connect, listen=[ANY_PORT], psk=psk, multicast_scouting=False)
        comm = ZenohCommunicator(node_id, cfg)
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("up", comm.locators[0]))
    try:
        while True:
            cmd = conn.recv()
            if cmd[0] == "quit":
                break
            try:
                if cmd[0] == "mesh":
                    deadline = time.monotonic() + 30
                    while comm.connected_peers() < cmd[1]:
                        if time.monotonic() > deadline:
                            raise TimeoutError(
                                f"{comm.connected_peers()} of {cmd[1]} peers connected"
                            )
                        time.sleep(0.01)
                    conn.send(("meshed",))
                elif cmd[0] == "build":
                    _, neurons, steps, assignment = cmd
                    node = BrainNode(
                        default_brain(neurons, SEED), comm, assignment, timeout=NODE_TIMEOUT
                    )
                    conn.send(("built",))
                    if conn.recv()[0] != "go":
                        node.close()
                        continue
                    try:
                        raster, metrics = node.run(steps)
                    finally:
                        node.close()
                    conn.send(("done", raster, dataclasses.asdict(metrics)))
            except Exception as e:
                conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        comm.close()


def expect(conn, what: str, timeout: float, who: str):
    if not conn.poll(timeout):
        raise RuntimeError(f"{who}: no {what!r} within {timeout:.0f} s")
    msg = conn.recv()
    if msg[0] == "error":
        raise RuntimeError(f"{who}: {msg[1]}")
    if msg[0] != what:
        raise RuntimeError(f"{who}: expected {what!r}, got {msg[0]!r}")
    return msg


class Cluster:
    """``k`` brain nodes in spawned processes, linked directly to each other, one PSK."""

    def __init__(self, k: int) -> None:
        ctx = mp.get_context("spawn")
        psk = os.urandom(32).hex()
        self.ids = [f"n{i + 1}" for i in range(k)]
        self.procs: list = []
        self.conns: list = []
        locators: list[str] = []
        try:
            for node_id in self.ids:
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=node_main, args=(node_id, psk, list(locators), child), daemon=True
                )
                proc.start()
                self.procs.append(proc)
                self.conns.append(parent)
                locators.append(expect(parent, "up", 60, node_id)[1])
            for conn in self.conns:
                conn.send(("mesh", k - 1))
            for conn, node_id in zip(self.conns, self.ids, strict=True):
                expect(conn, "meshed", 40, node_id)
        except BaseException:
            self.close()
            raise

    def run(self, neurons: int, steps: int) -> tuple[dict, list[dict]]:
        """One run of ``steps`` steps on every node; the merged raster and the metrics."""
        from evospikenet.brain import assign_regions, default_brain

        assignment = assign_regions(default_brain(neurons, SEED), self.ids)
        for conn in self.conns:
            conn.send(("build", neurons, steps, assignment))
        for conn, node_id in zip(self.conns, self.ids, strict=True):
            expect(conn, "built", 60, node_id)
        for conn in self.conns:
            conn.send(("go",))
        raster: dict = {}
        metrics = []
        for conn, node_id in zip(self.conns, self.ids, strict=True):
            _, part, m = expect(conn, "done", 600, node_id)
            raster.update(part)
            metrics.append(m)
        return raster, metrics

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("quit",))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join()


def bench_distributed(k: int, sizes, steps_of, reps: int, digests: dict) -> dict:
    from evospikenet.brain import raster_digest

    progress(f"{k} processes: starting the nodes")
    cluster = Cluster(k)
    out = {}
    try:
        for neurons in sizes:
            steps = steps_of[neurons]
            seconds, spikes, waits, match = [], [], [], []
            for rep in range(reps):
                progress(f"{k} processes, {neurons:,} neurons/region: repetition {rep + 1}/{reps}")
                raster, metrics = cluster.run(neurons, steps)
                digest = raster_digest(raster)
                ok = digest == digests[neurons]
                if not ok:
                    progress(
                        f"RASTER MISMATCH: {k} processes, {neurons:,} neurons/region, "
                        f"repetition {rep + 1}: digest {digest[:16]} != single-process "
                        f"{digests[neurons][:16]}"
                    )
                match.append(ok)
                seconds.append(max(m["wall_seconds"] for m in metrics))
                spikes.append(sum(m["spikes"] for m in metrics))
                waits.append([m["wait_seconds"] for m in metrics])
            out[neurons] = {
                "seconds": seconds,
                "spikes": spikes,
                "wait_seconds": waits,
                "messages_sent_per_node": [m["messages_sent"] for m in metrics],
                "raster_matches": match,
                "assignment": cluster_assignment(neurons, cluster.ids),
            }
    finally:
        cluster.close()
    return out


def cluster_assignment(neurons: int, ids: list[str]) -> dict[str, str]:
    from evospikenet.brain import assign_regions, default_brain

    return assign_regions(default_brain(neurons, SEED), ids)


# --------------------------------------------------------------------------- Brian2


def export_network(neurons: int, path: Path) -> dict:
    """Write connectivity like that of ``default_brain(neurons)`` for the Brian2 worker;
    return the model description that goes with it. The synapses follow the same rules
    (fan-out, weight ranges, delays) but are drawn with numpy (``kernels.random_csr``):
    the engine's own matrices live in Rust."""
    from evospikenet import kernels
    from evospikenet.brain import default_brain

    net = default_brain(neurons, SEED)
    arrays, synapses = {}, []
    mats = [(r.name, r.name, 1, r.fan_out, r.weight, r.n) for r in net.regions]
    mats += [
        (p.source, p.target, p.delay, p.fan_out, p.weight, net.region(p.target).n)
        for p in net.projections
    ]
    for k, (pre, post, delay, fan_out, weight, n_post) in enumerate(mats):
        n_pre = net.region(pre).n
        w = kernels.random_csr(n_pre, n_post, fan_out, weight=weight, dtype=np.int16, seed=k)
        key = f"{pre}-{post}"
        arrays[f"{key}.indptr"] = w.indptr
        arrays[f"{key}.indices"] = w.indices
        arrays[f"{key}.data"] = w.data
        synapses.append({"key": key, "pre": pre, "post": post, "delay": delay})
    np.savez(path, **arrays)
    regions = [
        {
            "name": r.name,
            "n": r.n,
            "drive_rate": r.drive_rate,
            "drive_weight": r.drive_weight,
            "leak": r.leak,
            "threshold": r.threshold,
            "reset": r.reset,
        }
        for r in net.regions
    ]
    return {"regions": regions, "synapses": synapses, "connectivity": str(path)}


def brian_worker(spec_path: str) -> None:
    """Run the Brian2 model described in ``spec_path``; print one JSON line on stdout.

    Runs in its own interpreter and imports numpy and Brian2 only."""
    spec = json.loads(Path(spec_path).read_text())
    try:
        import brian2 as b2
    except ImportError as e:
        print(json.dumps({"error": f"Brian2 is not installed ({e})"}))
        return
    except Exception as e:
        print(
            json.dumps(
                {
                    "error": f"Brian2 is installed but does not import here "
                    f"({type(e).__name__}: {e}; numpy {np.__version__})"
                }
            )
        )
        return

    b2.prefs.logging.file_log = False
    b2.prefs.codegen.target = spec["target"]
    b2.defaultclock.dt = 1 * b2.ms
    b2.seed(SEED)
    conn = np.load(spec["connectivity"])
    groups, monitors, objects = {}, {}, []
    decay = {}
    t0 = time.perf_counter()
    for r in spec["regions"]:
        decay[r["name"]] = r["leak"] / 256
        g = b2.NeuronGroup(
            r["n"],
            "dv/dt = -v / tau_leak : 1",
            threshold=f"v >= {r['threshold']}",
            reset=f"v = {r['reset']}",
            method="exact",
            namespace={"tau_leak": -b2.defaultclock.dt / math.log(decay[r["name"]])},
            name=f"g_{r['name']}",
        )
        # The same Bernoulli kick per neuron and step as the integer model's drive; it
        # decays once before the next threshold test, hence the division.
        drive = b2.PoissonInput(
            g,
            "v",
            1,
            r["drive_rate"] / b2.defaultclock.dt,
            weight=r["drive_weight"] / decay[r["name"]],
        )
        groups[r["name"]] = g
        monitors[r["name"]] = b2.SpikeMonitor(g, record=False)
        objects += [g, drive, monitors[r["name"]]]
    synapse_count = 0
    for s in spec["synapses"]:
        indptr = conn[f"{s['key']}.indptr"]
        syn = b2.Synapses(
            groups[s["pre"]],
            groups[s["post"]],
            "w : 1",
            on_pre="v_post += w",
            delay=(s["delay"] - 1) * b2.defaultclock.dt,
            name=f"s_{s['key'].replace('-', '_')}",
        )
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        syn.connect(i=rows, j=conn[f"{s['key']}.indices"].astype(np.int64))
        syn.w = conn[f"{s['key']}.data"].astype(np.float64) / decay[s["post"]]
        synapse_count += len(rows)
        objects.append(syn)
    network = b2.Network(objects)
    build = time.perf_counter() - t0

    def count() -> int:
        return sum(int(m.num_spikes) for m in monitors.values())

    t0 = time.perf_counter()
    network.run(BRIAN_WARM_STEPS * b2.defaultclock.dt)  # code generation and compilation
    warm = time.perf_counter() - t0
    steps = spec["steps"]
    seconds, prepare, spikes = [], [], []
    n = sum(r["n"] for r in spec["regions"])
    for rep in range(spec["reps"]):
        print(
            f"[brain_bench] brian2, {n // len(groups):,} neurons/region: "
            f"repetition {rep + 1}/{spec['reps']}",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.perf_counter()
        network.run(b2.defaultclock.dt)
        one = time.perf_counter() - t0
        before = count()
        t0 = time.perf_counter()
        network.run(steps * b2.defaultclock.dt)
        total = time.perf_counter() - t0
        # run() costs a fixed preparation plus the steps: the one-step run measures the
        # first (plus one step), so `total - one` is the cost of steps - 1 steps.
        seconds.append((total - one) * steps / max(steps - 1, 1))
        prepare.append(one)
        spikes.append(count() - before)
    codeobj = groups[spec["regions"][0]["name"]].state_updater.codeobj
    print(
        json.dumps(
            {
                "seconds": seconds,
                "prepare_seconds": prepare,
                "spikes": spikes,
                "build_seconds": build,
                "first_run_seconds": warm,
                "synapses": synapse_count,
                "target": getattr(type(codeobj), "class_name", type(codeobj).__name__),
                "brian2": b2.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            }
        )
    )


def bench_brian(sizes, steps_of, reps: int, target: str, python: str) -> dict:
    """Each size in a worker process of ``python``; {"error": ...} if Brian2 is unusable."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="brain_bench_") as tmp:
        for neurons in sizes:
            progress(f"brian2, {neurons:,} neurons/region: building (target {target})")
            spec = export_network(neurons, Path(tmp) / f"conn{neurons}.npz")
            spec.update(steps=steps_of[neurons], reps=reps, target=target)
            spec_path = Path(tmp) / f"spec{neurons}.json"
            spec_path.write_text(json.dumps(spec))
            result = run_brian_worker(python, spec_path)
            if "error" in result:
                return result
            out[neurons] = result
    return out


def run_brian_worker(python: str, spec_path: Path) -> dict:
    """Run :func:`brian_worker` on ``spec_path`` in ``python`` (the environment Brian2 is
    installed in); its result, or ``{"error": ...}``."""
    try:
        proc = subprocess.run(
            [python, os.path.abspath(__file__), "--brian-worker", str(spec_path)],
            stdout=subprocess.PIPE,
            text=True,
            timeout=3600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"the Brian2 worker did not run ({e})"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"the Brian2 worker failed (exit status {proc.returncode})"}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- report


def summarize(label: str, procs: int, neurons: int, steps: int, raw: dict) -> dict:
    seconds = statistics.median(raw["seconds"])
    spikes = statistics.median(raw["spikes"])
    row = {
        "setup": label,
        "processes": procs,
        "neurons_per_region": neurons,
        "steps": steps,
        "median_seconds": seconds,
        "steps_per_s": steps / seconds,
        "spikes_per_s": spikes / seconds,
        "ns_per_neuron_step": seconds / (steps * 3 * neurons) * 1e9,
        "spikes_per_neuron_step": spikes / (steps * 3 * neurons),
        "raw": raw,
    }
    if "raster_matches" in raw:
        row["raster_matches"] = all(raw["raster_matches"])
    return row


def fmt_si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.1f}  "


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'neurons/region':>14}  {'setup':<26}{'procs':>5}{'steps':>7}{'median s':>10}"
        f"{'steps/s':>10}{'spikes/s':>11}{'ns/n-step':>10}{'spk/n/step':>11}"
        f"{'vs 1 proc':>10}  raster"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if "raster_matches" in r:
            raster = "equal" if r["raster_matches"] else "MISMATCH"
        else:
            raster = "reference" if r["setup"] == "evospikenet" else "(own model)"
        vs = f"{r['vs_single']:.2f}" if "vs_single" in r else ""
        print(
            f"{r['neurons_per_region']:>14,}  {r['setup']:<26}{r['processes']:>5}{r['steps']:>7}"
            f"{r['median_seconds']:>10.3f}{r['steps_per_s']:>10,.1f}{fmt_si(r['spikes_per_s']):>11}"
            f"{r['ns_per_neuron_step']:>10.1f}{r['spikes_per_neuron_step']:>11.4f}"
            f"{vs:>10}  {raster}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="neurons per region")
    ap.add_argument("--nodes", type=int, nargs="*", default=list(NODE_COUNTS))
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default by size)")
    ap.add_argument(
        "--brian-target",
        choices=["auto", "cython", "numpy"],
        default=None,
        help="Brian2 code generation target (default auto, quick numpy)",
    )
    ap.add_argument("--brian-python", default=sys.executable, help="interpreter that has Brian2")
    ap.add_argument("--no-brian", action="store_true", help="skip the Brian2 rows")
    ap.add_argument("--out", default="bench/results/brain_bench.json")
    ap.add_argument("--brian-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.brian_worker:
        brian_worker(args.brian_worker)
        return 0
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else SIZES)
    if args.brian_target is None:
        args.brian_target = "numpy" if args.quick else "auto"
    sizes = sorted(set(args.sizes))
    steps_of = {n: args.steps or steps_for(n, args.quick) for n in sizes}
    load_start = [round(x, 2) for x in os.getloadavg()]
    t_start = time.perf_counter()

    single = {n: bench_single(n, steps_of[n], args.reps) for n in sizes}
    digests = {n: single[n]["digest"] for n in sizes}
    distributed = {k: bench_distributed(k, sizes, steps_of, args.reps, digests) for k in args.nodes}
    brian: dict = {}
    brian_note = None
    if args.no_brian:
        brian_note = "Brian2 rows skipped (--no-brian)"
    else:
        brian = bench_brian(sizes, steps_of, args.reps, args.brian_target, args.brian_python)
        if "error" in brian:
            brian_note = (
                f"Brian2 rows skipped: {brian['error']}. Pass --brian-python with an "
                "interpreter where `import brian2` works."
            )
            progress(brian_note)
            brian = {}

    rows = []
    for n in sizes:
        base = summarize("evospikenet", 1, n, steps_of[n], single[n])
        base["vs_single"] = 1.0
        rows.append(base)
        for k in args.nodes:
            r = summarize(f"evospikenet PSK, {k} nodes", k, n, steps_of[n], distributed[k][n])
            r["vs_single"] = r["steps_per_s"] / base["steps_per_s"]
            rows.append(r)
        if n in brian:
            r = summarize(f"brian2 ({brian[n]['target']})", 1, n, steps_of[n], brian[n])
            r["vs_single"] = r["steps_per_s"] / base["steps_per_s"]
            rows.append(r)
    load_end = [round(x, 2) for x in os.getloadavg()]

    print()
    print(
        f"machine: {os.cpu_count()} cores, {platform.platform()}; load average at start "
        f"{load_start}, at end {load_end} (other work shares the cores)"
    )
    print()
    print_table(rows)
    print()
    if brian_note:
        print(brian_note)
    elif brian:
        any_b = next(iter(brian.values()))
        print(
            f"brian2 {any_b['brian2']} (numpy {any_b['numpy']}, Python {any_b['python']}), "
            f"target {any_b['target']}: equivalent in size and activity, not spike-identical"
        )

    mismatches = [r for r in rows if r.get("raster_matches") is False]
    if mismatches:
        print()
        print("!" * 78)
        for r in mismatches:
            print(
                f"RASTER MISMATCH: {r['setup']} at {r['neurons_per_region']:,} neurons/region "
                "differs from the single-process raster"
            )
        print("!" * 78)
    elif any("raster_matches" in r for r in rows):
        print("every distributed raster equals the single-process raster (raster_digest)")

    target = None
    two = [r for r in rows if r["processes"] == 2 and r["setup"].startswith("evospikenet PSK")]
    at = {r["neurons_per_region"]: r for r in two}
    if TARGET_NEURONS in at:
        ratio = at[TARGET_NEURONS]["vs_single"]
        met = ratio >= TARGET_RATIO
        target = {
            "what": "encrypted 2-process step rate / single-process step rate at "
            f"{TARGET_NEURONS:,} neurons per region",
            "value": ratio,
            "minimum": TARGET_RATIO,
            "met": met,
        }
        print(
            f"target: {target['what']}: {ratio:.2f} (>= {TARGET_RATIO:.2f}) "
            f"{'met' if met else 'MISSED'}"
        )
    elif at:
        largest = max(at)
        print(
            f"encrypted 2-process / single-process step rate at {largest:,} neurons/region: "
            f"{at[largest]['vs_single']:.2f} (the target is stated at {TARGET_NEURONS:,})"
        )

    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version,
            "numpy": np.__version__,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
        },
        "settings": {**vars(args), "steps": {str(n): s for n, s in steps_of.items()}},
        "seconds": time.perf_counter() - t_start,
        "results": rows,
        "brian2": brian_note or "ran",
        "target": target,
        "rasters_equal": not mismatches,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
