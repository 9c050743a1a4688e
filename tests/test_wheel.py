"""The wheel installs and runs without Rust: built with `maturin build --release` (the
command the release workflow runs), installed into a fresh virtual environment, and the
demo run from it with no cargo or rustc on PATH. The release workflow itself is checked
for what can be checked here: it parses, and builds with the same arguments."""

from __future__ import annotations

import os
import shutil
import sysconfig
import venv
from pathlib import Path

import pytest
from support.demo import DEMO_PATH, REPO
from support.procs import clean_env, run

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"

# What the release workflow passes to `maturin build` (`args:`), where the test puts the
# wheel (`--out`) aside.
BUILD_ARGS = ["--release", "--out", "dist"]


def load_workflow() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is a test dependency (pip install .[test])")
    return yaml.safe_load(WORKFLOW.read_text())


def maturin_steps(workflow: dict, command: str) -> list[dict]:
    return [
        step["with"]
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if str(step.get("uses", "")).startswith("PyO3/maturin-action@")
        and step["with"]["command"] == command
    ]


def test_release_workflow_builds_every_platform_and_the_sdist_as_the_test_does():
    workflow = load_workflow()
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    assert "tags" in triggers["push"]
    builds = maturin_steps(workflow, "build")
    assert builds and all(b["args"].split() == BUILD_ARGS for b in builds)
    matrix = workflow["jobs"]["wheels"]["strategy"]["matrix"]["include"]
    oses = {m["os"].split("-")[0] for m in matrix}
    assert oses == {"ubuntu", "macos", "windows"}
    assert maturin_steps(workflow, "sdist")


def without_rust(env: dict[str, str]) -> dict[str, str]:
    """`env` with no directory on PATH that holds cargo or rustc, and no Rust variables."""
    path = [
        d
        for d in env.get("PATH", "").split(os.pathsep)
        if d and not (Path(d, "cargo").exists() or Path(d, "rustc").exists())
    ]
    out = {k: v for k, v in env.items() if not k.startswith(("CARGO", "RUSTUP", "RUSTC"))}
    out["PATH"] = os.pathsep.join(path)
    return out


@pytest.mark.system
@pytest.mark.timeout(1800)
def test_wheel_installs_and_runs_the_demo_without_rust(tmp_path):
    if shutil.which("cargo") is None:
        pytest.skip("building the wheel needs cargo")
    beside = Path(sysconfig.get_path("scripts")) / "maturin"
    maturin = str(beside) if beside.exists() else shutil.which("maturin")
    if maturin is None:
        pytest.skip("maturin is a test dependency (pip install .[test])")
    dist = tmp_path / "dist"
    args = [a if a != "dist" else str(dist) for a in BUILD_ARGS]
    build = run([maturin, "build", *args], timeout=1700, cwd=REPO)
    assert build.returncode == 0, build.output
    wheels = list(dist.glob("evospikenet-*.whl"))
    assert len(wheels) == 1, build.output
    # One wheel for every CPython from 3.10 on.
    assert "-cp310-abi3-" in wheels[0].name, wheels[0].name

    # A fresh environment: numpy comes from this interpreter's site-packages (no network
    # needed), evospikenet only from the wheel.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=True).create(env_dir)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    plain = without_rust(clean_env())
    assert shutil.which("cargo", path=plain["PATH"]) is None
    install = run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall",
         wheels[0]],
        timeout=300, env=plain,
    )  # fmt: skip
    assert install.returncode == 0, install.output
    where = run([python, "-c", "import evospikenet; print(evospikenet.__file__)"],
                timeout=60, env=plain, cwd=tmp_path)  # fmt: skip
    assert str(env_dir) in where.out, where.output
    assert sysconfig.get_paths()["purelib"] not in where.out

    demo = run(
        [python, DEMO_PATH, "--local", "--nodes", "2", "--steps", "20", "--neurons", "200",
         "--out", tmp_path / "out", "--quiet"],
        timeout=600, env=plain, cwd=tmp_path,
    )  # fmt: skip
    assert demo.returncode == 0, demo.output
    assert "spikes identical to a single-process run of the same network: yes" in demo.out
