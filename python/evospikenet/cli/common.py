"""What the subcommands share: exit codes, where the PSK comes from, the observer node."""

from __future__ import annotations

import argparse
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from evospikenet.errors import ConfigError

EXIT_OK = 0
"""Success: every check passed (warnings allowed), no alert."""
EXIT_FAILED = 1
"""A check failed (``audit``) or the failure alert fired (``monitor --once``)."""
EXIT_USAGE = 2
"""Bad usage or configuration: unknown flag, malformed key, key file others can read."""

PSK_ENV = "EVOSPIKENET_PSK"
PSK_FILE_ENV = "EVOSPIKENET_PSK_FILE"
IDENTITY_FILE_ENV = "EVOSPIKENET_IDENTITY_KEY_FILE"


class CommandError(Exception):
    """A usage or configuration error, printed as one line; exit status 2."""


@dataclass
class PskSource:
    """Where the PSK of this machine comes from, and its text (never printed)."""

    kind: str
    """``"file"``, ``"env"`` or ``"none"``."""
    where: str
    """The file path or the variable name."""
    text: str | None
    """The key's text as stored (``None`` when unreadable or absent)."""
    mode: int | None = None
    """The file's permission bits, for a file."""
    error: str | None = None
    """Why the file could not be read."""


def find_psk(psk_file: str | None = None) -> PskSource:
    """The PSK from ``psk_file``, else ``EVOSPIKENET_PSK_FILE``, else ``EVOSPIKENET_PSK``."""
    path = psk_file or os.environ.get(PSK_FILE_ENV, "").strip() or None
    if path:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as e:
            return PskSource("file", path, None, error=f"cannot read {path}: {e}")
        return PskSource("file", path, text, mode=mode)
    value = os.environ.get(PSK_ENV, "")
    if value.strip():
        return PskSource("env", PSK_ENV, value)
    return PskSource("none", "", None)


def observer_config(connect: list[str], source: PskSource, namespace: str, mode: str | None = None):
    """The configuration of a watching node: connected to ``connect`` (or on the local
    rendezvous without it), holding the local PSK, multicast scouting off.

    With ``connect`` the node is a Zenoh client by default: the endpoint is a router, which
    relays every node's traffic to it (a peer linked to a router receives only from the
    peers it links to itself). ``mode="peer"`` joins a peer mesh directly instead.

    Raises:
        CommandError: the PSK file is accessible by others or the PSK is malformed.
    """
    from evospikenet.zenoh_comm import ZenohConfig

    kw: dict = {"namespace": namespace, "multicast_scouting": False}
    if connect:
        kw["connect"] = connect
        kw["mode"] = mode or "client"
    elif mode:
        kw["mode"] = mode
    try:
        if source.kind == "file":
            return ZenohConfig(psk_file=source.where, **kw)
        return ZenohConfig(psk=source.text, **kw)
    except (ConfigError, ValueError) as e:
        raise CommandError(str(e)) from None


def observer_id(command: str) -> str:
    """A node id for a watching node that cannot collide with another run's."""
    return f"{command}-{secrets.token_hex(4)}"


def add_watch_options(p: argparse.ArgumentParser, connect_help: str, duration_help: str) -> None:
    """The options of the subcommands that watch a namespace (audit, monitor): how long to
    watch it, where to join it, the key to open its traffic with, how to join it, and which
    namespace."""
    p.add_argument(
        "--duration",
        type=float,
        default=10.0,
        metavar="S",
        help=f"{duration_help} (default: %(default)s)",
    )
    p.add_argument("--connect", action="append", default=[], metavar="ENDPOINT", help=connect_help)
    p.add_argument(
        "--psk-file",
        metavar="F",
        help="the PSK file (default: EVOSPIKENET_PSK_FILE, else EVOSPIKENET_PSK)",
    )
    p.add_argument(
        "--mode",
        choices=["client", "peer"],
        help="how to join: client (default with --connect: ENDPOINT is a router) or peer "
        "(join a peer mesh directly)",
    )
    p.add_argument(
        "--namespace", default="evospikenet", help="topic namespace to watch (default: %(default)s)"
    )
