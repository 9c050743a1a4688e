"""``evospikenet fingerprint``: the public name of a key, never the key.

A PSK is named by its key id (4 bytes derived from it, in every message header); an
identity key by its fingerprint (what peers pin in ``trusted_peers``). Compare them
across machines to check that nodes hold the same PSK, or the pinned identity.
"""

from __future__ import annotations

import argparse

from evospikenet.cli.common import EXIT_OK, CommandError, find_psk, observer_config
from evospikenet.errors import ConfigError
from evospikenet.zenoh_comm import ZenohConfig

HELP = "print a PSK's key id or an identity key's fingerprint"
DESCRIPTION = (
    "Print the key id of the PSK (from --psk-file, else EVOSPIKENET_PSK_FILE, "
    "else EVOSPIKENET_PSK) or the fingerprint of the identity key in --identity-file. "
    "The key itself is never printed. Key files accessible by group or others are refused."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``fingerprint``."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--psk-file", metavar="F", help="a file holding the PSK")
    group.add_argument("--identity-file", metavar="F", help="a file holding an identity key")


def run(args: argparse.Namespace) -> int:
    """Print ``key id <hex>`` or ``fingerprint <XXXX XXXX ...>``."""
    if args.identity_file:
        try:
            cfg = ZenohConfig(identity_key_file=args.identity_file)
        except (ConfigError, ValueError) as e:
            raise CommandError(str(e)) from None
        print(f"fingerprint {cfg.identity_fingerprint}")
        return EXIT_OK
    source = find_psk(args.psk_file)
    if source.kind == "none":
        raise CommandError(
            "no PSK: give --psk-file, or set EVOSPIKENET_PSK_FILE or EVOSPIKENET_PSK"
        )
    if source.error:
        raise CommandError(source.error)
    cfg = observer_config([], source, "evospikenet")
    print(f"key id {cfg.key_id}")
    return EXIT_OK
