"""``evospikenet router``: the Zenoh router of :mod:`evospikenet.router` (also installed as
``evospikenet-router``)."""

from __future__ import annotations

import argparse

from evospikenet import router as _router

HELP = "run a Zenoh router for brain nodes (as evospikenet-router)"
DESCRIPTION = (
    "Run a Zenoh router for evospikenet brain nodes (multicast scouting off). "
    "Same flags as evospikenet-router."
)
ADD_HELP = False  # every flag, --help included, is the router's


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``router``."""
    p.add_argument("router_args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    """Hand the remaining arguments to the router's own parser."""
    return run_argv(args.router_args)


def run_argv(argv: list[str]) -> int:
    """Run the router with its command line ``argv``."""
    return _router.main(argv, prog="evospikenet router")
