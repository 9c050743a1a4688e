"""``evospikenet audit``: the guide's security audit as checks.

Each check ends in ``pass``, ``warn`` or ``fail`` with a one-line reason; the exit status
is 1 when any check fails (0 otherwise, warnings included), 2 for bad usage. The checks:

- ``psk-storage``: where the PSK comes from (a file: pass; a file group or others can
  access: fail; the environment: warn).
- ``psk-quality``: the guide's placeholder, a repeated or low-variety byte pattern, or
  the key found in the source or configuration files given with ``--scan``: fail.
- ``logs``: the files and folders given with ``--logs`` hold no key material (the PSK
  as hex, base64 or raw bytes, the identity key as hex).
- ``crypto-backends``: ring, x25519-dalek, curve25519-dalek and zenoh as compiled in,
  against the minimum-version table shipped with the package.
- ``multicast-scouting``: off in the configuration the environment gives.
- ``network`` (with ``--connect``): the namespace watched for ``--duration`` seconds;
  every sender of plaintext or of traffic the local PSK cannot open is named with topic
  and count.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from importlib import resources

from evospikenet import _native
from evospikenet.cli import key_scan
from evospikenet.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    IDENTITY_FILE_ENV,
    CommandError,
    PskSource,
    add_watch_options,
    find_psk,
)
from evospikenet.cli.watch import Watch, sender_name
from evospikenet.errors import ConfigError
from evospikenet.zenoh_comm import ZenohConfig

PLACEHOLDER = "your-64-char-hex-key-here"
"""The PSK the published guide shows in its examples."""

MIN_DISTINCT_BYTES = 16
"""32 random bytes hold about 30 distinct values; fewer than 16 happens by chance with
probability far below 2^-100, so such a key was not drawn at random."""


@dataclass
class Check:
    """One line of the audit."""

    name: str
    status: str
    """``"pass"``, ``"warn"`` or ``"fail"``."""
    reason: str


HELP = "run the security audit (exit 1 when a check fails)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``audit``."""
    p.add_argument(
        "--logs",
        nargs="+",
        default=[],
        metavar="PATH",
        help="log files or folders to scan for key material",
    )
    p.add_argument(
        "--scan",
        nargs="+",
        default=[],
        metavar="PATH",
        help="source or configuration files or folders that must not hold the PSK",
    )
    add_watch_options(
        p,
        connect_help="watch the mesh reached through ENDPOINT (repeatable)",
        duration_help="seconds to watch the mesh",
    )
    p.add_argument(
        "--identity-file",
        metavar="F",
        help="the identity key file (default: EVOSPIKENET_IDENTITY_KEY_FILE)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def check_psk_storage(source: PskSource) -> Check:
    if source.kind == "none":
        return Check(
            "psk-storage",
            "fail",
            "no PSK configured (EVOSPIKENET_PSK_FILE or EVOSPIKENET_PSK): traffic is "
            "not encrypted unless DH mode is set up",
        )
    if source.kind == "env":
        return Check(
            "psk-storage",
            "warn",
            f"the PSK comes from the environment variable {source.where}, which "
            "docker inspect, /proc/<pid>/environ and crash reports show: use "
            "EVOSPIKENET_PSK_FILE (a Docker or Kubernetes secret)",
        )
    if source.error:
        return Check("psk-storage", "fail", source.error)
    assert source.mode is not None
    if source.mode & 0o077:
        return Check(
            "psk-storage",
            "fail",
            f"the PSK file {source.where} has mode {source.mode:04o}: accessible by "
            f"group or others (chmod 600 {source.where})",
        )
    return Check(
        "psk-storage", "pass", f"PSK read from the file {source.where} (mode {source.mode:04o})"
    )


def check_psk_quality(source: PskSource, scan_paths: list[str]) -> tuple[Check, str | None]:
    """The check, and the key as normalized hex when it parsed (for the log scan)."""
    if source.text is None:
        return Check("psk-quality", "fail", "no PSK to check"), None
    text = source.text.strip()
    if text == PLACEHOLDER:
        return Check(
            "psk-quality",
            "fail",
            f"the PSK is the guide's placeholder {PLACEHOLDER!r}: generate one with "
            "`evospikenet keygen`",
        ), None
    try:
        key_id = ZenohConfig(psk=text).key_id
    except (ConfigError, ValueError) as e:
        return Check("psk-quality", "fail", f"the PSK is malformed: {e}"), None
    raw = bytes.fromhex(text)
    if len(set(raw)) == 1:
        return Check(
            "psk-quality",
            "fail",
            "the PSK is one byte repeated: generate one with `evospikenet keygen`",
        ), text
    if len(set(raw)) < MIN_DISTINCT_BYTES:
        return Check(
            "psk-quality",
            "fail",
            f"the PSK has only {len(set(raw))} distinct bytes of 32: not drawn at "
            "random; generate one with `evospikenet keygen`",
        ), text
    if scan_paths:
        hits, _ = key_scan.scan(scan_paths, key_scan.psk_needles(text))
        if hits:
            where = "; ".join(str(h) for h in hits[:3])
            return Check(
                "psk-quality", "fail", f"the PSK appears in source or configuration files: {where}"
            ), text
    scanned = f", not found in {', '.join(scan_paths)}" if scan_paths else ""
    return Check("psk-quality", "pass", f"32 random-looking bytes, key id {key_id}{scanned}"), text


def identity_hex(path: str | None) -> str | None:
    """The identity key's hex from ``path`` or EVOSPIKENET_IDENTITY_KEY_FILE, if readable."""
    path = path or os.environ.get(IDENTITY_FILE_ENV, "").strip() or None
    if not path:
        return None
    try:
        text = open(path).read().strip()
        bytes.fromhex(text)
    except (OSError, ValueError):
        return None
    return text


def check_logs(paths: list[str], psk_hex: str | None, identity: str | None) -> Check:
    if not paths:
        return Check("logs", "warn", "no log files given (--logs PATH ...): not checked")
    needles = []
    if psk_hex:
        needles += key_scan.psk_needles(psk_hex)
    if identity:
        needles += key_scan.identity_needles(identity)
    if not needles:
        return Check("logs", "warn", "no local key to look for in the logs")
    hits, unreadable = key_scan.scan(paths, needles)
    if hits:
        where = "; ".join(str(h) for h in hits[:3])
        more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
        return Check("logs", "fail", f"key material in the logs: {where}{more}")
    if unreadable:
        return Check("logs", "warn", f"could not read {'; '.join(unreadable[:3])}")
    count = sum(1 for _ in key_scan.files_under(paths))
    return Check("logs", "pass", f"no key material in {count} file(s)")


def version_tuple(text: str) -> tuple[int, ...]:
    """``"0.17.14"`` -> ``(0, 17, 14)``; pre-release suffixes are ignored."""
    parts = []
    for p in text.split("."):
        digits = "".join(c for c in p.split("-")[0] if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def minimum_versions() -> dict[str, dict[str, str]]:
    """The table shipped with the package (``crypto_min_versions.json``)."""
    table = json.loads(
        resources.files("evospikenet.cli").joinpath("crypto_min_versions.json").read_text()
    )
    return {k: v for k, v in table.items() if not k.startswith("_")}


def check_crypto_backends(
    compiled: dict[str, str], table: dict[str, dict[str, str]] | None = None
) -> Check:
    table = minimum_versions() if table is None else table
    old = []
    for name, entry in sorted(table.items()):
        have = compiled.get(name, "unknown")
        if have == "unknown" or version_tuple(have) < version_tuple(entry["min"]):
            old.append(f"{name} {have} < {entry['min']} ({entry['reason']})")
    if old:
        return Check("crypto-backends", "fail", "; ".join(old))
    listed = ", ".join(f"{k} {v}" for k, v in sorted(compiled.items()))
    return Check("crypto-backends", "pass", f"{listed}: at or above the minimum versions")


def check_multicast() -> Check:
    try:
        config = ZenohConfig.from_env()
    except (ConfigError, ValueError) as e:
        return Check(
            "multicast-scouting", "warn", f"the configuration from the environment is invalid: {e}"
        )
    if config.multicast_scouting:
        return Check(
            "multicast-scouting",
            "fail",
            "multicast scouting is on: nodes announce themselves on 224.0.0.224",
        )
    return Check("multicast-scouting", "pass", "off (nodes are found by explicit endpoints only)")


def check_network(args: argparse.Namespace, source: PskSource) -> tuple[Check, list[dict]]:
    if source.text is None or source.error:
        return Check(
            "network", "fail", "watching the mesh needs the local PSK, to tell who cannot use it"
        ), []
    try:
        watch = Watch("audit", args.connect, source, args.namespace, args.mode)
    except CommandError as e:
        # A key file others can read, an unreachable endpoint: this check fails, the
        # report of the others still stands.
        return Check("network", "fail", f"cannot watch the mesh: {e}"), []
    with watch:
        time.sleep(args.duration)
        rows = watch.senders()
    bad = []
    for r in rows:
        kinds = [(r["plaintext"], "plaintext"), (r["undecryptable"], "undecryptable")]
        for count, what in kinds:
            if count:
                bad.append(f"{sender_name(r)} sent {count} {what} message(s) on {r['topic']!r}")
    if bad:
        return Check("network", "fail", "; ".join(bad)), rows
    if not rows:
        return Check("network", "warn", f"no traffic seen in {args.duration:g} s"), rows
    senders = {r["sender"] for r in rows}
    return Check(
        "network",
        "pass",
        f"{len(senders)} sender(s) on {len({r['topic'] for r in rows})} topic(s), "
        f"all encrypted under the local PSK ({args.duration:g} s watched)",
    ), rows


def run_checks(args: argparse.Namespace) -> tuple[list[Check], list[dict]]:
    """Every check, in the order of the module docs."""
    source = find_psk(args.psk_file)
    quality, psk_hex = check_psk_quality(source, args.scan)
    checks = [
        check_psk_storage(source),
        quality,
        check_logs(args.logs, psk_hex, identity_hex(args.identity_file)),
        check_crypto_backends(_native.crypto_backends()),
        check_multicast(),
    ]
    rows: list[dict] = []
    if args.connect:
        network, rows = check_network(args, source)
        checks.append(network)
    return checks, rows


def run(args: argparse.Namespace) -> int:
    """Run the checks, print them, and return 1 when one failed."""
    checks, rows = run_checks(args)
    failed = sum(c.status == "fail" for c in checks)
    if args.json:
        print(
            json.dumps(
                {"checks": [asdict(c) for c in checks], "senders": rows, "failed": failed}, indent=2
            )
        )
    else:
        for c in checks:
            print(f"{c.status.upper():5} {c.name:19} {c.reason}")
        warned = sum(c.status == "warn" for c in checks)
        print(
            f"audit: {failed} failed, {warned} warning(s), {len(checks) - failed - warned} passed"
        )
    return EXIT_FAILED if failed else EXIT_OK
