# ruff: noqa: E501  (the docstring quotes the published guide's commands unchanged)
"""A spiking brain split over several nodes that exchange spikes every step, encrypted.

The brain (``evospikenet.brain.default_brain``): visual -> pfc -> motor with feedback
from motor to pfc, integer LIF neurons. Its regions are shared round robin among the
sorted node ids (this node and its peers); every node must use the same ``--neurons``,
``--seed`` and ``--steps``.

Two terminals on one machine (nodes meet over loopback, no other flag needed)::

    PSK=$(python3 -c "import os; print(os.urandom(32).hex())")
    python3 examples/secure_distributed_brain_demo.py --node-id node-1 --peer-id node-2 --psk "$PSK" --mode psk
    python3 examples/secure_distributed_brain_demo.py --node-id node-2 --peer-id node-1 --psk "$PSK" --mode psk

DH mode: each node prints its public key and fingerprint and asks for the peer's key
(or takes ``--peer-public-key``, or runs the automatic exchange with ``--key-exchange
auto`` and a PSK to authenticate it)::

    python3 examples/secure_distributed_brain_demo.py --node-id node-1 --peer-id node-2 --mode dh

A whole encrypted brain on this machine, one command::

    python3 examples/secure_distributed_brain_demo.py --local

Separate machines: ``--connect tcp/<router>:7447`` alone makes the node a Zenoh client
whose traffic the router relays (``evospikenet-router`` runs one); with ``--listen
tcp/0.0.0.0:7447`` as well, it is a peer that links to the others directly. ``NODE_ID`` and ``EVOSPIKENET_PSK`` are read
from the environment when the flags are absent; ``--psk-file`` (or ``EVOSPIKENET_PSK_FILE``)
reads the PSK from a file instead, as a Docker or Kubernetes secret is mounted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
EXIT_RUN = 1


class DemoError(Exception):
    """A failure to report in one line (no traceback), with the exit code to use."""

    def __init__(self, message: str, code: int = EXIT_RUN) -> None:
        super().__init__(message)
        self.code = code


class _ShowDefaults(argparse.HelpFormatter):
    """Every option's default in --help, unless it has none or its help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if "default" in text or d is None or d is False or d == [] or d is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Examples and the multi-machine set-up: see the module docstring or the README.",
        formatter_class=_ShowDefaults,
    )

    def repeatable(flag: str, **kw) -> None:
        ap.add_argument(flag, action="append", default=[], **kw)

    # Defaults read from the environment are resolved after parsing: --help must never
    # print a key.
    ap.add_argument("--node-id", help="this node's id (default: $NODE_ID)")
    repeatable("--peer-id", help="a peer's node id; repeat or separate with commas (default: none)")
    ap.add_argument("--psk", help="pre-shared key, 64 hex characters (default: $EVOSPIKENET_PSK)")
    ap.add_argument(
        "--mode",
        choices=("psk", "dh"),
        default="psk",
        help="psk: every payload under the PSK; dh: under keys agreed by X25519",
    )
    ap.add_argument(
        "--key-exchange",
        choices=("manual", "auto"),
        default="manual",
        help="DH mode: paste public keys (manual), or exchange them automatically, "
        "authenticated by the PSK (auto)",
    )
    ap.add_argument(
        "--psk-file",
        help="a file holding the PSK, mode 0600 (default: $EVOSPIKENET_PSK_FILE)",
    )
    repeatable(
        "--peer-public-key",
        metavar="HEX",
        help="DH mode: the peer's public key (one per peer, in --peer-id order) instead of "
        "reading it from stdin",
    )
    # What every node of one run must agree on (checked at the start barrier).
    for flag, default, what in (
        ("--steps", 1000, "simulation steps"),
        ("--neurons", 1000, "neurons per region"),
        ("--seed", 0, "seed of the network"),
    ):
        ap.add_argument(flag, type=int, default=default, help=f"{what} (the same on every node)")
    repeatable(
        "--connect",
        metavar="ENDPOINT",
        help="Zenoh endpoint to connect to, e.g. tcp/10.0.0.5:7447 (repeatable; "
        "default: the loopback rendezvous tcp/127.0.0.1:7447)",
    )
    repeatable(
        "--listen",
        metavar="ENDPOINT",
        help="Zenoh endpoint to listen on (repeatable; default: none, or the loopback "
        "rendezvous when it is free)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        help="write metrics JSON and a raster PNG here (default: nothing written; "
        "--local: brain_out)",
    )
    ap.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a peer or its spikes"
    )
    ap.add_argument(
        "--local",
        action="store_true",
        help="run a whole brain on this machine, one process per node (a fresh PSK)",
    )
    ap.add_argument(
        "--nodes",
        type=int,
        default=3,
        help="--local: number of node processes (2 up to the number of regions)",
    )
    ap.add_argument(
        "--quiet", action="store_true", help="no progress lines, only the start and the result"
    )
    ap.add_argument(
        "--network",
        type=Path,
        metavar="FILE",
        help="a network file (TOML, see docs/network-files.md) instead of the default "
        "brain; --neurons and --seed are then ignored",
    )
    args = ap.parse_args(argv)
    args.node_id = args.node_id or os.environ.get("NODE_ID")
    args.psk = args.psk or os.environ.get("EVOSPIKENET_PSK")
    args.psk_file = args.psk_file or os.environ.get("EVOSPIKENET_PSK_FILE")
    args.peer_id = [p.strip() for item in args.peer_id for p in item.split(",") if p.strip()]
    if args.steps <= 0 or args.neurons <= 0:
        ap.error("--steps and --neurons must be positive")
    if not args.timeout > 0:
        ap.error("--timeout must be positive")
    return args


# --------------------------------------------------------------------------- one node
def load_brain(args: argparse.Namespace):
    """The network to run, and the node table of its file (None without one)."""
    from evospikenet.brain import NetworkFileError, default_brain, load_network

    if args.network is None:
        return default_brain(args.neurons, args.seed), None
    try:
        f = load_network(args.network)
    except NetworkFileError as e:
        raise DemoError(str(e), EXIT_USAGE) from None
    return f.network, f.nodes


def open_communicator(args: argparse.Namespace):
    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

    if not args.node_id:
        raise DemoError("give --node-id (or set NODE_ID)", EXIT_USAGE)
    if not args.peer_id:
        raise DemoError("give at least one --peer-id (or use --local)", EXIT_USAGE)
    if args.node_id in args.peer_id:
        raise DemoError(f"--peer-id {args.node_id!r} is this node's own id", EXIT_USAGE)
    if args.psk and args.psk_file:
        raise DemoError("give --psk or --psk-file (EVOSPIKENET_PSK_FILE), not both", EXIT_USAGE)
    has_psk = bool(args.psk or args.psk_file)
    if args.mode == "psk" and not has_psk:
        raise DemoError(
            "--mode psk needs --psk (or EVOSPIKENET_PSK) or --psk-file (or "
            "EVOSPIKENET_PSK_FILE); generate one with: evospikenet keygen",
            EXIT_USAGE,
        )
    auto = args.mode == "dh" and args.key_exchange == "auto"
    if auto and not has_psk:
        raise DemoError(
            "--key-exchange auto authenticates peers with a PSK: give --psk too", EXIT_USAGE
        )
    # Only --connect: a Zenoh client, whose traffic the router it connects to relays.
    # With --listen too (or neither: the loopback rendezvous), a peer that links directly.
    zenoh_mode = "client" if args.connect and not args.listen else "peer"
    try:
        config = ZenohConfig(
            mode=zenoh_mode,
            connect=args.connect or None,
            listen=args.listen or None,
            psk=args.psk or None,
            psk_file=args.psk_file or None,
            key_exchange="auto" if auto else "manual",
        )
    except ValueError as e:
        raise DemoError(f"invalid configuration: {e}", EXIT_USAGE) from None
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            return ZenohCommunicator(args.node_id, config)
        except ValueError as e:
            raise DemoError(f"could not start node {args.node_id}: {e}", EXIT_USAGE) from None
        except ConnectionError as e:
            # A client waits (about 10 s per attempt) for its router; it may start later.
            if zenoh_mode != "client" or time.monotonic() > deadline:
                raise DemoError(
                    f"could not start node {args.node_id}: no router reachable at "
                    f"{', '.join(args.connect)} ({e})"
                    if zenoh_mode == "client"
                    else f"could not start node {args.node_id}: {e}"
                ) from None
            print(f"waiting for the router at {', '.join(args.connect)} ...", flush=True)


def read_public_key(peer: str) -> str:
    """Read 64 hex digits from stdin, across lines and spaces."""
    print(f"Enter {peer}'s public key (64 hex digits): ", end="", flush=True)
    digits = ""
    while len(digits) < 64:
        line = sys.stdin.readline()
        if not line:
            raise DemoError(f"no public key for {peer} on stdin")
        digits += "".join(c for c in line if not c.isspace() and c != ":")
    return digits


def exchange_keys(comm, args: argparse.Namespace) -> None:
    """DH mode: manual exchange with every peer (or wait for the automatic one)."""
    if args.key_exchange == "auto":
        print(f"Automatic key exchange with {', '.join(args.peer_id)} (authenticated by the PSK)")
    else:
        if args.peer_public_key and len(args.peer_public_key) != len(args.peer_id):
            raise DemoError(
                "give one --peer-public-key per --peer-id, in the same order", EXIT_USAGE
            )
        for peer in args.peer_id:
            key = comm.initiate_key_exchange(peer)
            label = "Public key" if len(args.peer_id) == 1 else f"Public key for {peer}"
            print(f"{label}: {key.hex()}")
            print(f"Fingerprint: {comm.fingerprint(peer)}", flush=True)
        for i, peer in enumerate(args.peer_id):
            text = args.peer_public_key[i] if args.peer_public_key else read_public_key(peer)
            try:
                comm.complete_key_exchange(text, peer)
            except ValueError as e:
                raise DemoError(f"key exchange with {peer} failed: {e}") from None
            print(
                f"{peer}'s fingerprint: {comm.peer_fingerprint(peer)} "
                f"(compare with what {peer} printed)",
                flush=True,
            )
    for peer in args.peer_id:
        try:
            comm.wait_for_session(peer, timeout=args.timeout)
        except TimeoutError:
            raise DemoError(
                f"no secure session with {peer} within {args.timeout:.0f} s: is it running "
                f"and did it get this node's key? (key exchange failures: "
                f"{comm.stats()['key_exchange_failures']})"
            ) from None
        print(
            f"Secure session with {peer} established (its key's fingerprint: "
            f"{comm.peer_fingerprint(peer)})",
            flush=True,
        )


def run_node(args: argparse.Namespace) -> int:
    from evospikenet.brain import BrainNode, assign_regions, raster_digest
    from evospikenet.errors import RunMismatchError

    net, nodes = load_brain(args)
    comm = open_communicator(args)
    try:
        if args.mode == "dh":
            exchange_keys(comm, args)
        assignment = assign_regions(net, [args.node_id, *args.peer_id], nodes)
        node = BrainNode(net, comm, assignment, timeout=args.timeout)
        print(
            f"{args.node_id}: regions {', '.join(node.local)} of {len(net.regions)}, "
            f"{', '.join(str(net.region(r).n) for r in node.local)} neurons, {args.steps} steps, "
            f"{'DH' if args.mode == 'dh' else 'PSK'} mode; waiting for "
            f"{', '.join(node.peers)}",
            flush=True,
        )
        last = {"t": time.monotonic(), "steps": 0, "spikes": 0, "msgs": 0}

        def progress(m) -> None:
            if args.quiet:
                return
            now = time.monotonic()
            dt = max(now - last["t"], 1e-9)
            msgs = m.messages_sent + m.messages_received
            fails = comm.stats()["decrypt_failures"]
            print(
                f"[{args.node_id}] step {m.steps}/{args.steps}  "
                f"{(m.steps - last['steps']) / dt:,.0f} steps/s  "
                f"{(m.spikes - last['spikes']) / dt:,.0f} spikes/s  "
                f"{(msgs - last['msgs']) / dt:,.0f} msgs/s  decryption failures {fails}",
                flush=True,
            )
            last.update(t=now, steps=m.steps, spikes=m.spikes, msgs=msgs)

        try:
            raster, metrics = node.run(args.steps, progress=progress)
        except RunMismatchError as e:
            raise DemoError(f"{e}; check --neurons, --seed and --steps") from None
        except TimeoutError as e:
            fails = comm.stats()["decrypt_failures"]
            hint = (
                " Messages from the peers failed to decrypt: the keys differ (same --psk on "
                "every node? same --mode?)."
                if fails
                else ""
            )
            raise DemoError(f"{e}{hint}") from None
        stats = comm.stats()
        digest = raster_digest(raster)
        summary = {
            "node_id": args.node_id,
            "regions": node.local,
            "peers": node.peers,
            "mode": args.mode,
            "steps": metrics.steps,
            "neurons_per_region": args.neurons,
            "seed": args.seed,
            "wall_seconds": metrics.wall_seconds,
            "steps_per_second": metrics.steps / max(metrics.wall_seconds, 1e-9),
            "spikes": metrics.spikes,
            "spikes_per_region": metrics.per_region_spikes,
            "messages_sent": metrics.messages_sent,
            "messages_received": metrics.messages_received,
            "seconds_waiting_for_peers": metrics.wait_seconds,
            "raster_digest": digest,
            "region_digests": {r: raster_digest({r: raster[r]}) for r in node.local},
            "stats": stats,
        }
        print(
            f"{args.node_id}: done, {metrics.steps} steps in {metrics.wall_seconds:.2f} s "
            f"({summary['steps_per_second']:,.0f} steps/s), {metrics.spikes:,} spikes, "
            f"{metrics.messages_sent:,} messages sent, {metrics.messages_received:,} received, "
            f"decryption failures {stats['decrypt_failures']}"
        )
        print(f"raster digest: {digest}", flush=True)
        node.close()
        if args.out:
            write_outputs(args.out, summary, node.record)
        return 0
    finally:
        comm.close()


def write_outputs(out: Path, summary: dict, record) -> None:
    from evospikenet.brain import load_record, save_record
    from evospikenet.brain.plot import PlottingUnavailable, save_raster_png

    out.mkdir(parents=True, exist_ok=True)
    node = summary["node_id"]
    (out / f"{node}.json").write_text(json.dumps(summary, indent=2))
    print(f"metrics: {out / f'{node}.json'}")
    print(f"spike record: {save_record(record, out / f'{node}.npz')}")
    try:
        png = save_raster_png(
            load_record(out / f"{node}.npz").raster,
            out / f"{node}_raster.png",
            title=f"{node}: {', '.join(summary['regions'])}",
        )
        print(f"raster plot: {png}")
    except PlottingUnavailable as e:
        print(f"no raster plot: {e}")


# --------------------------------------------------------------------------- --local


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_local(args: argparse.Namespace) -> int:
    """Start ``--nodes`` processes of this script on loopback, wait, summarize."""
    from evospikenet.brain import raster_digest, simulate

    net, nodes = load_brain(args)
    regions = net.region_names
    if not nodes and not 2 <= args.nodes <= len(regions):
        raise DemoError(
            f"--nodes {args.nodes}: the brain has {len(regions)} regions "
            f"({', '.join(regions)}) and each node runs at least one, with at least two "
            f"nodes to exchange spikes: use --nodes 2 to {len(regions)}",
            EXIT_USAGE,
        )
    psk = args.psk or (None if args.psk_file else os.urandom(32).hex())
    out = args.out or Path("brain_out")
    # A network file's [nodes] table names the processes; otherwise node-1, node-2...
    ids = sorted(nodes) if nodes else [f"node-{i + 1}" for i in range(args.nodes)]
    port = free_port()
    common = [
        "--steps", str(args.steps), "--neurons", str(args.neurons), "--seed", str(args.seed),
        "--out", str(out), "--timeout", str(args.timeout),
    ]  # fmt: skip
    if args.network is not None:
        common += ["--network", str(args.network)]
    if args.mode == "dh":
        common += ["--mode", "dh", "--key-exchange", "auto"]
    env = dict(os.environ)
    if psk:
        env["EVOSPIKENET_PSK"] = psk
        env.pop("EVOSPIKENET_PSK_FILE", None)
    else:
        env["EVOSPIKENET_PSK_FILE"] = args.psk_file
        env.pop("EVOSPIKENET_PSK", None)
    print(
        f"Starting an encrypted brain of {len(net.regions)} regions "
        f"on {len(ids)} processes ({', '.join(ids)}), "
        f"{'given' if args.psk or args.psk_file else 'fresh'} PSK, loopback port {port}",
        flush=True,
    )
    procs: list[subprocess.Popen] = []
    try:
        with ctrl_c_deferred() as interrupted:
            for i, me in enumerate(ids):
                if interrupted:
                    break
                endpoints = (
                    ["--listen", f"tcp/127.0.0.1:{port}"]
                    if i == 0
                    else ["--connect", f"tcp/127.0.0.1:{port}", "--listen", "tcp/127.0.0.1:0"]
                )
                peers = ",".join(p for p in ids if p != me)
                cmd = [sys.executable, __file__, "--node-id", me, "--peer-id", peers]
                cmd += [*common, *endpoints]
                if i > 0 or args.quiet:
                    cmd.append("--quiet")
                procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        print("\nInterrupted: stopping every node", file=sys.stderr)
        stop_all(procs)
        return 130
    finally:
        stop_all(procs)
    if any(codes):
        failed = [f"{n} (exit {c})" for n, c in zip(ids, codes, strict=True) if c]
        raise DemoError(f"node(s) failed: {', '.join(failed)}")
    summaries = [json.loads((out / f"{n}.json").read_text()) for n in ids]
    ref = simulate(net, args.steps)
    same = all(
        d == raster_digest({r: ref[r]}) for s in summaries for r, d in s["region_digests"].items()
    )
    print("\nSummary")
    for s in summaries:
        print(
            f"  {s['node_id']}: {', '.join(s['regions']):<14} {s['spikes']:>9,} spikes  "
            f"{s['steps_per_second']:>8,.0f} steps/s  "
            f"decryption failures {s['stats']['decrypt_failures']}"
        )
    print(
        f"  spikes identical to a single-process run of the same network: {'yes' if same else 'NO'}"
    )
    for n in ids:
        png = out / f"{n}_raster.png"
        if png.exists():
            print(f"  raster plot: {png}")
    return 0 if same else EXIT_RUN


@contextlib.contextmanager
def ctrl_c_deferred():
    """While the nodes start, a Ctrl-C is only noted (in the list this yields) and raised
    as KeyboardInterrupt on the way out: raised in the middle of starting one, it would
    leave a node running that the launcher never recorded, and so never stops. A SIGINT
    that was ignored when the launcher started (a background job) stays ignored."""
    noted: list[bool] = []
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield noted
        return
    signal.signal(signal.SIGINT, lambda *_: noted.append(True))
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if noted:
        raise KeyboardInterrupt


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_local(args) if args.local else run_node(args)
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    except (ValueError, OSError, MemoryError) as e:
        # Input the checks above did not foresee (a node id the communicator refuses, an
        # --out that cannot be written, a network too large): one line, no traceback.
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_RUN
    except KeyboardInterrupt:
        print("\nInterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
