"""The examples run as they are documented."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_encrypted_spikes_local_runs():
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "encrypted_spikes_local.py"),
            "--steps",
            "30",
            "--neurons",
            "2000",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if "steps/s" in line]
    assert len(lines) == 2
    for line in lines:
        assert "30 messages sent" in line and "0 decryption failures" in line
