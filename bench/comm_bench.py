"""Communication benchmark: this module against the pure-Python stack, in one run.

Two processes on loopback (the parent publishes, a spawned child receives), for each of:

- ``evospikenet``            this module with a PSK (AES-256-GCM)
- ``evospikenet-dh``         this module in DH mode (automatic X25519 exchange authenticated
                             by the PSK; traffic under per-sender keys)
- ``evospikenet-dh-pins``    DH mode with pinned identity keys: every message also carries
                             a sender tag for its recipient (header mode 3)
- ``evospikenet-zstd``       this module with a PSK, publications compressed with zstd
- ``evospikenet-lz4``        the same with lz4
- ``evospikenet-plain``      this module without a PSK
- ``python-guide``           eclipse-zenoh + ``cryptography`` AESGCM (random nonce) + JSON +
                             the guide's base64 envelope {"format": "secure", "nonce",
                             "ciphertext", "tag"}
- ``python-plain``           eclipse-zenoh + JSON, no encryption (reference)

Scenarios: (a) throughput of small spike messages (a dict with 32 spike indices) sent from
Python; (b) ping-pong round-trip latency p50/p99; (c) throughput of 1 MiB numpy arrays:
float64 noise (incompressible) and int16 membrane potentials of a LIF population (the
state a simulation ships). For this module, the bytes on the wire per message of each
scenario are recorded too: their ratio between compressed and uncompressed runs is the
compression ratio.
Every figure is the median of ``--reps`` repetitions; ratios compare figures measured in
this same run. All implementations are started first and measured in turn within each
repetition, in an order that rotates from one repetition to the next, so a ratio never
compares an early phase of the run with a late one. Writes JSON to ``--out``.

    python3 bench/comm_bench.py            # full run (a few minutes)
    python3 bench/comm_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import threading
import time

import numpy as np
from report import write_report

IMPLS = [
    "evospikenet",
    "evospikenet-dh",
    "evospikenet-dh-pins",
    "evospikenet-zstd",
    "evospikenet-lz4",
    "evospikenet-plain",
    "python-guide",
    "python-plain",
]
SMALL = {"node_id": "pfc-0", "step": 0, "spikes": list(range(0, 320, 10))}


# --------------------------------------------------------------------------- endpoints


class Ours:
    """This module."""

    def __init__(
        self,
        psk: str | None,
        locator: str | None,
        dh: bool = False,
        pins=False,
        compression: str | None = None,
    ):
        from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

        me, peer = (
            ("bench-parent", "bench-child") if locator is None else ("bench-child", "bench-parent")
        )
        kw: dict = {
            "psk": psk,
            "key_exchange": "auto" if dh else "manual",
            "compression": compression,
        }
        if pins:
            # Both ends derive both identity keys from the run's PSK.
            kw["identity_key"] = identity(psk, me)
            kw["trusted_peers"] = {peer: identity_fingerprint(identity(psk, peer))}
        if locator is None:
            cfg = ZenohConfig(listen=["tcp/127.0.0.1:0"], **kw)
        else:
            cfg = ZenohConfig(connect=[locator], **kw)
        self.comm = ZenohCommunicator(me, cfg)
        if dh and locator is not None:
            self.comm.wait_for_session(peer, timeout=30)

    @property
    def locator(self) -> str:
        return self.comm.locators[0]

    def publish(self, topic: str, obj, kind: str) -> None:
        self.comm.publish(topic, obj, serialize="numpy" if kind == "array" else "json")

    def subscribe(self, topic: str, callback) -> None:
        self.comm.subscribe(topic, callback)

    def close(self) -> None:
        self.comm.close()


class PythonStack:
    """What a user would write with eclipse-zenoh, `cryptography` and json, as the guide
    describes it."""

    def __init__(self, psk: str | None, locator: str | None):
        import zenoh
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        conf = zenoh.Config()
        conf.insert_json5("mode", '"peer"')
        conf.insert_json5("scouting/multicast/enabled", "false")
        if locator is None:
            # eclipse-zenoh does not report the bound port: pick a free one first.
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self._locator = f"tcp/127.0.0.1:{port}"
            conf.insert_json5("listen/endpoints", json.dumps([self._locator]))
        else:
            conf.insert_json5("listen/endpoints", "[]")
            conf.insert_json5("connect/endpoints", json.dumps([locator]))
        self.session = zenoh.open(conf)
        self.aes = AESGCM(bytes.fromhex(psk)) if psk else None
        self.publishers: dict = {}
        self.subs: list = []
        self.zenoh = zenoh

    @property
    def locator(self) -> str:
        return self._locator

    def encode(self, obj, kind: str) -> bytes:
        if kind == "array":
            meta = {"dtype": obj.dtype.str, "shape": list(obj.shape)}
            plaintext = obj.tobytes()
        else:
            meta = {}
            plaintext = json.dumps(obj).encode()
        if self.aes is None:
            if kind == "array":
                return json.dumps({**meta, "data": base64.b64encode(plaintext).decode()}).encode()
            return plaintext
        nonce = os.urandom(12)
        sealed = self.aes.encrypt(nonce, plaintext, None)
        envelope = {
            "format": "secure",
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(sealed[:-16]).decode(),
            "tag": base64.b64encode(sealed[-16:]).decode(),
            **meta,
        }
        return json.dumps(envelope).encode()

    def decode(self, payload: bytes):
        if self.aes is None:
            if payload[:1] == b"{" and b'"data"' in payload[:200]:
                env = json.loads(payload)
                if "dtype" in env:
                    raw = base64.b64decode(env["data"])
                    return np.frombuffer(raw, env["dtype"]).reshape(env["shape"])
            return json.loads(payload)
        env = json.loads(payload)
        sealed = base64.b64decode(env["ciphertext"]) + base64.b64decode(env["tag"])
        plaintext = self.aes.decrypt(base64.b64decode(env["nonce"]), sealed, None)
        if "dtype" in env:
            return np.frombuffer(plaintext, env["dtype"]).reshape(env["shape"])
        return json.loads(plaintext)

    def publish(self, topic: str, obj, kind: str) -> None:
        pub = self.publishers.get(topic)
        if pub is None:
            pub = self.session.declare_publisher(
                topic, congestion_control=self.zenoh.CongestionControl.BLOCK
            )
            self.publishers[topic] = pub
        pub.put(self.encode(obj, kind))

    def subscribe(self, topic: str, callback) -> None:
        def on_sample(sample) -> None:
            callback(self.decode(sample.payload.to_bytes()))

        self.subs.append(self.session.declare_subscriber(topic, on_sample))

    def close(self) -> None:
        self.session.close()


def identity(psk: str, node: str) -> str:
    import hashlib

    return hashlib.sha256(f"{psk}/{node}".encode()).hexdigest()


def identity_fingerprint(key: str) -> str:
    from evospikenet.zenoh_comm import identity_fingerprint as fp

    return fp(key)


def make(impl: str, psk: str, locator: str | None):
    """The endpoint of `impl`; `psk` is used by the encrypted implementations only."""
    encrypted = impl != "python-plain" and impl != "evospikenet-plain"
    if impl.startswith("evospikenet-dh"):
        return Ours(psk, locator, dh=True, pins=impl.endswith("pins"))
    if impl in ("evospikenet-zstd", "evospikenet-lz4"):
        return Ours(psk, locator, compression=impl.rsplit("-", 1)[1])
    cls = Ours if impl.startswith("evospikenet") else PythonStack
    return cls(psk if encrypted else None, locator)


def topic(impl: str, name: str) -> str:
    # Ours adds its namespace; the raw stack gets the same key expression explicitly.
    return name if impl.startswith("evospikenet") else f"evospikenet/{name}"


# --------------------------------------------------------------------------- the child


def child(impl: str, psk: str, locator: str, conn) -> None:
    ep = make(impl, psk, locator)
    state = {"n": 0, "target": 0, "warm": False}
    lock = threading.Lock()

    def on_warm(_data) -> None:
        with lock:
            if not state["warm"]:
                state["warm"] = True
                conn.send(("warm",))

    def on_data(_data) -> None:
        with lock:
            state["n"] += 1
            if state["n"] == state["target"]:
                conn.send(("done", time.monotonic_ns()))

    def on_ping(data) -> None:
        kind = "array" if isinstance(data, np.ndarray) else "json"
        ep.publish(topic(impl, "bench/pong"), data, kind)

    ep.subscribe(topic(impl, "bench/warm"), on_warm)
    ep.subscribe(topic(impl, "bench/data"), on_data)
    ep.subscribe(topic(impl, "bench/ping"), on_ping)
    conn.send(("ready",))
    while True:
        cmd = conn.recv()
        if cmd[0] == "arm":
            with lock:
                state.update(n=0, target=cmd[1], warm=False)
            conn.send(("armed",))
        elif cmd[0] == "quit":
            break
    ep.close()


# --------------------------------------------------------------------------- the parent


def warm_up(ep, impl: str, conn, obj, kind: str) -> None:
    deadline = time.monotonic() + 30
    while not conn.poll(0.02):
        ep.publish(topic(impl, "bench/warm"), obj, kind)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{impl}: the receiver never got a warm-up message")
    assert conn.recv()[0] == "warm"


def throughput(ep, impl: str, conn, obj, kind: str, n: int) -> float:
    conn.send(("arm", n))
    assert conn.recv()[0] == "armed"
    warm_up(ep, impl, conn, obj, kind)
    data_topic = topic(impl, "bench/data")
    t0 = time.monotonic_ns()
    for _ in range(n):
        ep.publish(data_topic, obj, kind)
    if not conn.poll(120):
        raise RuntimeError(f"{impl}: receiver did not get all {n} messages")
    _, t_last = conn.recv()
    return n / ((t_last - t0) / 1e9)


def latency(ep, impl: str, conn, obj, kind: str, rounds: int) -> list[float]:
    got = threading.Event()
    ep.subscribe(topic(impl, "bench/pong"), lambda _d: got.set())
    ping = topic(impl, "bench/ping")
    # Warm up until a pong comes back.
    deadline = time.monotonic() + 30
    while True:
        got.clear()
        ep.publish(ping, obj, kind)
        if got.wait(0.1):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{impl}: no pong")
    samples = []
    for _ in range(rounds):
        got.clear()
        t = time.perf_counter_ns()
        ep.publish(ping, obj, kind)
        if not got.wait(5):
            raise RuntimeError(f"{impl}: pong lost")
        samples.append((time.perf_counter_ns() - t) / 1e3)
    return samples


class Run:
    """One implementation's two ends: this process publishes, a spawned child receives."""

    def __init__(self, impl: str, ctx) -> None:
        self.impl = impl
        psk = os.urandom(32).hex()
        self.ep = make(impl, psk, None)
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(
            target=child, args=(impl, psk, self.ep.locator, child_conn), daemon=True
        )
        self.proc.start()
        if not self.conn.poll(60):
            raise RuntimeError(f"{impl}: receiver did not start")
        assert self.conn.recv()[0] == "ready"
        if impl.startswith("evospikenet-dh"):
            self.ep.comm.wait_for_session("bench-child", timeout=30)
        self.out: dict = {
            "small_msgs_per_s": [],
            "array_MiB_per_s": [],
            "sim_array_MiB_per_s": [],
            "rtt_us": [],
        }
        self.wire: dict[str, list[float]] = {"small": [], "array": [], "sim_array": []}

    def wire_bytes(self) -> int | None:
        """Bytes this end has put on the wire so far (this module only)."""
        comm = getattr(self.ep, "comm", None)
        return comm.stats()["bytes_sent"] if comm is not None else None

    def measure(self, key: str, obj, kind: str, n: int) -> float:
        """Throughput of `n` messages of `obj`, and their mean size on the wire."""
        before = self.wire_bytes()
        rate = throughput(self.ep, self.impl, self.conn, obj, kind, n)
        after = self.wire_bytes()
        if before is not None and after is not None:
            # Warm-up messages are included: they are the same object.
            self.wire[key].append((after - before) / n)
        return rate

    def close(self) -> None:
        try:
            self.conn.send(("quit",))
            self.proc.join(30)
        finally:
            if self.proc.is_alive():
                self.proc.kill()
            self.ep.close()

    def summary(self) -> dict:
        rtts = self.out["rtt_us"]
        wire = {f"{k}_wire_bytes": statistics.median(v) for k, v in self.wire.items() if v}
        return {
            "small_msgs_per_s": statistics.median(self.out["small_msgs_per_s"]),
            "array_MiB_per_s": statistics.median(self.out["array_MiB_per_s"]),
            "sim_array_MiB_per_s": statistics.median(self.out["sim_array_MiB_per_s"]),
            **wire,
            "rtt_p50_us": float(np.percentile(rtts, 50)),
            "rtt_p99_us": float(np.percentile(rtts, 99)),
            "raw": {k: v for k, v in self.out.items() if k != "rtt_us"},
        }


def membrane_potentials(n: int) -> np.ndarray:
    """The int16 membrane potentials of `n` integer LIF neurons after 100 steps of random
    drive (evospikenet.kernels.lif_int): what a node ships when it checkpoints or records
    its state."""
    from evospikenet import kernels

    rng = np.random.default_rng(1)
    v = np.zeros(n, dtype=np.int16)
    for _ in range(100):
        kernels.lif_step(v, rng.integers(0, 40, n, dtype=np.int16))
    return v


def run_all(impls: list[str], args, progress) -> dict:
    ctx = mp.get_context("spawn")
    runs: list[Run] = []
    try:
        for impl in impls:
            progress(f"{impl}: starting")
            runs.append(Run(impl, ctx))
        big = np.random.default_rng(0).standard_normal(1 << 17)  # 1 MiB of float64
        sim = membrane_potentials(1 << 19)  # 1 MiB of int16
        for rep in range(args.reps):
            turn = runs[rep % len(runs) :] + runs[: rep % len(runs)]
            for r in turn:
                progress(f"repetition {rep + 1}/{args.reps}: {r.impl}")
                rate = r.measure("small", SMALL, "json", args.small)
                r.out["small_msgs_per_s"].append(rate)
                rate = r.measure("array", big, "array", args.arrays)
                r.out["array_MiB_per_s"].append(rate * big.nbytes / 2**20)
                rate = r.measure("sim_array", sim, "array", args.arrays)
                r.out["sim_array_MiB_per_s"].append(rate * sim.nbytes / 2**20)
        for r in runs:
            progress(f"{r.impl}: latency ({args.rounds} round trips)")
            r.out["rtt_us"] = latency(r.ep, r.impl, r.conn, SMALL, "json", args.rounds)
        return {r.impl: r.summary() for r in runs}
    finally:
        for r in runs:
            r.close()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--small", type=int, default=50_000, help="small messages per repetition")
    ap.add_argument("--arrays", type=int, default=300, help="1 MiB arrays per repetition")
    ap.add_argument("--rounds", type=int, default=3000, help="ping-pong round trips")
    ap.add_argument("--only", nargs="*", choices=IMPLS, default=IMPLS)
    ap.add_argument("--out", default="bench/results/comm_bench.json")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.small, args.arrays, args.rounds = 1, 5_000, 30, 300

    def progress(msg: str) -> None:
        print(f"[comm_bench] {msg}", file=sys.stderr, flush=True)

    results = run_all(args.only, args, progress)

    def ratio(a: str, b: str, key: str) -> float | None:
        if a in results and b in results:
            return results[a][key] / results[b][key]
        return None

    ours, plain, guide = "evospikenet", "evospikenet-plain", "python-guide"
    small, big = "small_msgs_per_s", "array_MiB_per_s"
    summary = {
        "small: DH mode vs PSK mode (target >= 0.90)": ratio("evospikenet-dh", ours, small),
        "1 MiB: DH mode vs PSK mode (target >= 0.90)": ratio("evospikenet-dh", ours, big),
        "small: DH with pins (sender tags) vs DH mode": ratio(
            "evospikenet-dh-pins", "evospikenet-dh", small
        ),
        "1 MiB: DH with pins (sender tags) vs DH mode": ratio(
            "evospikenet-dh-pins", "evospikenet-dh", big
        ),
        "small: encrypted vs python-guide (target >= 5x)": ratio(ours, guide, small),
        "small: encrypted vs own plaintext (target >= 0.90)": ratio(ours, plain, small),
        "1 MiB: encrypted vs own plaintext (target >= 0.80)": ratio(ours, plain, big),
        "1 MiB: encrypted vs python-guide (target > 1)": ratio(ours, guide, big),
    }
    if ours in results and plain in results:
        added = (results[ours]["rtt_p50_us"] - results[plain]["rtt_p50_us"]) / 2
        summary["added one-way latency of encryption, p50 us (target <= 10)"] = added
    for algo in ("zstd", "lz4"):
        impl = f"evospikenet-{algo}"
        for key, what in (
            ("small", "small"),
            ("array", "1 MiB float64"),
            ("sim_array", "1 MiB int16 V"),
        ):
            wire = f"{key}_wire_bytes"
            if impl in results and ours in results:
                summary[f"{what}: {algo} compression ratio (wire bytes, uncompressed / {algo})"] = (
                    results[ours][wire] / results[impl][wire]
                )
        summary[f"small: {algo} vs uncompressed, msg/s"] = ratio(impl, ours, small)
        summary[f"1 MiB float64: {algo} vs uncompressed, MiB/s"] = ratio(impl, ours, big)
        summary[f"1 MiB int16 V: {algo} vs uncompressed, MiB/s"] = ratio(
            impl, ours, "sim_array_MiB_per_s"
        )

    print()
    header = ("implementation", "small msg/s", "1 MiB MiB/s", "int16 MiB/s", "RTT p50 us")
    print(f"{header[0]:<22}{header[1]:>14}{header[2]:>14}{header[3]:>14}{header[4]:>12}")
    for impl, r in results.items():
        print(
            f"{impl:<22}{r['small_msgs_per_s']:>14,.0f}{r['array_MiB_per_s']:>14,.0f}"
            f"{r['sim_array_MiB_per_s']:>14,.0f}{r['rtt_p50_us']:>12,.1f}"
        )
    print()
    for k, v in summary.items():
        print(f"{k:<64}{'n/a' if v is None else f'{v:.2f}'}")

    write_report(args.out, vars(args), results, summary=summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
