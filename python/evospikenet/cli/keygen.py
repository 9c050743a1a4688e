"""``evospikenet keygen``: a new PSK or identity key, printed or written to a 0600 file."""

from __future__ import annotations

import argparse
import os
import secrets

from evospikenet.cli.common import EXIT_OK, CommandError
from evospikenet.zenoh_comm import ZenohConfig, generate_identity_key, identity_fingerprint

HELP = "generate a PSK (64 hex digits) or an identity key"
DESCRIPTION = (
    "Print a new random PSK (32 bytes as 64 hex digits), or with --identity "
    "a new X25519 identity key. With --out the key goes to FILE (created with mode 0600, "
    "never overwritten) and only the path and key id or fingerprint are printed."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``keygen``."""
    p.add_argument("--identity", action="store_true", help="an identity key instead of a PSK")
    p.add_argument("--out", metavar="FILE", help="write the key to FILE (mode 0600)")


def write_private(path: str, text: str) -> None:
    """Create ``path`` with mode 0600 and write ``text``; an existing file is an error.

    The mode is given to ``open(2)`` itself, so the key is never readable by others, not
    even for a moment (and the umask can only remove bits).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} exists; not overwriting a key file") from None
    except OSError as e:
        raise CommandError(f"cannot create {path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def run(args: argparse.Namespace) -> int:
    """Generate the key; print it, or write it and print where and its public name."""
    if args.identity:
        key = generate_identity_key()
        name = f"fingerprint {identity_fingerprint(key)}"
        what = "identity key"
    else:
        key = secrets.token_hex(32)
        name = f"key id {ZenohConfig(psk=key).key_id}"
        what = "PSK"
    if args.out is None:
        print(key)
    else:
        write_private(args.out, key)
        print(f"wrote {what} to {args.out} ({name})")
    return EXIT_OK
