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
dropping) is asked for again: a node that has waited ``RESEND_AFTER`` seconds for a step
requests it from its source node (``brain/resend/{node_id}``), which keeps its last
``RESEND_WINDOW`` steps per destination.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from evospikenet.brain.network import Network, Raster, Spikes
from evospikenet.brain.record import Record, record_from_engine
from evospikenet.zenoh_comm import ZenohCommunicator

log = logging.getLogger("evospikenet.brain")

#: Seconds a node waits for a step's spikes before asking the source node again.
RESEND_AFTER = 1.0
#: Steps of outgoing spikes each node keeps per destination, to answer such requests.
RESEND_WINDOW = 4096


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


class _Inbox:
    """Received spikes by (source, target, step); wakes the simulation loop."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.data: dict[tuple[str, str], dict[int, Spikes]] = {}
        self.received = 0
        self.duplicates = 0
        self.malformed = 0

    def put(self, source: str, target: str, payload) -> None:
        if not isinstance(payload, np.ndarray) or payload.dtype != np.uint32 or payload.ndim != 1:
            self.malformed += 1
            return
        if len(payload) == 0:
            self.malformed += 1
            return
        with self.cond:
            if self._store(source, target, int(payload[0]), payload[1:]):
                self.received += 1
            else:
                self.duplicates += 1

    def put_step(self, source: str, target: str, step: int, spikes: Spikes) -> bool:
        """Store a resent step; False if it had arrived meanwhile."""
        with self.cond:
            return self._store(source, target, step, spikes)

    def _store(self, source: str, target: str, step: int, spikes: Spikes) -> bool:
        """Keep the first copy of a step and wake the waiters (caller holds ``cond``)."""
        box = self.data.setdefault((source, target), {})
        if step in box:
            return False
        box[step] = spikes
        self.cond.notify_all()
        return True

    def take(self, source: str, target: str, step: int, deadline: float) -> Spikes | None:
        with self.cond:
            while True:
                box = self.data.get((source, target))
                if box is not None and step in box:
                    return box[step]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def forget_before(self, step: int) -> None:
        with self.cond:
            for box in self.data.values():
                for s in [s for s in box if s < step]:
                    del box[s]


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
        #: What the last :meth:`run` recorded.
        self.record: Record | None = None
        self._inbox = _Inbox()
        self._handles = []
        for src, tgt in self.incoming_pairs:
            self._handles.append(
                comm.subscribe(
                    f"spikes/{src}/{tgt}",
                    lambda data, s=src, t=tgt: self._inbox.put(s, t, data),
                )
            )
        self._sent: dict[tuple[str, str], dict[int, np.ndarray]] = {p: {} for p in self.outgoing}
        self._sent_lock = threading.Lock()
        self._handles.append(comm.serve(f"brain/ready/{self.node_id}", lambda _d: "ready"))
        self._handles.append(
            comm.serve(f"brain/resend/{self.node_id}", self._resend, serialize="numpy")
        )

    def _resend(self, request) -> np.ndarray:
        """A peer lost a step: the stored message, or an empty array if it is too old."""
        try:
            key, step = (str(request["source"]), str(request["target"])), int(request["step"])
        except (KeyError, TypeError, ValueError):
            return np.zeros(0, dtype=np.uint32)
        with self._sent_lock:
            msg = self._sent.get(key, {}).get(step)
        return msg if msg is not None else np.zeros(0, dtype=np.uint32)

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
        self.wait_for_peers()
        net = self.network
        # The local regions are stepped by the engine; the spikes of remote regions it
        # needs come from the inbox, one (source, step) at a time.
        engine = net.engine(self.local)
        engine.start_recording()
        for region, neurons in (probes or {}).items():
            engine.add_probe(region, [int(i) for i in neurons])
        local_order = engine.local_regions
        # For each remote source, a local target whose inbox receives its spikes.
        via = {src: tgt for src, tgt in reversed(self.incoming_pairs)}
        metrics = RunMetrics(per_region_spikes={n: 0 for n in self.local})
        started = time.monotonic()
        next_report = started + progress_every
        for t in range(steps):
            remote = [
                (src, s, self._remote(src, via[src], s, metrics)) for src, s in engine.needed(t)
            ]
            engine.step(remote)
            step_spikes = dict(zip(local_order, engine.last_spikes(), strict=True))
            for name, s in step_spikes.items():
                metrics.spikes += len(s)
                metrics.per_region_spikes[name] += len(s)
            for src, tgt in self.outgoing:
                s = step_spikes[src]
                msg = np.empty(len(s) + 1, dtype=np.uint32)
                msg[0] = t
                msg[1:] = s
                with self._sent_lock:
                    sent = self._sent[(src, tgt)]
                    sent[t] = msg
                    sent.pop(t - RESEND_WINDOW, None)
                self.comm.publish(f"spikes/{src}/{tgt}", msg, serialize="numpy")
                metrics.messages_sent += 1
            metrics.steps = t + 1
            if t % 64 == 0:
                self._inbox.forget_before(t - net.max_delay - 1)
            now = time.monotonic()
            if progress is not None and now >= next_report:
                metrics.wall_seconds = now - started
                metrics.messages_received = self._inbox.received
                progress(metrics)
                next_report = now + progress_every
        taken = engine.take_recording()
        assert taken is not None
        self.record = record_from_engine(self.node_id, taken)
        history = self.record.raster
        metrics.wall_seconds = time.monotonic() - started
        metrics.messages_received = self._inbox.received
        metrics.duplicates = self._inbox.duplicates
        # Peers may still need our last steps' spikes: they are sent; wait until every
        # peer finished too, so none of them times out on a node that left early.
        self._finish_barrier(steps)
        return history, metrics

    def _remote(self, source: str, target: str, step: int, metrics: RunMetrics) -> Spikes:
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        got = self._inbox.take(source, target, step, min(t0 + RESEND_AFTER, deadline))
        while got is None and time.monotonic() < deadline:
            # Lost on the way, or merely late: ask the source node again, then keep waiting.
            metrics.resend_requests += 1
            try:
                msg = self.comm.request(
                    f"brain/resend/{self.assignment[source]}",
                    {"source": source, "target": target, "step": step},
                    timeout=min(RESEND_AFTER, max(deadline - time.monotonic(), 0.01)),
                )
                if isinstance(msg, np.ndarray) and msg.dtype == np.uint32 and len(msg) >= 1:
                    if int(msg[0]) == step:
                        self._inbox.put_step(source, target, step, msg[1:])
            except (TimeoutError, RuntimeError):
                pass
            now = time.monotonic()
            got = self._inbox.take(source, target, step, min(now + RESEND_AFTER, deadline))
        metrics.wait_seconds += time.monotonic() - t0
        if got is None:
            node = self.assignment[source]
            raise TimeoutError(
                f"no spikes of region {source!r} for step {step} from node {node!r} within "
                f"{self.timeout:.0f} s: the node stopped, is unreachable, or its key differs "
                f"(decryption failures so far: {self.comm.stats()['decrypt_failures']})"
            )
        return got

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
        for h in self._handles:
            h.undeclare()
        self._handles.clear()
