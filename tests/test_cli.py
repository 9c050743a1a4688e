"""The ``evospikenet`` command without a network: keygen, fingerprint, the secret-file
rules (also of ZenohConfig and EVOSPIKENET_PSK_FILE), and the audit's offline checks."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys

import pytest
from evospikenet.cli import main
from evospikenet.cli.audit import check_crypto_backends
from evospikenet.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from evospikenet.errors import ConfigError
from evospikenet.zenoh_comm import ZenohConfig, generate_identity_key, identity_fingerprint
from support.comm import new_psk
from support.procs import clean_env, run

HEX = set("0123456789abcdef")


def key_file(tmp_path, text: str, mode: int = 0o600, name: str = "psk"):
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_keygen_prints_a_fresh_psk(capsys):
    assert main(["keygen"]) == EXIT_OK
    first = capsys.readouterr().out.strip()
    main(["keygen"])
    second = capsys.readouterr().out.strip()
    assert len(first) == 64 and set(first) <= HEX and first != second
    ZenohConfig(psk=first)


def test_keygen_out_writes_0600_and_prints_only_path_and_key_id(tmp_path, capsys):
    out = tmp_path / "psk"
    assert main(["keygen", "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    key = out.read_text().strip()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert key not in printed
    assert str(out) in printed and ZenohConfig(psk=key).key_id in printed
    # An existing key file is never overwritten.
    assert main(["keygen", "--out", str(out)]) == EXIT_USAGE
    assert "exists" in capsys.readouterr().err
    assert out.read_text().strip() == key


def test_keygen_identity_to_file_prints_its_fingerprint(tmp_path, capsys):
    out = tmp_path / "id"
    assert main(["keygen", "--identity", "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    key = out.read_text().strip()
    assert key not in printed and identity_fingerprint(key) in printed
    assert main(["keygen", "--identity"]) == EXIT_OK
    assert len(capsys.readouterr().out.strip()) == 64


def test_fingerprint_names_keys_without_showing_them(tmp_path, capsys, monkeypatch):
    psk = new_psk()
    path = key_file(tmp_path, psk)
    assert main(["fingerprint", "--psk-file", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.strip() == f"key id {ZenohConfig(psk=psk).key_id}" and psk not in out
    identity = generate_identity_key()
    id_path = key_file(tmp_path, identity, name="id")
    assert main(["fingerprint", "--identity-file", str(id_path)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"fingerprint {identity_fingerprint(identity)}"
    monkeypatch.setenv("EVOSPIKENET_PSK", psk)
    assert main(["fingerprint"]) == EXIT_OK
    assert ZenohConfig(psk=psk).key_id in capsys.readouterr().out
    monkeypatch.delenv("EVOSPIKENET_PSK")
    assert main(["fingerprint"]) == EXIT_USAGE
    assert "no PSK" in capsys.readouterr().err


def test_a_0644_psk_file_is_refused_everywhere_naming_file_and_mode(tmp_path, capsys, monkeypatch):
    psk = new_psk()
    path = key_file(tmp_path, psk, mode=0o644)
    assert main(["fingerprint", "--psk-file", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(path) in err and "0644" in err and psk not in err
    with pytest.raises(ConfigError, match="0644") as e:
        ZenohConfig(psk_file=path)
    assert str(path) in str(e.value) and psk not in str(e.value)
    monkeypatch.setenv("EVOSPIKENET_PSK_FILE", str(path))
    with pytest.raises(ConfigError, match="0644"):
        ZenohConfig.from_env()
    id_path = key_file(tmp_path, generate_identity_key(), mode=0o640, name="id")
    with pytest.raises(ConfigError, match="0640"):
        ZenohConfig(identity_key_file=str(id_path))


def test_psk_file_and_env_file_give_the_same_key(tmp_path, monkeypatch):
    psk = new_psk()
    path = key_file(tmp_path, psk, mode=0o400)
    expected = ZenohConfig(psk=psk).key_id
    assert ZenohConfig(psk_file=str(path)).key_id == expected
    monkeypatch.setenv("EVOSPIKENET_PSK_FILE", str(path))
    assert ZenohConfig.from_env().key_id == expected
    with pytest.raises(ValueError, match="not both"):
        ZenohConfig(psk=psk, psk_file=str(path))
    bad = key_file(tmp_path, "your-64-char-hex-key-here", name="bad")
    with pytest.raises(ConfigError, match="64") as e:
        ZenohConfig(psk_file=bad)
    assert "your-64" not in str(e.value)


def audit(tmp_path, capsys, *args) -> tuple[int, dict]:
    code = main(["audit", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in report["checks"]}


def test_audit_passes_with_a_private_psk_file_and_clean_logs(tmp_path, capsys):
    path = key_file(tmp_path, new_psk())
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "node.log").write_text("INFO started\nWARNING Decryption failed for topic: x\n")
    code, checks = audit(tmp_path, capsys, "--psk-file", str(path), "--logs", str(logs))
    assert code == EXIT_OK, checks
    assert {c["status"] for c in checks.values()} == {"pass"}
    assert set(checks) == {
        "psk-storage",
        "psk-quality",
        "logs",
        "crypto-backends",
        "multicast-scouting",
    }


def test_audit_finds_keys_in_logs_in_every_form(tmp_path, capsys):
    psk = new_psk()
    path = key_file(tmp_path, psk)
    identity = generate_identity_key()
    id_path = key_file(tmp_path, identity, name="id")
    raw = bytes.fromhex(psk)
    forms = {
        "hex": f"DEBUG key={psk.upper()}\n".encode(),
        "base64": b"psk: " + base64.b64encode(raw) + b"\n",
        "raw": b"dump " + raw + b"\n",
        "identity": f"identity {identity}\n".encode(),
    }
    for form, line in forms.items():
        log = tmp_path / f"{form}.log"
        log.write_bytes(b"INFO ok\n" + line)
        code, checks = audit(
            tmp_path,
            capsys,
            "--psk-file",
            str(path),
            "--identity-file",
            str(id_path),
            "--logs",
            str(log),
        )
        assert code == EXIT_FAILED, form
        reason = checks["logs"]["reason"]
        assert checks["logs"]["status"] == "fail" and f"{log}:2" in reason, reason
        assert psk not in reason.lower() and identity not in reason


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("your-64-char-hex-key-here", "placeholder"),
        ("ab" * 32, "repeated"),
        ("0102" * 16, "distinct"),
        ("deadbeef", "malformed"),
    ],
)
def test_audit_fails_weak_psks(tmp_path, capsys, text, why):
    path = key_file(tmp_path, text)
    code, checks = audit(tmp_path, capsys, "--psk-file", str(path))
    assert code == EXIT_FAILED
    assert checks["psk-quality"]["status"] == "fail" and why in checks["psk-quality"]["reason"]


def test_audit_fails_a_psk_committed_to_a_config_file(tmp_path, capsys):
    psk = new_psk()
    path = key_file(tmp_path, psk)
    src = tmp_path / "src"
    src.mkdir()
    (src / "settings.py").write_text(f'PSK = "{psk}"\n')
    code, checks = audit(tmp_path, capsys, "--psk-file", str(path), "--scan", str(src))
    assert code == EXIT_FAILED
    assert "settings.py:1" in checks["psk-quality"]["reason"]


def test_audit_psk_storage_levels(tmp_path, capsys, monkeypatch):
    psk = new_psk()
    code, checks = audit(tmp_path, capsys, "--psk-file", str(key_file(tmp_path, psk, 0o644)))
    assert code == EXIT_FAILED and "0644" in checks["psk-storage"]["reason"]
    monkeypatch.setenv("EVOSPIKENET_PSK", psk)
    code, checks = audit(tmp_path, capsys)
    assert checks["psk-storage"]["status"] == "warn" and code == EXIT_OK
    monkeypatch.delenv("EVOSPIKENET_PSK")
    code, checks = audit(tmp_path, capsys)
    assert checks["psk-storage"]["status"] == "fail" and code == EXIT_FAILED


def test_crypto_backend_versions_are_checked_against_the_table():
    table = {"ring": {"min": "0.17.12", "reason": "advisory"}}
    assert check_crypto_backends({"ring": "0.17.14"}, table).status == "pass"
    old = check_crypto_backends({"ring": "0.17.8"}, table)
    assert old.status == "fail" and "0.17.8 < 0.17.12" in old.reason
    assert check_crypto_backends({}, table).status == "fail"
    # The shipped table and this build agree.
    from evospikenet import _native

    assert check_crypto_backends(_native.crypto_backends()).status == "pass"
    assert set(_native.crypto_backends()) >= {"ring", "x25519-dalek", "zenoh"}


def test_console_script_and_router_alias(tmp_path):
    env = clean_env()
    proc = run([sys.executable, "-m", "evospikenet.cli", "--help"], timeout=60, env=env)
    assert proc.returncode == 0
    for command in ("keygen", "fingerprint", "audit", "monitor", "router"):
        assert command in proc.out
    proc = run(
        [sys.executable, "-m", "evospikenet.cli", "router", "--listen", "nonsense"],
        timeout=60,
        env=env,
    )
    assert proc.returncode == EXIT_USAGE and "evospikenet router: cannot listen" in proc.err
    proc = run([sys.executable, "-m", "evospikenet.cli", "keygen", "--bogus"], timeout=60, env=env)
    assert proc.returncode == EXIT_USAGE
    assert os.environ.get("EVOSPIKENET_PSK") is None


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_key_scan_finds_raw_keys_across_newlines_and_chunk_edges(tmp_path, monkeypatch, chunk):
    """A raw key is bytes: it may hold a newline byte, and it may straddle the scanner's
    read chunks. Either way it is found, on the line it starts on, and once."""
    from evospikenet.cli import key_scan

    monkeypatch.setattr(key_scan, "CHUNK", chunk)
    raw = bytes(range(11, 21)) + b"\n" + bytes(range(200, 221))  # 32 bytes, one newline
    log = tmp_path / "binary.log"
    log.write_bytes(b"INFO a\nINFO b\ndump " + raw + b" end\nINFO c " + raw.hex().encode() + b"\n")
    hits, unreadable = key_scan.scan([str(log)], key_scan.psk_needles(raw.hex()))
    assert unreadable == []
    assert sorted((h.line, h.what) for h in hits) == [
        (3, "PSK (raw bytes)"),
        (5, "PSK (hex)"),  # the raw key's newline ended line 3
    ]
