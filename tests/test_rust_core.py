"""The Rust core's own tests (`cargo test`), run as part of the pytest suite."""

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(1800)
def test_cargo_test_passes():
    if not (ROOT / "Cargo.toml").exists():
        pytest.skip("the Rust sources are not next to these tests (installed package only)")
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed: the Rust core tests cannot be built here")
    proc = subprocess.run(
        [cargo, "test", "--locked", "--all-targets"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith("test result:")]
    print("\n".join(summary))
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-20000:]
    assert summary, "cargo ran no test"
