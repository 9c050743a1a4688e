"""Brain nodes on separate "machines": Linux network namespaces joined in a star.

The router namespace sits in the middle with one veth pair and one /24 per node namespace
(``10.200.N.1`` on the router side, ``10.200.N.2`` on the node side), and runs
``evospikenet-router`` on its side of every link. Two variants:

- isolated: node namespaces have no route to each other, so the Zenoh router is the only
  way between them. Zenoh *clients* talk through it (the router relays).
- routed: the router namespace also forwards IP, as a network between machines does. Zenoh
  *peers* need this: zenoh 1.10 routers do not relay between peers; the router introduces
  them (gossip) and they link to each other's listeners. The demo's nodes started with
  ``--connect`` alone are clients, and run in the isolated variant.

All addresses exist only inside namespaces the test creates and deletes; nothing touches
the host's interfaces (`support.netns`). Needs root and iproute2; skips otherwise.
"""

from __future__ import annotations

import subprocess
import textwrap
from itertools import chain

import pytest
from support.comm import new_psk
from support.demo import DEMO, NODE_TIMEOUT, REPO, RUN_FLAGS, check_results, require_demo
from support.netns import ZENOH_PORT, star_network
from support.procs import Proc, clean_env, running, start_router

pytestmark = pytest.mark.system


# Runs in a leaf: whether the other leaf's address answers at all (a refused connection is
# an answer; no route or a timeout is not).
REACHABLE = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], 9), timeout=3).close()
    except ConnectionRefusedError:
        print("reachable")
    except OSError as e:
        print("unreachable:", e.strerror or e)
    else:
        print("reachable")
    """
)

# Both echo ends: argv = node id, Zenoh mode, router endpoint, own listen endpoint or "-".
_OPEN = """
import json, os, sys, time
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

node, mode, router, listen = sys.argv[1:5]
cfg = ZenohConfig(mode=mode, connect=[router], listen=None if listen == "-" else [listen],
                  psk=os.environ["EVOSPIKENET_PSK"])
"""

# Serves an encrypted echo until its stdin closes.
ECHO_SERVER = _OPEN + textwrap.dedent(
    """
    with ZenohCommunicator(node, cfg) as comm:
        comm.serve("netns/echo", lambda data: {"echo": data, "by": node})
        print("serving", flush=True)
        sys.stdin.read()
        print("decrypt_failures", comm.stats()["decrypt_failures"], flush=True)
    """
)

# Asks until the server answers (the first requests may find no route yet).
ECHO_CLIENT = _OPEN + textwrap.dedent(
    """
    with ZenohCommunicator(node, cfg) as comm:
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = comm.request("netns/echo", {"from": node}, timeout=1.0)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        print("reply", json.dumps(reply, sort_keys=True), flush=True)
        print("decrypt_failures", comm.stats()["decrypt_failures"], flush=True)
    """
)


@pytest.mark.parametrize(
    ("mode", "routed"),
    [("client", False), ("peer", True)],
    ids=["clients-relayed-by-router", "peers-introduced-by-router"],
)
def test_encrypted_echo_between_namespaces_through_the_router(mode, routed):
    with star_network(2, routed=routed) as star:
        probe = Proc(star.python_in_leaf(1, "-c", REACHABLE, star.leaf_address(2)))
        with running(probe):
            assert probe.wait(30) == 0, probe.output
        expected = "reachable" if routed else "unreachable"
        assert probe.out.split(":")[0].strip() == expected, probe.output

        endpoints = star.router_endpoints()
        router, locators = start_router(endpoints, star.exec_in(star.router_ns))
        env = clean_env({"EVOSPIKENET_PSK": new_psk()})

        def listen(i: int) -> str:
            return f"tcp/{star.leaf_address(i)}:0" if mode == "peer" else "-"

        with running(router) as started:
            assert sorted(locators) == sorted(endpoints)
            server = Proc(
                star.python_in_leaf(1, "-c", ECHO_SERVER, "left", mode, endpoints[0], listen(1)),
                env=env,
                stdin=subprocess.PIPE,
            )
            started.append(server)
            server.wait_for_line("serving")
            client = Proc(
                star.python_in_leaf(2, "-c", ECHO_CLIENT, "right", mode, endpoints[1], listen(2)),
                env=env,
            )
            started.append(client)
            assert client.wait(90) == 0, client.output
            server.close_stdin()
            assert server.wait(30) == 0, server.output
            assert router.stop() == 0, router.output
    out = client.out
    assert 'reply {"by": "left", "echo": {"from": "right"}}' in out, client.output
    assert "decrypt_failures 0" in out, client.output
    assert "decrypt_failures 0" in server.out, server.output


@pytest.mark.timeout(NODE_TIMEOUT + 120)
def test_demo_nodes_in_separate_namespaces_match_single_process(tmp_path):
    """default_brain's three regions on three nodes, one per namespace, PSK mode."""
    require_demo()
    node_ids = ["motor-0", "pfc-0", "visual-0"]
    env = clean_env({"EVOSPIKENET_PSK": new_psk()})  # not on the command line: `ps` shows it
    nodes: dict[str, Proc] = {}
    # No IP forwarding: the nodes (Zenoh clients: --connect only) reach each other only
    # through the router process.
    with star_network(len(node_ids), routed=False) as star:
        router, _ = start_router(star.router_endpoints(), star.exec_in(star.router_ns))
        with running(router) as started:
            for i, node in enumerate(node_ids, start=1):
                flags = {
                    "--node-id": node,
                    "--peer-id": ",".join(n for n in node_ids if n != node),
                    "--mode": "psk",
                    "--connect": f"tcp/{star.router_address(i)}:{ZENOH_PORT}",
                    **RUN_FLAGS,
                    "--out": str(tmp_path),
                    "--timeout": "120",
                }
                argv = star.python_in_leaf(i, str(REPO / DEMO), *chain.from_iterable(flags.items()))
                nodes[node] = Proc(argv, env=env, cwd=REPO)
                started.append(nodes[node])
            for proc in nodes.values():
                proc.wait(NODE_TIMEOUT)
            assert router.stop() == 0, router.output
    check_results(tmp_path, nodes)
