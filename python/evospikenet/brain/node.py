"""Run some regions of a :class:`~evospikenet.brain.Network` on this node and exchange
spikes with the nodes that run the others, over an (encrypted) ``ZenohCommunicator``.

Each step, for every pair (local source region, remote target region) joined by a
projection, one message carries the step number and the sorted spike indices (numpy
uint32 ``[step, i0, i1, ...]``) on ``spikes/{source}/{target}``. Synchronization is
conservative, as NEST does it: step ``t`` of a region is computed only once every input
it depends on (remote spikes of step ``t - delay``) has arrived, so a node waits for a
late or slow peer instead of skipping a step; a peer that never delivers raises
:class:`TimeoutError` naming the region and the node.

Before step 0 all nodes meet at a start barrier (each serves ``brain/ready/{node_id}``
once its subscriptions exist and asks every peer's), so nothing published at step 0 is
sent before its receivers listen. A message lost on the way (a router restarting, a link
dropping) is asked for again: a node that has waited a second for a step requests it
from its source node (``brain/resend/{node_id}``), which keeps its last 4096 steps per
destination.

The step loop, the publishing, the receiving, the waiting and the resend requests all
run in Rust (``src/engine/exchange.rs``) with the GIL released: no Python runs per
message or per step.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from evospikenet.brain.network import Network, Raster
from evospikenet.brain.record import Record, record_from_engine
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
        self._handles = [comm.serve(f"brain/ready/{self.node_id}", lambda _d: "ready")]

    def wait_for_peers(self) -> None:
        """The start barrier: every peer answers its ready request."""
        deadline = time.monotonic() + self.timeout
        for peer in self.peers:
            left = deadline - time.monotonic()
            try:
                self.comm.request(f"brain/ready/{peer}", self.node_id, timeout=max(left, 0.1))
            except TimeoutError:
                regions = sorted(r for r, n in self.assignment.items() if n == peer)
                raise TimeoutError(
                    f"node {peer!r} (regions {', '.join(regions)}) did not appear within "
                    f"{self.timeout:.0f} s: is it running, on the same network, with the "
                    "same key?"
                ) from None

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
        :func:`~evospikenet.brain.save_record`."""
        if self._ran:
            raise RuntimeError("a BrainNode runs once: make a new one for another run")
        self._ran = True
        engine = self._engine
        engine.start_recording()
        for region, neurons in (probes or {}).items():
            engine.add_probe(region, [int(i) for i in neurons])
        self.wait_for_peers()
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
