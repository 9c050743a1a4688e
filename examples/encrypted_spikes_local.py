"""Two brain regions in two processes exchanging spikes every step, encrypted.

Each region is a population of integer LIF neurons (``evospikenet.kernels``) driven by
noise and by the other region's spikes of the previous step. Spikes travel as sorted
uint32 indices over ``ZenohCommunicator`` with a fresh PSK (AES-256-GCM); the two nodes
find each other over loopback with the default configuration (no multicast).

    python3 examples/encrypted_spikes_local.py [--steps 200] [--neurons 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time

import numpy as np

REGIONS = ("pfc", "motor")


def run_region(name: str, peer: str, psk: str, steps: int, n: int, seed: int, results) -> None:
    from evospikenet import kernels
    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

    rng = np.random.default_rng(seed)
    weights = kernels.random_csr(n, n, fan_out=20, weight=40, dtype=np.int16, seed=seed)
    v = np.zeros(n, np.int16)
    with ZenohCommunicator(name, ZenohConfig(psk=psk)) as comm:
        inbox = comm.subscribe_queue(f"spikes/{peer}/{name}", maxsize=steps + 8)
        comm.serve(f"ready/{name}", lambda _: "ready")
        comm.request(f"ready/{peer}", "hello?", timeout=30)  # retried until the peer serves
        total, t0 = 0, time.perf_counter()
        incoming = np.empty(0, np.uint32)
        for step in range(steps):
            i_syn = rng.integers(0, 180, n, dtype=np.int32)
            kernels.propagate(incoming, weights, i_syn)
            spikes = kernels.lif_step(v, i_syn, spikes="indices")
            total += spikes.size
            # Step number first, then the spike indices: one small message per step.
            comm.publish(
                f"spikes/{name}/{peer}",
                np.concatenate(([step], spikes)).astype(np.uint32),
                serialize="numpy",
            )
            message = inbox.get(timeout=30)  # the peer's spikes of this step
            assert message[0] == step, f"{name}: expected step {step}, got {message[0]}"
            incoming = message[1:]
        elapsed = time.perf_counter() - t0
        results.put((name, total, elapsed, comm.stats()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    psk = os.urandom(32).hex()
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=run_region,
            args=(name, peer, psk, args.steps, args.neurons, args.seed + i, results),
        )
        for i, (name, peer) in enumerate((REGIONS, REGIONS[::-1]))
    ]
    print(f"starting {len(procs)} regions ({args.neurons} neurons each, {args.steps} steps)")
    for p in procs:
        p.start()
    try:
        rows = [results.get(timeout=120) for _ in procs]
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    failed = [p for p in procs if p.exitcode != 0]
    for name, total, elapsed, stats in sorted(rows):
        print(
            f"{name:>6}: {total:>8} spikes, {args.steps / elapsed:8.1f} steps/s, "
            f"{stats['published']} messages sent, {stats['received']} received, "
            f"{stats['decrypt_failures']} decryption failures"
        )
    if failed:
        print(f"error: {len(failed)} region process(es) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
