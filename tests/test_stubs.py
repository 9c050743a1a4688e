"""The hand-written stub `_native.pyi` matches the compiled module (mypy's stubtest)."""

import subprocess
import sys
from pathlib import Path

import pytest

ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")


@pytest.mark.timeout(600)
def test_native_stub_matches_module():
    pytest.importorskip("mypy", reason="mypy is a test dependency (pip install .[test])")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "evospikenet._native",
            "--allowlist",
            str(ALLOWLIST),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-10000:] + proc.stderr[-5000:]
