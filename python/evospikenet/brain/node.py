"""Run some regions of a :class:`~evospikenet.brain.Network` on this node and exchange
spikes with the nodes that run the others, over an (encrypted) ``ZenohCommunicator``.

For every pair (local source region, remote target region) joined by a projection, one
message per lookahead window (the smallest delay among the projections that cross
nodes) carries that window's spikes on ``spikes/{source}/{target}``, each step's sorted
indices as delta-varints or as a bitmap, whichever is smaller. Synchronization is
conservative, as NEST does it: step ``t`` of a region is computed only once every input
it depends on (remote spikes of step ``t - delay``) has arrived, so a node waits for a
late or slow peer instead of skipping a step; a peer that never delivers raises
:class:`TimeoutError` naming the region and the node.

Before step 0 all nodes meet at a start barrier (each serves ``brain/ready/{node_id}``
once its subscriptions exist and asks every peer's), so nothing published at step 0 is
sent before its receivers listen; there each node also checks that its peers run the
same network, seed, number of steps and assignment (:class:`RunMismatchError`). A
message lost on the way (a router restarting, a link dropping) is asked for again: a node
that has waited a second for a step requests it from its source node
(``brain/resend/{node_id}``), which keeps its last 4096 steps per destination.

The step loop, the publishing, the receiving, the waiting and the resend requests all
run in Rust (``src/engine/exchange.rs``) with the GIL released: no Python runs per
message or per step.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from evospikenet.brain.network import Network, Raster
from evospikenet.brain.record import Record, record_from_engine
from evospikenet.errors import RunMismatchError
from evospikenet.zenoh_comm import ZenohCommunicator

log = logging.getLogger("evospikenet.brain")


def assign_regions(
    network: Network, node_ids: Sequence[str], nodes: Mapping[str, Sequence[str]] | None = None
) -> dict[str, str]:
    """Deterministic region -> node assignment; every node computes the same map from the
    same ids.

    1. ``nodes`` (a network file's ``[nodes]`` table: node id -> regions), if given;
    2. otherwise the compose convention: a node whose id is a region's name, or that name
       and ``-<number>`` (``pfc-0``), runs that region (the first such node in sorted
       order, if several);
    3. the regions left are shared round robin, in declaration order, among all the node
       ids in sorted order.
    """
    ids = sorted(set(node_ids))
    if not ids:
        raise ValueError("at least one node id is needed")
    if nodes is not None:
        unknown = [n for n in ids if n not in nodes]
        if unknown:
            raise ValueError(
                f"node {unknown[0]!r} is not in the network's [nodes] table "
                f"(it lists {', '.join(sorted(nodes))})"
            )
        table = {r: node for node, regions in nodes.items() for r in regions}
        missing = [r for r in network.region_names if r not in table]
        if missing:
            raise ValueError(f"no node runs region(s) {', '.join(missing)}")
        return {r: table[r] for r in network.region_names}
    out: dict[str, str] = {}
    names = set(network.region_names)
    for node in ids:
        for name in (node, re.sub(r"-\d+$", "", node)):
            if name in names and name not in out:
                out[name] = node
                break
    rest = [r for r in network.region_names if r not in out]
    out.update({r: ids[i % len(ids)] for i, r in enumerate(rest)})
    return {r: out[r] for r in network.region_names}


@dataclass
class RunMetrics:
    """What a node did, for the progress line and the summary."""

    steps: int = 0
    spikes: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    duplicates: int = 0
    resend_requests: int = 0
    wait_seconds: float = 0.0
    wall_seconds: float = 0.0
    per_region_spikes: dict[str, int] = field(default_factory=dict)


class BrainNode:
    """The regions of ``network`` that ``assignment`` gives to ``comm.node_id``.

    Args:
        network: The whole network (every node must use the same one and the same seed).
        comm: This node's communicator (PSK or DH mode; sessions already set up).
        assignment: region -> node id for every region (see :func:`assign_regions`).
        timeout: Seconds to wait for a peer's spikes (and at the start barrier) before
            raising :class:`TimeoutError`.
    """

    def __init__(
        self,
        network: Network,
        comm: ZenohCommunicator,
        assignment: Mapping[str, str],
        *,
        timeout: float = 30.0,
    ) -> None:
        missing = set(network.region_names) - set(assignment)
        if missing:
            raise ValueError(f"regions without a node: {sorted(missing)}")
        self.network = network
        self.comm = comm
        self.node_id = comm.node_id
        self.assignment = dict(assignment)
        self.timeout = timeout
        self.local = [r for r in network.region_names if assignment[r] == self.node_id]
        if not self.local:
            raise ValueError(f"node {self.node_id!r} runs no region of this network")
        self.peers = sorted({n for n in assignment.values() if n != self.node_id})
        # (source, target) pairs crossing the node boundary, in a fixed order.
        self.outgoing = sorted(
            {
                (p.source, p.target)
                for p in network.projections
                if assignment[p.source] == self.node_id and assignment[p.target] != self.node_id
            }
        )
        self.incoming_pairs = sorted(
            {
                (p.source, p.target)
                for p in network.projections
                if assignment[p.target] == self.node_id and assignment[p.source] != self.node_id
            }
        )
        #: What :meth:`run` recorded.
        self.record: Record | None = None
        # The engine (synapses built) and its exchange (subscriptions declared) exist
        # before this node answers the start barrier.
        self._engine = network.engine(self.local)
        self._engine.exchange_with(comm, [assignment[r] for r in network.region_names], timeout)
        self._ran = False
        # The start barrier: each node asks every peer with its run's description and
        # gets the peer's back (None until the peer's run started); both sides compare.
        self._run: dict | None = None
        self._mismatch: str | None = None
        self._early: dict[str, object] = {}  # peers that asked before our run started
        self._ready_lock = threading.Lock()
        self._handles = [comm.serve(f"brain/ready/{self.node_id}", self._ready)]

    def _ready(self, request) -> dict | None:
        """A peer at the start barrier: note a disagreement, answer with our run."""
        try:
            peer, theirs = str(request["node"]), request["run"]
        except (KeyError, TypeError):
            return None
        with self._ready_lock:
            if self._mismatch is None and self._run is not None:
                self._mismatch = _first_difference(self._run, theirs, peer)
            elif self._run is None:
                self._early[peer] = theirs
            return self._run

    def describe_run(self, steps: int) -> dict:
        """What every node of one run must agree on: steps, seed, region sizes, a digest
        of the whole network, and the region assignment."""
        net = self.network
        return {
            "steps": int(steps),
            "seed": int(net.seed),
            "regions": [[r.name, int(r.n)] for r in net.regions],
            "network": hashlib.sha256(repr(net).encode()).hexdigest()[:16],
            "assignment": sorted(self.assignment.items()),
        }

    def wait_for_peers(self, steps: int | None = None) -> None:
        """The start barrier: every peer answers, and runs what this node runs.

        Raises:
            RunMismatchError: a peer's network, seed, steps or assignment differs (the
                peer raises it too).
            TimeoutError: a peer did not answer within ``timeout``.
        """
        run = self.describe_run(steps if steps is not None else 0)
        with self._ready_lock:
            self._run = run
            for peer, theirs in self._early.items():
                self._mismatch = self._mismatch or _first_difference(run, theirs, peer)
        deadline = time.monotonic() + self.timeout
        for peer in self.peers:
            while True:
                self._raise_mismatch()
                left = deadline - time.monotonic()
                try:
                    theirs = self.comm.request(
                        f"brain/ready/{peer}",
                        {"node": self.node_id, "run": run},
                        timeout=max(min(left, 1.0), 0.1),
                    )
                except TimeoutError:
                    theirs = None
                if theirs is not None:
                    with self._ready_lock:
                        self._mismatch = self._mismatch or _first_difference(run, theirs, peer)
                    self._raise_mismatch()
                    break
                if time.monotonic() >= deadline:
                    regions = sorted(r for r, n in self.assignment.items() if n == peer)
                    raise TimeoutError(
                        f"node {peer!r} (regions {', '.join(regions)}) did not appear within "
                        f"{self.timeout:.0f} s: is it running, on the same network, with the "
                        "same key?"
                    )
                time.sleep(0.05)
        # Peers that asked us and differ while we asked others: caught here.
        self._raise_mismatch()

    def _raise_mismatch(self) -> None:
        with self._ready_lock:
            why = self._mismatch
        if why is not None:
            raise RunMismatchError(why)

    def run(
        self,
        steps: int,
        progress: Callable[[RunMetrics], None] | None = None,
        progress_every: float = 1.0,
        probes: Mapping[str, Sequence[int]] | None = None,
    ) -> tuple[Raster, RunMetrics]:
        """Simulate ``steps`` steps of the local regions; return their raster.

        ``probes`` maps local regions to neurons whose potentials are recorded after
        every step; the whole record (spikes and probes) is then in :attr:`record`, for
        :func:`~evospikenet.brain.save_record`.

        Raises:
            RunMismatchError: at the start barrier, a peer runs another network, seed,
                number of steps or assignment.
            TimeoutError: a peer did not appear, or stopped delivering spikes.
            RuntimeError: the node ran already (a BrainNode runs once).
        """
        if self._ran:
            raise RuntimeError("a BrainNode runs once: make a new one for another run")
        self._ran = True
        engine = self._engine
        engine.start_recording()
        for region, neurons in (probes or {}).items():
            engine.add_probe(region, [int(i) for i in neurons])
        self.wait_for_peers(steps)
        metrics = RunMetrics(per_region_spikes={n: 0 for n in self.local})
        started = time.monotonic()

        def update() -> None:
            ex = engine.exchange_stats()
            metrics.steps = engine.current_step
            metrics.spikes = engine.stats()["spikes"]
            metrics.messages_sent = ex["sent"]
            metrics.messages_received = ex["received"]
            metrics.duplicates = ex["duplicates"]
            metrics.resend_requests = ex["resend_requests"]
            metrics.wait_seconds = ex["wait_seconds"]
            metrics.wall_seconds = time.monotonic() - started

        def report(_done: int) -> None:
            update()
            assert progress is not None
            progress(metrics)

        # The exchange stays until close(): peers may ask for resends meanwhile.
        engine.run(steps, report if progress is not None else None, progress_every)
        update()
        taken = engine.take_recording()
        assert taken is not None
        self.record = record_from_engine(self.node_id, taken)
        history = self.record.raster
        for name, spikes in history.items():
            metrics.per_region_spikes[name] = sum(len(x) for x in spikes)
        # Peers may still need our last steps' spikes: they are sent; wait until every
        # peer finished too, so none of them times out on a node that left early.
        self._finish_barrier(steps)
        return history, metrics

    def _finish_barrier(self, steps: int) -> None:
        """Leave only once every peer knows we finished and we know every peer did:
        each peer asks us (we count it) and answers us, so no node closes while another
        still waits for its answer."""
        asked: set[str] = set()
        cond = threading.Condition()

        def on_done(requester) -> int:
            with cond:
                asked.add(str(requester))
                cond.notify_all()
            return steps

        self._handles.append(self.comm.serve(f"brain/done/{self.node_id}", on_done))
        deadline = time.monotonic() + self.timeout
        for peer in self.peers:
            while True:
                try:
                    self.comm.request(f"brain/done/{peer}", self.node_id, timeout=1.0)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        log.warning("node %s did not report the end of its run", peer)
                        break
        with cond:
            cond.wait_for(
                lambda: asked >= set(self.peers), timeout=max(deadline - time.monotonic(), 0)
            )
        time.sleep(0.2)  # let the last answers leave before the session closes

    def close(self) -> None:
        """Withdraw this node's services and its spike exchange."""
        self._engine.close_exchange()
        for h in self._handles:
            h.undeclare()
        self._handles.clear()


def _first_difference(mine: dict, theirs: object, peer: str) -> str | None:
    """A one-line account of the first thing ``peer``'s run disagrees on, or None."""
    if not isinstance(theirs, dict):
        return f"node {peer!r} answered the start barrier with something unexpected"
    rule = "(every node needs the same network, seed and steps)"

    def differ(what: str, here: object, there: object) -> str:
        return (
            f"node {peer!r} runs a different simulation: {what} is {there} there and "
            f"{here} here {rule}"
        )

    if theirs.get("steps") != mine["steps"]:
        return differ("steps", mine["steps"], theirs.get("steps"))
    if theirs.get("seed") != mine["seed"]:
        return differ("seed", mine["seed"], theirs.get("seed"))
    here = {str(k): v for k, v in mine["regions"]}
    there = {str(k): v for k, v in theirs.get("regions") or []}
    if list(there) != list(here):
        return differ("the list of regions", list(here), list(there))
    for name, n in here.items():
        if there[name] != n:
            return differ(f"the number of neurons in region {name!r}", n, there[name])
    if theirs.get("network") != mine["network"]:
        return f"node {peer!r} runs a different network: parameters or projections differ {rule}"
    mine_a = [list(a) for a in mine["assignment"]]
    if [list(a) for a in theirs.get("assignment") or []] != mine_a:
        return (
            f"node {peer!r} assigns the regions to nodes differently: "
            f"{theirs.get('assignment')} there, {mine_a} here (the same node ids on every node?)"
        )
    return None
