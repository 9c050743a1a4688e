"""What building the extension for the stable ABI (PyO3's abi3-py310) costs, in one run.

abi3 makes one wheel serve every CPython from 3.10 on, but PyO3 then calls CPython
functions where it would use macros (tuple and list item access, for instance). This
runs the same workloads under two interpreters whose environments hold the two builds,
alternating them, and prints the medians and the median of the paired ratios
(abi3 / version-specific, each pair measured back to back):

    python3 bench/abi3_cost.py --abi3 venv-a/bin/python --full venv-b/bin/python

Workloads: publishing small spike messages (json encoding from Python objects, sealing),
publishing 1 MiB numpy arrays, one integer LIF step over 1 M neurons.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from report import write_report

WORKLOAD = r"""
import json, secrets, sys, time
import numpy as np
from evospikenet import _native, kernels
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

comm = ZenohCommunicator("abi3", ZenohConfig(listen=["tcp/127.0.0.1:0"], psk=secrets.token_hex(32)))
small = {"node_id": "pfc-0", "step": 0, "spikes": list(range(0, 320, 10))}
big = np.random.default_rng(0).standard_normal(1 << 17)
v = np.zeros(1 << 20, dtype=np.int16)
i_syn = np.random.default_rng(1).integers(0, 40, 1 << 20, dtype=np.int16)

def rate(f, n):
    t = time.perf_counter()
    for _ in range(n):
        f()
    return n / (time.perf_counter() - t)

out = {
    "small_msgs_per_s": rate(lambda: comm.publish("b/s", small), 20000),
    "array_MiB_per_s": rate(lambda: comm.publish("b/a", big, serialize="numpy"), 200),
    "lif_steps_per_s": rate(lambda: kernels.lif_step(v, i_syn), 200),
    "so": _native.__file__.rsplit("/", 1)[-1],
}
comm.close()
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--abi3", required=True, help="python of the environment with the abi3 build")
    ap.add_argument("--full", required=True, help="python of the environment with the cpXY build")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="bench/results/abi3_cost.json")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"abi3": [], "full": []}
    for rep in range(args.reps):
        order = ["abi3", "full"] if rep % 2 == 0 else ["full", "abi3"]
        for name in order:
            python = getattr(args, name)
            done = subprocess.run(
                [python, "-c", WORKLOAD], capture_output=True, text=True, check=True
            )
            runs[name].append(json.loads(done.stdout))
            print(f"[abi3_cost] {rep + 1}/{args.reps} {name}: {runs[name][-1]}", file=sys.stderr)
    keys = ["small_msgs_per_s", "array_MiB_per_s", "lif_steps_per_s"]
    med = {n: {k: statistics.median(r[k] for r in rs) for k in keys} for n, rs in runs.items()}
    # Each repetition runs both builds back to back: the median of those paired ratios
    # resists the load of a shared machine better than a ratio of medians.
    ratios = {
        k: statistics.median(a[k] / f[k] for a, f in zip(runs["abi3"], runs["full"], strict=True))
        for k in keys
    }
    print(f"{'workload':<20}{'abi3':>14}{'cpXY':>14}{'abi3 / cpXY':>14}")
    for k in keys:
        print(f"{k:<20}{med['abi3'][k]:>14,.0f}{med['full'][k]:>14,.0f}{ratios[k]:>14.2f}")
    write_report(
        args.out, vars(args), med, ratios=ratios, modules={n: rs[0]["so"] for n, rs in runs.items()}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
