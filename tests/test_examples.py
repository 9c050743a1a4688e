"""The examples run as they are documented."""

import subprocess
import sys
from pathlib import Path

import pytest
from support.comm import new_psk
from support.docs import matches_output, output_block
from support.netns import private_loopback
from support.procs import Proc, clean_env, run, running

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


def _in_private_loopback(netns: list[str], script: str, *args: str, env: dict) -> Proc:
    return Proc([*netns, sys.executable, EXAMPLES / script, *args], env=env, stdin=subprocess.PIPE)


def test_tour_prints_what_the_readme_shows():
    # The README's two terminals, on the default configuration (the loopback rendezvous,
    # made private), with one PSK in both environments.
    env = clean_env({"EVOSPIKENET_PSK": new_psk(), "PYTHONUNBUFFERED": "1"})
    with private_loopback() as netns, running() as procs:
        subscriber = _in_private_loopback(netns, "tour_subscriber.py", env=env)
        procs.append(subscriber)
        subscriber.wait_for_line("node-2 waiting", timeout=60)
        publisher = _in_private_loopback(netns, "tour_publisher.py", env=env)
        procs.append(publisher)
        assert publisher.wait(90) == 0, publisher.output
        assert subscriber.wait(90) == 0, subscriber.output
    for proc, name in ((subscriber, "tour_subscriber.py"), (publisher, "tour_publisher.py")):
        expected = output_block(f"examples/{name}").text
        assert matches_output(expected, proc.out), f"documented:\n{expected}\n{proc.output}"
        assert "Traceback" not in proc.err and "WARNING" not in proc.err, proc.output


def test_the_guides_dh_lines_deliver_their_first_publish():
    # Two nodes, no PSK: each pastes the other's public key, completes, and publishes once
    # straight away, as the guide writes it; each must receive the other's message.
    env = clean_env({"PYTHONUNBUFFERED": "1"})
    with private_loopback() as netns, running() as procs:
        one = _in_private_loopback(netns, "dh_guide_node.py", "node-1", "node-2", env=env)
        procs.append(one)
        two = _in_private_loopback(netns, "dh_guide_node.py", "node-2", "node-1", env=env)
        procs.append(two)
        key_one = one.wait_for_line("Public key: ", timeout=60).split()[2]
        key_two = two.wait_for_line("Public key: ", timeout=60).split()[2]
        # As two people would: node-1 gets its key first and publishes at once, while
        # node-2's user is still pasting. (If completing waits for the peer, node-1's line
        # comes only after node-2 completed: then this wait simply runs out.)
        one.write(key_two + "\n")
        one.read_line("node-2 fingerprint:", timeout=5)
        two.write(key_one + "\n")
        codes = (one.wait(60), two.wait(60))
    for proc, peer in ((one, "node-2"), (two, "node-1")):
        assert codes == (0, 0), proc.output
        assert f"received: {{'data': 'secret from {peer}'}}" in proc.out, proc.output
        assert "Decryption failed" not in proc.err, proc.output
    expected = output_block("examples/dh_guide_node.py node-1 node-2").text
    assert matches_output(expected, one.out), f"documented:\n{expected}\n{one.output}"
