"""``evospikenet audit --connect`` and ``evospikenet monitor --once`` against a live mesh:
a router on a loopback port chosen by the OS, nodes with the right PSK, a node with
another PSK, and a raw eclipse-zenoh session publishing plaintext."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator

import pytest
from evospikenet.cli.common import EXIT_FAILED, EXIT_OK
from evospikenet.router import open_router
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import LOOPBACK_ANY_PORT, RawZenoh, new_psk, wait_until
from support.procs import Proc, clean_env, running

pytestmark = pytest.mark.system

CLI = [sys.executable, "-m", "evospikenet.cli"]


class LiveMesh:
    """A router, and nodes joined to it that publish until the mesh is closed."""

    def __init__(self) -> None:
        self.router = open_router([LOOPBACK_ANY_PORT])
        self.locator = self.router.locators[0]
        self.nodes: list[ZenohCommunicator] = []
        self.raw: list[RawZenoh] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def node(self, node_id: str, psk: str) -> ZenohCommunicator:
        comm = ZenohCommunicator(node_id, ZenohConfig(connect=[self.locator], psk=psk))
        self.nodes.append(comm)
        wait_until(comm.connected_peers, what=f"{node_id} to reach the router")
        return comm

    def raw_session(self) -> RawZenoh:
        pytest.importorskip("zenoh", reason="eclipse-zenoh is a test dependency")
        r = RawZenoh([self.locator])
        self.raw.append(r)
        wait_until(lambda: list(r.session.info.routers_zid()), what="the raw session to link")
        return r

    def keep_publishing(self, publish, period: float = 0.02) -> None:
        def loop() -> None:
            while not self.stop.wait(period):
                publish()

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        self.threads.append(t)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        for r in self.raw:
            r.close()
        for n in self.nodes:
            n.close()
        self.router.close()


@pytest.fixture
def live() -> Iterator[LiveMesh]:
    with contextlib.closing(LiveMesh()) as m:
        yield m


def psk_env(tmp_path, psk: str) -> dict[str, str]:
    path = tmp_path / "psk"
    path.write_text(psk)
    path.chmod(0o600)
    return clean_env({"EVOSPIKENET_PSK_FILE": str(path)})


def run_cli(args: list[str], env: dict[str, str], timeout: float = 90) -> Proc:
    with running(Proc([*CLI, *args], env=env)) as procs:
        procs[0].wait(timeout)
        return procs[0]


def test_audit_names_plaintext_and_wrong_key_senders(live, tmp_path):
    psk = new_psk()
    good = live.node("good-node", psk)
    wrong = live.node("wrong-key-node", new_psk())
    raw = live.raw_session()
    live.keep_publishing(lambda: good.publish("spikes/pfc", {"n": 1}))
    live.keep_publishing(lambda: wrong.publish("spikes/motor", {"n": 2}))
    live.keep_publishing(lambda: raw.put("evospikenet/spikes/raw", b"plain bytes"))
    proc = run_cli(
        ["audit", "--connect", live.locator, "--duration", "3", "--json"], psk_env(tmp_path, psk)
    )
    assert proc.returncode == EXIT_FAILED, proc.output
    report = json.loads(proc.out)
    network = next(c for c in report["checks"] if c["name"] == "network")
    assert network["status"] == "fail", network
    reason = network["reason"]
    assert "'wrong-key-node'" in reason and "undecryptable" in reason and "spikes/motor" in reason
    assert "without an evospikenet header" in reason and "plaintext" in reason
    assert "spikes/raw" in reason
    assert "good-node" not in reason
    rows = {(r["sender"], r["topic"]): r for r in report["senders"]}
    assert rows[("good-node", "spikes/pfc")]["received"] > 0
    assert rows[("wrong-key-node", "spikes/motor")]["undecryptable"] > 0
    assert rows[(None, "spikes/raw")]["plaintext"] > 0
    assert psk not in proc.out + proc.err


def test_audit_with_a_0644_psk_file_still_reports_every_check(live, tmp_path):
    env = psk_env(tmp_path, new_psk())
    os.chmod(env["EVOSPIKENET_PSK_FILE"], 0o644)
    proc = run_cli(["audit", "--connect", live.locator, "--duration", "1", "--json"], env)
    assert proc.returncode == EXIT_FAILED, proc.output
    checks = {c["name"]: c for c in json.loads(proc.out)["checks"]}
    assert "0644" in checks["psk-storage"]["reason"]
    assert checks["network"]["status"] == "fail" and "0644" in checks["network"]["reason"]


def test_audit_passes_on_a_clean_mesh(live, tmp_path):
    psk = new_psk()
    a = live.node("pfc-0", psk)
    b = live.node("motor-0", psk)
    live.keep_publishing(lambda: a.publish("spikes/pfc", {"n": 1}))
    live.keep_publishing(lambda: b.publish("spikes/motor", b"\x01\x02", serialize="raw"))
    proc = run_cli(["audit", "--connect", live.locator, "--duration", "3"], psk_env(tmp_path, psk))
    assert proc.returncode == EXIT_OK, proc.output
    network = next(line for line in proc.out.splitlines() if " network " in line)
    assert network.startswith("PASS") and "2 sender(s)" in network, proc.output


def test_monitor_once_exits_non_zero_under_a_wrong_psk_flood(live, tmp_path):
    psk = new_psk()
    good = live.node("good-node", psk)
    attacker = live.node("flooder", new_psk())
    live.keep_publishing(lambda: good.publish("spikes/pfc", {"n": 1}), period=0.05)
    live.keep_publishing(lambda: attacker.publish("spikes/pfc", {"n": 0}), period=0.005)
    proc = run_cli(
        [
            "monitor",
            "--connect",
            live.locator,
            "--once",
            "--duration",
            "3",
            "--alert-failures",
            "20",
        ],
        psk_env(tmp_path, psk),
    )
    assert proc.returncode == EXIT_FAILED, proc.output
    assert "ERROR evospikenet.monitor: Decryption failures" in proc.err, proc.output
    assert "'flooder'" in proc.err
    assert psk not in proc.out + proc.err


def test_monitor_once_passes_and_serves_metrics_on_a_clean_mesh(live, tmp_path):
    pytest.importorskip("prometheus_client", reason="the metrics extra is a test dependency")
    import urllib.request

    from support.procs import free_ports

    psk = new_psk()
    good = live.node("good-node", psk)
    live.keep_publishing(lambda: good.publish("spikes/pfc", {"n": 1}))
    (port,) = free_ports(1)
    env = psk_env(tmp_path, psk)
    with running(
        Proc(
            [
                *CLI,
                "monitor",
                "--connect",
                live.locator,
                "--once",
                "--duration",
                "4",
                "--alert-failures",
                "0",
                "--prometheus",
                str(port),
            ],
            env=env,
        )
    ) as procs:
        proc = procs[0]

        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return ""
            return text if 'sender="good-node"' in text else ""

        metrics = wait_until(scrape, timeout=20, what="metrics naming good-node")
        assert proc.wait(60) == EXIT_OK, proc.output
    assert "evospikenet_received_total" in metrics
    assert "evospikenet_sender_messages_total{node=" in metrics
    assert 'outcome="received"' in metrics
    assert "good-node" in proc.out


def test_a_node_serves_its_metrics_while_open(tmp_path):
    pytest.importorskip("prometheus_client", reason="the metrics extra is a test dependency")
    import urllib.request

    from support.procs import free_ports

    psk = new_psk()
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    cfg = ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk, metrics_port=port)
    assert cfg.metrics_port == port
    with ZenohCommunicator("metered", cfg) as node:
        node.subscribe("spikes/x", lambda _d: None)
        with ZenohCommunicator("other", ZenohConfig(connect=node.locators, psk=psk)) as other:
            wait_until(other.connected_peers, what="the two nodes to link")
            wait_until(
                lambda: other.publish("spikes/x", {"n": 1}) or node.stats()["received"],
                what="a message to arrive",
            )
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        assert 'evospikenet_received_total{node="metered"}' in text
        assert 'sender="other",topic="spikes/x"' in text
    # close() stopped the server and freed the port.
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_present_nodes_lists_the_liveliness_tokens_of_dh_nodes(live):
    psk = new_psk()
    for node_id in ("pfc-0", "motor-0"):
        comm = ZenohCommunicator(
            node_id, ZenohConfig(connect=[live.locator], psk=psk, key_exchange="auto")
        )
        live.nodes.append(comm)
    # A client, as the monitor is with --connect: the router answers for every node.
    watcher = ZenohCommunicator("watcher", ZenohConfig(mode="client", connect=[live.locator]))
    live.nodes.append(watcher)
    wait_until(
        lambda: watcher.present_nodes(timeout=0.5) == ["motor-0", "pfc-0"],
        timeout=20,
        what="both presence tokens",
    )
    live.nodes.pop(0).close()
    wait_until(
        lambda: watcher.present_nodes(timeout=0.5) == ["motor-0"],
        timeout=20,
        what="pfc-0's token to go",
    )
    with pytest.raises(ValueError, match="timeout"):
        watcher.present_nodes(timeout=-1)
