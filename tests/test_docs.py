"""The documentation runs as written: every fenced ``python`` block of README.md and
docs/*.md is executed on its own, and what it is documented to print is what it prints.

Each block runs as a fresh script in a fresh process, in a network namespace of its own
when one can be made (so the default loopback rendezvous, 127.0.0.1:7447, is private to
it), with a fresh ``EVOSPIKENET_PSK`` in its environment, as the README's set-up says.
Blocks that show an example file are compared with it (the example's own test runs it);
the markers are described in ``tests/support/docs.py``.
"""

from __future__ import annotations

import sys

import pytest
from support.comm import new_psk
from support.docs import REPO, all_blocks, blocks, doc_files, matches_output
from support.netns import private_loopback
from support.procs import clean_env, run

KNOWN_MARKERS = {"file", "not-run", "output"}
BLOCK_TIMEOUT = 120


def _runnable() -> list:
    return [b for b in all_blocks() if b.lang == "python" and b.marker is None]


def _expected_output(block) -> str | None:
    """The ``<!-- output -->`` block that follows ``block`` in its file, if any."""
    in_file = blocks(block.path)
    i = next(k for k, b in enumerate(in_file) if b.line == block.line)
    if i + 1 < len(in_file):
        nxt = in_file[i + 1]
        if nxt.marker == "output" and not nxt.argument:
            return nxt.text
    return None


def test_the_docs_have_python_blocks_and_known_markers():
    assert (REPO / "docs" / "communicator.md") in doc_files()
    assert _runnable(), "no runnable python block found"
    readme = [b for b in blocks(REPO / "README.md") if b.lang == "python"]
    assert readme, "the README shows no Python"
    not_run = []
    for b in all_blocks():
        if b.marker is None:
            continue
        assert b.marker in KNOWN_MARKERS, f"{b.where}: unknown marker {b.marker!r}"
        if b.marker == "not-run":
            assert b.argument, f"{b.where}: a not-run block must say why"
            not_run.append(b.where)
        if b.marker == "output":
            assert b.lang == "text", f"{b.where}: an output block is a ``text`` block"
    # Rare by design: a block that cannot run alone becomes an example that a test runs.
    assert len(not_run) <= 3, f"too many blocks are not run: {not_run}"


@pytest.mark.parametrize(
    "block", [b for b in all_blocks() if b.marker == "file"], ids=lambda b: b.where
)
def test_a_shown_example_is_the_file(block):
    path = REPO / block.argument
    assert path.is_file(), f"{block.where}: {block.argument} does not exist"
    assert block.text == path.read_text(), (
        f"{block.where} differs from {block.argument}: copy the file into the docs again"
    )


def test_every_documented_output_has_its_source():
    for b in all_blocks():
        if b.marker != "output":
            continue
        if b.argument:
            script = b.argument.split()[0]
            assert (REPO / script).is_file(), f"{b.where}: no {script}"
        else:
            previous = [p for p in blocks(b.path) if p.line < b.line]
            assert previous and previous[-1].lang == "python" and previous[-1].marker is None, (
                f"{b.where}: an output block follows the python block it shows the output of"
            )


@pytest.mark.parametrize("block", _runnable(), ids=lambda b: b.where)
def test_python_block_runs(block, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(block.text)
    # Blocks run as from a checkout's root (paths such as examples/networks/...), but in
    # a folder of their own, so whatever they write stays out of the repository.
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = clean_env({"EVOSPIKENET_PSK": new_psk(), "PYTHONUNBUFFERED": "1"})
    with private_loopback() as netns:
        proc = run(
            [*netns, sys.executable, str(script)], timeout=BLOCK_TIMEOUT, env=env, cwd=tmp_path
        )
    assert proc.returncode == 0, f"{block.where} failed\n{block.text}\n{proc.output}"
    expected = _expected_output(block)
    if expected is not None:
        assert matches_output(expected, proc.out), (
            f"{block.where}: documented output\n{expected}\nactual output\n{proc.out}"
        )


def test_the_diagram_is_drawn_by_its_script(tmp_path):
    import xml.etree.ElementTree as ET

    out = tmp_path / "mesh.svg"
    proc = run([sys.executable, REPO / "docs" / "diagram.py", out], timeout=60, env=clean_env())
    assert proc.returncode == 0, proc.output
    svg = out.read_text()
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    for shown in ("node-1", "node-2", "node-3", "region visual", "region pfc", "region motor"):
        assert shown in texts
    for topic in ("spikes/visual/pfc", "spikes/pfc/motor", "spikes/motor/pfc"):
        assert f"evospikenet/{topic}" in texts
    assert "Zenoh router" in texts
    assert svg == (REPO / "docs" / "brain-mesh.svg").read_text(), (
        "docs/brain-mesh.svg is out of date: run python3 docs/diagram.py"
    )
