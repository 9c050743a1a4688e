"""``evospikenet-router``: a Zenoh router that brain nodes on other machines connect to.

Nodes join with ``--connect tcp/<router host>:7447``; the router forwards their traffic
and needs no key: payloads are sealed end to end by the nodes (AES-256-GCM) and the router
only ever sees ciphertext, topic names and sizes. Multicast scouting stays off, so the
router never announces itself on the network; nodes find it by its endpoint only.

::

    evospikenet-router --listen tcp/0.0.0.0:7447

Runs until SIGINT (Ctrl-C) or SIGTERM (``docker stop``), then closes the session and
exits 0. A malformed endpoint or an address that cannot be bound exits 2 with one line on
stderr.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Sequence

from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

DEFAULT_LISTEN = "tcp/0.0.0.0:7447"
ROUTER_NODE_ID = "router"

# Exit status of a command-line usage error, as argparse uses for bad flags.
EXIT_USAGE = 2

# zenoh appends the Rust source location of an error (" at /path/to/file.rs:61."), and the
# session error repeats the endpoints the message already names; neither helps an operator.
_SOURCE_LOCATION = re.compile(r"\s+at \S+\.rs:\d+\.?")
_SESSION_PREFIX = re.compile(r"^zenoh: could not open a session \(.*?\): ")


class _NoKeyWarningFilter(logging.Filter):
    """Drops the communicator's "No PSK configured" warning: correct for a node, misleading
    for a router, which forwards the nodes' ciphertext and never holds a key."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No PSK configured")


def parse_args(
    argv: Sequence[str] | None = None, prog: str = "evospikenet-router"
) -> argparse.Namespace:
    """The command line: ``--listen`` (repeatable) and ``--namespace``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a Zenoh router for evospikenet brain nodes (multicast scouting off).",
    )
    parser.add_argument(
        "--listen",
        action="append",
        metavar="EP",
        help=f"endpoint to listen on, repeatable (default: {DEFAULT_LISTEN}); "
        "port 0 picks a free port",
    )
    parser.add_argument(
        "--namespace",
        default="evospikenet",
        help="topic namespace of this session (default: %(default)s); the router forwards "
        "the traffic of every namespace",
    )
    args = parser.parse_args(argv)
    if not args.listen:
        args.listen = [DEFAULT_LISTEN]
    return args


def open_router(listen: Sequence[str], namespace: str = "evospikenet") -> ZenohCommunicator:
    """Open a Zenoh session in router mode listening on ``listen``.

    Raises:
        ValueError: a malformed endpoint or namespace.
        ConnectionError: an endpoint that cannot be bound (port in use, address not local).
    """
    config = ZenohConfig(
        mode="router",
        listen=list(listen),
        namespace=namespace,
        multicast_scouting=False,
    )
    comm_logger = logging.getLogger("evospikenet.zenoh_comm")
    no_key_filter = _NoKeyWarningFilter()
    comm_logger.addFilter(no_key_filter)
    try:
        return ZenohCommunicator(ROUTER_NODE_ID, config)
    finally:
        comm_logger.removeFilter(no_key_filter)


def _one_line(error: BaseException) -> str:
    text = _SESSION_PREFIX.sub("", _SOURCE_LOCATION.sub("", str(error)))
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None, prog: str = "evospikenet-router") -> int:
    """Run the router until SIGINT or SIGTERM; return the process exit status."""
    args = parse_args(argv, prog)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    # Handlers first: a SIGTERM that arrives while the session opens still ends the run
    # cleanly instead of killing the process with the session half open.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            router = open_router(args.listen, args.namespace)
        except (ValueError, ConnectionError) as e:
            endpoints = ", ".join(args.listen)
            print(f"{prog}: cannot listen on {endpoints}: {_one_line(e)}", file=sys.stderr)
            return EXIT_USAGE
        try:
            print(f"Router listening on {', '.join(router.locators)}", flush=True)
            # Waiting in slices keeps the main thread returning to the interpreter, where
            # the signal handlers run.
            while not stop.wait(0.5):
                pass
        finally:
            router.close()
        print("Router stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
