"""``evospikenet router``: the Zenoh router of :mod:`evospikenet.router` (also installed as
``evospikenet-router``)."""

from __future__ import annotations

import argparse

from evospikenet import router as _router


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``router``; its flags are those of ``evospikenet-router``."""
    p = sub.add_parser(
        "router",
        help="run a Zenoh router for brain nodes (as evospikenet-router)",
        description="Run a Zenoh router for evospikenet brain nodes (multicast scouting off). "
        "Same flags as evospikenet-router.",
        add_help=False,
    )
    p.add_argument("router_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Hand the remaining arguments to the router's own parser."""
    return run_argv(args.router_args)


def run_argv(argv: list[str]) -> int:
    """Run the router with its command line ``argv``."""
    return _router.main(argv, prog="evospikenet router")
