"""The examples run as they are documented."""

import sys
from pathlib import Path

import pytest
from support.netns import private_loopback
from support.procs import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.system
def test_encrypted_spikes_local_runs():
    # Two processes on the default configuration: the loopback rendezvous, made private.
    with private_loopback() as netns:
        out = run(
            [*netns, sys.executable, EXAMPLES / "encrypted_spikes_local.py", "--steps", "30",
             "--neurons", "2000"],
            timeout=180,
        )  # fmt: skip
    assert out.returncode == 0, out.output
    lines = [line for line in out.out.splitlines() if "steps/s" in line]
    assert len(lines) == 2
    for line in lines:
        assert "30 messages sent" in line and "0 decryption failures" in line
