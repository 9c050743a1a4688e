"""The ``evospikenet`` command: keygen, fingerprint, audit, monitor, router.

::

    evospikenet keygen --out /run/secrets/evospikenet_psk
    evospikenet fingerprint --psk-file /run/secrets/evospikenet_psk
    evospikenet audit --connect tcp/10.0.0.5:7447 --duration 10 --logs /var/log/brain
    evospikenet monitor --connect tcp/10.0.0.5:7447 --prometheus 9464 --alert-failures 10
    evospikenet router --listen tcp/0.0.0.0:7447

Exit status (see :mod:`evospikenet.cli.common`): 0 success, 1 a check failed or an alert
fired, 2 bad usage or configuration (a malformed key, a key file others can read).
Secrets never appear in the output: keys are named by their key id or fingerprint.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from evospikenet.cli import audit, fingerprint, keygen, monitor, router
from evospikenet.cli.common import EXIT_OK, EXIT_USAGE, CommandError

__all__ = ["main"]

_COMMANDS = (keygen, fingerprint, audit, monitor, router)


def command_name(command: ModuleType) -> str:
    """The subcommand a module implements: its own name (``evospikenet.cli.audit``: audit)."""
    return command.__name__.rpartition(".")[2]


def command_description(command: ModuleType) -> str | None:
    """The module's ``DESCRIPTION``, else the paragraph after its docstring's title line."""
    if hasattr(command, "DESCRIPTION"):
        return command.DESCRIPTION
    paragraphs = (command.__doc__ or "").split("\n\n")
    return paragraphs[1] if len(paragraphs) > 1 else None


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (each module adds its own).

    A subcommand is a module of this package named as the command, with ``HELP`` (the
    one line of the command list), ``add_arguments(parser)`` and ``run(args)``, and
    optionally ``DESCRIPTION`` (else its docstring's second paragraph) and ``ADD_HELP``.
    """
    parser = argparse.ArgumentParser(
        prog="evospikenet",
        description="Operate an evospikenet deployment: keys, audits, monitoring, routers.",
        epilog="Exit status: 0 success, 1 a check failed or an alert fired, "
        "2 bad usage or configuration.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        p = sub.add_parser(
            command_name(command),
            help=command.HELP,
            description=command_description(command),
            add_help=getattr(command, "ADD_HELP", True),
        )
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["router"]:
        # Every flag after ``router`` is the router's, ``--help`` included.
        return router.run_argv(argv[1:])
    args = build_parser().parse_args(argv)
    # The watching node's own records ("Decryption failed for topic: ...") go to stderr
    # with their level and logger, apart from the report on stdout.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except CommandError as e:
        print(f"evospikenet {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`evospikenet audit --json | head`): not an error of ours.
        sys.stderr.close()
        return EXIT_OK
