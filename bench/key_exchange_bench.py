"""Key-exchange benchmark: how long DH mode takes to set up a secure session.

In one process, two communicators linked over loopback (port 0, no multicast):

- ``manual``: the guide's flow on both nodes (``initiate_key_exchange``, then
  ``complete_key_exchange`` with the other's key) until ``session_established`` on both:
  the X25519 work plus the sender-key handover over Zenoh;
- ``manual (API calls only)``: just the four calls, no waiting for the network;
- ``automatic rekey``: ``rekey()`` on an automatic (PSK-authenticated) session: a complete
  authenticated exchange (INIT, RESP, KEY, ACK) plus a new sender key;
- ``automatic first contact``: a new node joins; from its communicator being open until
  both sides report the session (presence announcement + exchange).

Every figure is the median (and p90) over ``--runs`` exchanges. Writes JSON to ``--out``.

    python3 bench/key_exchange_bench.py            # 100 runs each
    python3 bench/key_exchange_bench.py --quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from report import write_report

ANY_PORT = "tcp/127.0.0.1:0"


def ms(samples: list[float]) -> dict:
    return {
        "p50_ms": statistics.median(samples),
        "p90_ms": float(np.percentile(samples, 90)),
        "runs": len(samples),
    }


def wait(cond, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.0002)


def bench_manual(runs: int, progress) -> tuple[dict, dict]:
    a = ZenohCommunicator("node-1", ZenohConfig(listen=[ANY_PORT]))
    b = ZenohCommunicator("node-2", ZenohConfig(connect=a.locators, listen=[ANY_PORT]))
    total, calls = [], []
    try:
        wait(lambda: b.connected_peers() > 0)
        for i in range(runs + 3):
            if i % 25 == 0:
                progress(f"manual exchange {i}/{runs}")
            t0 = time.perf_counter()
            ka = a.initiate_key_exchange("node-2")
            kb = b.initiate_key_exchange("node-1")
            a.complete_key_exchange(kb)
            b.complete_key_exchange(ka)
            t1 = time.perf_counter()
            wait(lambda: a.session_established("node-2") and b.session_established("node-1"))
            t2 = time.perf_counter()
            if i >= 3:  # the first exchanges warm up routes
                calls.append((t1 - t0) * 1e3)
                total.append((t2 - t0) * 1e3)
    finally:
        a.close()
        b.close()
    return ms(total), ms(calls)


def bench_auto(runs: int, joins: int, progress) -> tuple[dict, dict]:
    psk = os.urandom(32).hex()
    cfg = dict(psk=psk, key_exchange="auto", listen=[ANY_PORT])
    a = ZenohCommunicator("a-listener", ZenohConfig(**cfg))
    b = ZenohCommunicator("b-peer", ZenohConfig(connect=a.locators, **cfg))
    rekeys, firsts = [], []
    try:
        a.wait_for_session("b-peer")
        b.wait_for_session("a-listener")
        for i in range(runs + 3):
            if i % 25 == 0:
                progress(f"automatic rekey {i}/{runs}")
            t0 = time.perf_counter()
            peers = a.rekey()
            t1 = time.perf_counter()
            if peers != ["b-peer"]:
                raise RuntimeError(f"rekey reached {peers}")
            if i >= 3:
                rekeys.append((t1 - t0) * 1e3)
        for i in range(joins):
            progress(f"automatic first contact {i + 1}/{joins}")
            name = f"c-joiner-{i}"
            c = ZenohCommunicator(name, ZenohConfig(connect=a.locators, **cfg))
            try:
                t0 = time.perf_counter()
                wait(
                    lambda c=c, name=name: (
                        a.session_established(name) and c.session_established("a-listener")
                    )
                )
                firsts.append((time.perf_counter() - t0) * 1e3)
            finally:
                c.close()
    finally:
        a.close()
        b.close()
    return ms(rekeys), ms(firsts)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--joins", type=int, default=20, help="first-contact runs (a node each)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="bench/results/key_exchange_bench.json")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.joins = 10, 3

    def progress(msg: str) -> None:
        print(f"[key_exchange_bench] {msg}", file=sys.stderr, flush=True)

    manual, calls = bench_manual(args.runs, progress)
    rekey, first = bench_auto(args.runs, args.joins, progress)
    results = {
        "manual (both sides, until established)": manual,
        "manual (API calls only)": calls,
        "automatic rekey (authenticated exchange)": rekey,
        "automatic first contact (new node)": first,
    }
    print()
    print(f"{'key exchange':<44}{'p50 ms':>10}{'p90 ms':>10}{'runs':>8}")
    for name, r in results.items():
        print(f"{name:<44}{r['p50_ms']:>10.2f}{r['p90_ms']:>10.2f}{r['runs']:>8}")
    print("\ntargets: automatic handshake p50 < 5 ms on loopback; guide: < 100 ms")
    write_report(args.out, vars(args), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
