"""``evospikenet monitor``: a live view of a namespace, and the alert on decryption failures.

Every ``--interval`` seconds it prints the nodes present (the liveliness tokens that
nodes in automatic DH mode declare) and the zenoh sessions this node is linked to, then
one line per (sender, topic): messages per second, and the plaintext, undecryptable and
replayed messages since the start. When the decryption failures and replays of the last
60 seconds pass ``--alert-failures``, it logs at ``ERROR`` on the ``evospikenet.monitor``
logger (once per crossing), naming the senders. With ``--once`` it watches
``--duration`` seconds, prints one view and exits 1 if the alert fired, else 0.

``--prometheus PORT`` serves the counters in the Prometheus text format
(:mod:`evospikenet.metrics`, needs the ``metrics`` extra: ``prometheus_client``).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import signal
import threading
import time

from evospikenet._logsafe import escape_for_log
from evospikenet.cli.common import EXIT_FAILED, EXIT_OK, CommandError, add_watch_options, find_psk
from evospikenet.cli.watch import Watch, sender_name

logger = logging.getLogger("evospikenet.monitor")

ALERT_WINDOW_S = 60.0
"""Failures are counted over this sliding window ("per minute")."""


HELP = "watch peers, message rates, decryption failures and replays"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``monitor``."""
    p.add_argument(
        "--prometheus",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on PORT (needs prometheus_client)",
    )
    p.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics server binds (default: %(default)s)",
    )
    p.add_argument(
        "--alert-failures",
        type=int,
        default=10,
        metavar="N",
        help="log at ERROR when decryption failures and replays pass N in a "
        "minute (default: %(default)s)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between views (default: %(default)s)",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="watch --duration seconds, print one view, exit 1 if the alert fired",
    )
    add_watch_options(
        p,
        connect_help="join the mesh through ENDPOINT (repeatable; default: the local "
        "rendezvous tcp/127.0.0.1:7447)",
        duration_help="seconds watched with --once",
    )
    p.add_argument("--json", action="store_true", help="print each view as one JSON line")


def failures(stats: dict) -> int:
    """The counters the alert watches: messages that failed to decrypt, and replays."""
    return stats["decrypt_failures"] + stats["replays_rejected"]


class FailureAlarm:
    """Failures in the last :data:`ALERT_WINDOW_S` seconds against a threshold, from
    samples of a monotonic total. Fires once per crossing; re-arms below it."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self.active = False
        self.fired = False

    def update(self, now: float, total: int) -> int | None:
        """Record ``total`` at ``now``; the failures in the window when the alarm goes
        off now, else ``None``."""
        self.samples.append((now, total))
        while self.samples and self.samples[0][0] < now - ALERT_WINDOW_S:
            self.samples.popleft()
        in_window = total - self.samples[0][1] if len(self.samples) > 1 else total
        if in_window > self.threshold:
            if not self.active:
                self.active = self.fired = True
                return in_window
        else:
            self.active = False
        return None


def view(watch: Watch, previous: dict[tuple, int], elapsed: float) -> dict:
    """The current state as data: peers, per-sender rates and counts, totals."""
    rows = watch.senders()
    senders = []
    for r in rows:
        key = (r["sender"], r["topic"])
        total = r["received"] + r["plaintext"] + r["undecryptable"] + r["replayed"]
        rate = (total - previous.get(key, 0)) / elapsed if elapsed > 0 else 0.0
        previous[key] = total
        senders.append({**r, "rate": round(rate, 2)})
    stats = watch.stats()
    return {
        "time": time.time(),
        "present": watch.comm.present_nodes(timeout=0.5),
        "zenoh_links": watch.comm.connected_peers(),
        "senders": senders,
        "decrypt_failures": stats["decrypt_failures"],
        "replays_rejected": stats["replays_rejected"],
        "received": stats["received"],
    }


def print_view(v: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(v), flush=True)
        return
    present = ", ".join(repr(escape_for_log(p)) for p in v["present"]) or "none"
    print(f"{time.strftime('%H:%M:%S')}  present (liveliness): {present}")
    print(
        f"          zenoh links: {v['zenoh_links']}  "
        f"received: {v['received']}  decrypt failures: {v['decrypt_failures']}  "
        f"replays: {v['replays_rejected']}"
    )
    for s in v["senders"]:
        print(
            f"  {sender_name(s):40} {s['topic']:30} {s['rate']:8.1f} msg/s  "
            f"plaintext {s['plaintext']}  undecryptable {s['undecryptable']}  "
            f"replayed {s['replayed']}"
        )
    print(flush=True)


def suspects(v: dict) -> str:
    bad = [s for s in v["senders"] if s["plaintext"] or s["undecryptable"] or s["replayed"]]
    return ", ".join(f"{sender_name(s)} on {s['topic']!r}" for s in bad[:5]) or "unknown"


def run(args: argparse.Namespace) -> int:
    """Watch until SIGINT/SIGTERM (or ``--duration`` with ``--once``)."""
    if args.alert_failures < 0:
        raise CommandError("--alert-failures must be >= 0")
    stop = threading.Event()
    previous_handlers = {
        sig: signal.signal(sig, lambda _s, _f: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    source = find_psk(args.psk_file)
    if source.error:
        raise CommandError(source.error)
    alarm = FailureAlarm(args.alert_failures)
    try:
        with Watch("monitor", args.connect, source, args.namespace, args.mode) as watch:
            server = None
            if args.prometheus is not None:
                from evospikenet import metrics

                try:
                    server = metrics.serve(watch.comm, args.prometheus, args.metrics_address)
                except (ImportError, OSError) as e:
                    raise CommandError(f"cannot serve metrics on {args.prometheus}: {e}") from None
            try:
                return watch_loop(args, watch, alarm, stop)
            finally:
                if server is not None:
                    server.shutdown()
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def watch_loop(
    args: argparse.Namespace, watch: Watch, alarm: FailureAlarm, stop: threading.Event
) -> int:
    """Sample every second for the alarm; print a view every ``--interval`` (or once)."""
    previous: dict[tuple, int] = {}
    start = last_view = time.monotonic()
    while True:
        stopped = stop.wait(1.0)
        now = time.monotonic()
        stats = watch.stats()
        crossed = alarm.update(now, failures(stats))
        done = stopped or (args.once and now - start >= args.duration)
        if crossed is not None or done or (not args.once and now - last_view >= args.interval):
            v = view(watch, previous, now - last_view)
            last_view = now
            if crossed is not None:
                logger.error(
                    "Decryption failures: %d in the last minute (threshold %d); from %s",
                    crossed,
                    args.alert_failures,
                    suspects(v),
                )
            if done or not args.once:
                print_view(v, args.json)
        if done:
            return EXIT_FAILED if args.once and alarm.fired else EXIT_OK
