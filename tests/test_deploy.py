"""The container deployment: docker-compose.yml as the guide publishes it, the image's
Dockerfile, the ``evospikenet-router`` entry point, and the compose nodes' own commands run
as local processes through a local router.

No Docker engine is needed: the compose file is parsed, and its node commands run on this
machine with the compose environment (``NODE_ID``, ``EVOSPIKENET_PSK_FILE``, the Docker
secret's path mapped to a 0600 file of the test), ``router:7447`` replaced by a router on
loopback.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import pytest
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import LOOPBACK_ANY_PORT, new_psk, wait_until
from support.demo import DEMO, NODE_TIMEOUT, REPO, RUN_FLAGS, check_results, require_demo
from support.procs import Proc, clean_env, router_argv, running, start_router

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"

# service -> (NODE_ID, the peer it names), as the guide's compose file has them.
NODE_SERVICES = {"brain-node-1": ("pfc-0", "motor-0"), "brain-node-2": ("motor-0", "pfc-0")}
COMPOSE_ROUTER_ENDPOINT = "tcp/router:7447"
PSK_SECRET = "evospikenet_psk"
PSK_SECRET_PATH = f"/run/secrets/{PSK_SECRET}"
NETWORK = "brain-network"


# --- the compose file ------------------------------------------------------------------------


def load_compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is a test dependency (pip install .[test])")
    return yaml.safe_load(COMPOSE.read_text())


def service_env(service: Mapping) -> dict[str, str]:
    """``environment:`` as a mapping, from either of the compose file's two forms."""
    env = service.get("environment") or {}
    if isinstance(env, Mapping):
        return {k: "" if v is None else str(v) for k, v in env.items()}
    pairs = (item.split("=", 1) for item in env)
    return {p[0]: p[1] if len(p) > 1 else "" for p in pairs}


def service_command(service: Mapping) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def service_networks(service: Mapping) -> list[str]:
    networks = service.get("networks") or []
    return list(networks)


def flag_values(argv: Sequence[str], flag: str) -> list[str]:
    """Every value of ``flag`` (``--flag v`` or ``--flag=v``), comma lists split."""
    values: list[str] = []
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            values += argv[i + 1].split(",")
        elif arg.startswith(flag + "="):
            values += arg[len(flag) + 1 :].split(",")
    return [v for v in values if v]


def set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with the value of ``flag`` replaced, or the flag appended."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == flag and i + 1 < len(out):
            out[i + 1] = value
            return out
        if arg.startswith(flag + "="):
            out[i] = f"{flag}={value}"
            return out
    return [*out, flag, value]


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${VAR}`` / ``$VAR`` substitution, for the variables given."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            pytest.fail(f"the compose file uses ${{{name}}}, which this test does not provide")
        return variables[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)


def local_node_command(argv: Sequence[str], router_locator: str, out_dir: Path) -> list[str]:
    """A compose node's command for this machine: this interpreter, the local router, a
    small brain and a result directory of the test."""
    assert argv[0] in ("python", "python3"), argv
    local = [sys.executable]
    for prev, arg in pairwise(argv):
        if arg == COMPOSE_ROUTER_ENDPOINT:
            arg = router_locator
        elif prev == "--listen":
            arg = LOOPBACK_ANY_PORT
        local.append(arg)
    for flag, value in (
        *RUN_FLAGS.items(),
        ("--out", str(out_dir)),
        ("--timeout", "120"),
    ):
        local = set_flag(local, flag, value)
    return local


def test_compose_services_match_the_guide():
    compose = load_compose()
    services = compose["services"]
    assert {"router", *NODE_SERVICES} <= set(services)
    assert NETWORK in compose["networks"]

    for name, (node_id, peer) in NODE_SERVICES.items():
        service = services[name]
        env = service_env(service)
        assert env["NODE_ID"] == node_id
        # The key comes from a Docker secret (a file), never from the compose file itself
        # nor from an environment variable.
        assert env["EVOSPIKENET_PSK_FILE"] == PSK_SECRET_PATH
        assert "EVOSPIKENET_PSK" not in env
        secrets = [x if isinstance(x, str) else x["source"] for x in service["secrets"]]
        assert secrets == [PSK_SECRET]
        for x in service["secrets"]:
            if isinstance(x, Mapping):
                assert x.get("target", PSK_SECRET) == PSK_SECRET and x["mode"] == 0o400
        assert NETWORK in service_networks(service)
        argv = service_command(service)
        assert argv[:2] == ["python", DEMO], argv
        assert flag_values(argv, "--peer-id") == [peer]
        assert flag_values(argv, "--connect") == [COMPOSE_ROUTER_ENDPOINT]
        # Clients (--connect alone): the router relays their traffic.
        assert flag_values(argv, "--listen") == []
        assert flag_values(argv, "--mode") in ([], ["psk"])
        assert flag_values(argv, "--node-id") in ([], [node_id])
        # A key on the command line would show in `ps` and `docker inspect`.
        assert "--psk" not in " ".join(argv)
        assert "router" in service.get("depends_on", [])

    router = services["router"]
    argv = service_command(router)
    assert argv[0] == "evospikenet-router"
    assert flag_values(argv, "--listen") == ["tcp/0.0.0.0:7447"]
    assert NETWORK in service_networks(router)
    assert compose["secrets"][PSK_SECRET]["file"] == f"./secrets/{PSK_SECRET}"
    # The guide's environment-variable form stays documented next to it.
    assert "EVOSPIKENET_PSK=${EVOSPIKENET_PSK}" in COMPOSE.read_text()
    # No service carries a literal key.
    for name, service in services.items():
        psk = service_env(service).get("EVOSPIKENET_PSK")
        assert psk is None or psk.startswith("${"), name


def test_env_example_holds_a_placeholder_not_a_key():
    lines = ENV_EXAMPLE.read_text().splitlines()
    settings = dict(
        line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")
    )
    assert set(settings) == {"EVOSPIKENET_PSK"}
    assert any("os.urandom(32).hex()" in line for line in lines if line.startswith("#"))
    # Left unchanged it fails closed: the nodes refuse to start instead of running on a
    # key that is in the repository.
    with pytest.raises(ValueError):
        ZenohConfig(psk=settings["EVOSPIKENET_PSK"])


def test_dockerfile_copies_only_existing_sources_and_runs_the_demo():
    text = DOCKERFILE.read_text()
    copies = [
        line.split()[1:-1]
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    assert copies, "the Dockerfile copies nothing"
    for sources in copies:
        # `COPY .` would put a local .env (the PSK) and target/ into the image.
        assert "." not in sources
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    assert any("examples" in sources for sources in copies)
    assert re.search(r'^CMD \["python", "examples/secure_distributed_brain_demo\.py"', text, re.M)


def test_pyproject_declares_the_router_script():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["evospikenet-router"] == "evospikenet.router:main"
    assert project["scripts"]["evospikenet"] == "evospikenet.cli:main"
    assert project["optional-dependencies"]["metrics"] == ["prometheus_client>=0.20"]


# --- the router entry point ------------------------------------------------------------------


@pytest.mark.system
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_router_listens_links_a_node_and_stops_on_signal(sig, psk):
    router, locators = start_router([LOOPBACK_ANY_PORT])
    with running(router):
        # The port the OS chose, not the 0 asked for.
        assert len(locators) == 1 and re.fullmatch(r"tcp/127\.0\.0\.1:[1-9]\d*", locators[0])
        endpoint = locators[0]
        cfg = ZenohConfig(mode="client", connect=[endpoint], psk=psk)
        with ZenohCommunicator("probe", cfg) as comm:
            wait_until(comm.connected_peers, what="a client to link to the router")
        code = router.stop(sig)
    assert code == 0, router.output
    assert "Router stopped" in router.out


@pytest.mark.system
def test_router_relays_encrypted_traffic_between_clients(psk):
    router, locators = start_router(["tcp/127.0.0.1:0"])
    with running(router):
        cfg = ZenohConfig(mode="client", connect=locators, psk=psk)
        with ZenohCommunicator("a", cfg) as a, ZenohCommunicator("b", cfg) as b:
            a.serve("deploy/echo", lambda data: {"echo": data})
            reply = None
            for _ in range(50):
                try:
                    reply = b.request("deploy/echo", {"n": 1}, timeout=1.0)
                    break
                except TimeoutError:
                    continue
            assert reply == {"echo": {"n": 1}}
        assert router.stop() == 0, router.output


@pytest.mark.system
def test_router_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = Proc(router_argv([f"tcp/127.0.0.1:{port}"]), env=clean_env())
        with running(proc):
            code = proc.wait(60)
    assert code == 2, proc.output
    err = proc.err.strip().splitlines()
    assert len(err) == 1, proc.output
    assert f"127.0.0.1:{port}" in err[0] and "in use" in err[0], err[0]
    assert not proc.stdout, proc.output


@pytest.mark.system
def test_router_malformed_endpoint_is_one_line_and_exit_2():
    proc = Proc(router_argv(["not-an-endpoint"]), env=clean_env())
    with running(proc):
        code = proc.wait(60)
    assert code == 2, proc.output
    err = proc.err.strip().splitlines()
    assert len(err) == 1 and "not-an-endpoint" in err[0], proc.output


# --- the compose nodes, run here -------------------------------------------------------------


@pytest.mark.system
@pytest.mark.timeout(NODE_TIMEOUT + 120)
def test_compose_nodes_run_locally_and_match_single_process(tmp_path):
    services = load_compose()["services"]
    require_demo()
    # What `evospikenet keygen --out secrets/evospikenet_psk` writes, where Docker would
    # mount it.
    secret = tmp_path / PSK_SECRET
    secret.write_text(new_psk() + "\n")
    secret.chmod(0o600)
    router, locators = start_router(["tcp/127.0.0.1:0"])
    nodes: dict[str, Proc] = {}
    with running(router) as started:
        for name in NODE_SERVICES:
            service = services[name]
            env = {
                k: interpolate(v, {}).replace(PSK_SECRET_PATH, str(secret))
                for k, v in service_env(service).items()
            }
            argv = local_node_command(service_command(service), locators[0], tmp_path)
            nodes[env["NODE_ID"]] = Proc(argv, env=clean_env(env), cwd=REPO)
            started.append(nodes[env["NODE_ID"]])
        for proc in nodes.values():
            proc.wait(NODE_TIMEOUT)
        assert router.stop() == 0, router.output
    assert sorted(nodes) == sorted(node for node, _ in NODE_SERVICES.values())
    check_results(tmp_path, nodes)
