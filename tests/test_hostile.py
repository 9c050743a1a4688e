"""A distributed simulation under attack on its own spike topics.

Three brain nodes (PSK mode, one region each, in threads) run while, on the same Zenoh
network,

- a node holding another PSK publishes well-formed spike arrays on every spike topic,
- a raw client replays spike messages it captured from the nodes,
- a raw client floods the spike topics with garbage (random bytes and tampered copies of
  captured messages) at about 10,000 messages/s.

The spikes must equal a clean single-process run, every injected message must be counted
as a decryption failure or a replay and none delivered, and the drop warnings must stay
rate-limited, so an attacker cannot fill a disk with logs. Figures are printed (``-s``).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict

import numpy as np
import pytest
from evospikenet.brain import BrainNode, assign_regions, default_brain, raster_digest, simulate
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import new_psk, publish_until, wait_until

# A soak under attack: the attack outlasts a log period (12 s at least).
pytestmark = pytest.mark.system

LOGGER = "evospikenet.zenoh_comm"
NODES = ("n1", "n2", "n3")
# Long enough for the run to last several seconds of the attack.
STEPS, NEURONS, SEED = 10_000, 300, 5
FLOOD_RATE = 10_000  # messages per second
REPLAY_RATE = 200
INTRUDER_RATE = 200
# The drop warnings allow 5 records per 10 s per kind and node; the attack outlasts one
# such period, so the summary of suppressed records shows up too.
LOG_BURST, LOG_PERIOD = 5, 10.0
MIN_ATTACK = LOG_PERIOD + 2.0
WARNING = re.compile(r"^Decryption failed for topic: (spikes/\w+/\w+)")


class Attack:
    """The three attackers, each in its own thread, with what each of them sent."""

    def __init__(self, inject, capture, intruder: ZenohCommunicator, topics: list[str]) -> None:
        import zenoh

        self.capture = capture
        self.intruder = intruder
        self.topics = topics
        # Blocking publishers: under load, what the attacker sends must still arrive, so
        # that the receivers' counters can be checked message for message.
        self.publishers = {
            t: inject.session.declare_publisher(
                f"evospikenet/{t}", congestion_control=zenoh.CongestionControl.BLOCK
            )
            for t in topics
        }
        self.sent = Counter()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._guard, args=(f,), daemon=True)
            for f in (self._flood, self._replay, self._wrong_key)
        ]
        self.errors: list[BaseException] = []
        self.started = 0.0

    def routes_ready(self) -> bool:
        return all(p.matching_status.matching for p in self.publishers.values())

    def start(self) -> None:
        self.started = time.monotonic()
        for t in self.threads:
            t.start()

    def finish(self) -> float:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not self.errors, self.errors
        return time.monotonic() - self.started

    def _guard(self, attack) -> None:
        try:
            attack()
        except BaseException as e:  # reported by finish()
            self.errors.append(e)

    def _paced(self, rate: int, batch: int, send) -> None:
        """Call ``send()`` ``rate`` times per second, in batches."""
        next_batch = time.monotonic()
        while not self.stop.is_set():
            for _ in range(batch):
                send()
            next_batch += batch / rate
            delay = next_batch - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_batch = time.monotonic()  # behind: do not try to catch up in a burst

    def _flood(self) -> None:
        rng = random.Random(1)
        publishers = list(self.publishers.values())

        def send() -> None:
            captured = self.capture.captured
            if captured and rng.random() < 0.5:
                # A real message with one bit flipped: parses, then fails authentication.
                tampered = bytearray(captured[rng.randrange(len(captured))][1])
                tampered[rng.randrange(len(tampered))] ^= 1 << rng.randrange(8)
                payload = bytes(tampered)
                self.sent["tampered"] += 1
            else:
                payload = os.urandom(rng.randrange(0, 300))
                self.sent["random"] += 1
            rng.choice(publishers).put(payload)

        self._paced(FLOOD_RATE, 100, send)

    def _replay(self) -> None:
        rng = random.Random(2)

        def send() -> None:
            captured = self.capture.captured
            if not captured:
                return
            key, payload = captured[rng.randrange(len(captured))]
            self.publishers[key.removeprefix("evospikenet/")].put(payload)
            self.sent["replayed"] += 1

        self._paced(REPLAY_RATE, 10, send)

    def _wrong_key(self) -> None:
        rng = random.Random(3)

        def send() -> None:
            # A well-formed spike message for some step: accepted, it would take the place
            # of the genuine one (or show as a duplicate).
            step = rng.randrange(STEPS)
            msg = np.arange(step, step + 50, dtype=np.uint32)
            self.intruder.publish(rng.choice(self.topics), msg, "numpy")
            self.sent["wrong key"] += 1

        self._paced(INTRUDER_RATE, 10, send)


def test_simulation_under_attack_equals_the_clean_run(mesh, raw_zenoh, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    psk = new_psk()
    net = default_brain(NEURONS, SEED)
    reference = raster_digest(simulate(net, STEPS))
    comms = [mesh.node(n, psk) for n in NODES]
    assignment = assign_regions(net, NODES)
    owner = {c.node_id: c for c in comms}
    # The spike topics that cross nodes, and the node subscribed to each.
    crossing = {
        f"spikes/{p.source}/{p.target}": assignment[p.target]
        for p in net.projections
        if assignment[p.source] != assignment[p.target]
    }
    topics = sorted(crossing)
    brains = [BrainNode(net, c, assignment, timeout=120) for c in comms]

    capture, inject = raw_zenoh(), raw_zenoh()
    capture.capture("evospikenet/spikes/**")
    # Not a mesh node: linked to every node, but out of reach of the raw clients, so
    # everything they capture comes from the genuine nodes.
    intruder = ZenohCommunicator(
        "intruder", ZenohConfig(connect=[c.locators[0] for c in comms], psk=new_psk())
    )
    try:
        attack = Attack(inject, capture, intruder, topics)
        wait_until(attack.routes_ready, what="the raw client's routes to every spike topic")
        for topic in topics:
            target = owner[crossing[topic]]
            before = target.stats()["decrypt_failures"]
            warm = np.zeros(1, dtype=np.uint32)
            publish_until(
                intruder,
                topic,
                warm,
                lambda t=target, b=before: t.stats()["decrypt_failures"] > b,
                serialize="numpy",
            )
        time.sleep(0.3)  # the last of those in flight
        baseline = {c.node_id: c.stats() for c in comms}
        caplog.clear()

        results: dict[str, object] = {}

        def run(node: BrainNode) -> None:
            try:
                results[node.node_id] = node.run(STEPS)
            except Exception as e:  # reported below
                results[node.node_id] = e

        threads = [threading.Thread(target=run, args=(b,)) for b in brains]
        attack.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        run_seconds = time.monotonic() - attack.started
        assert all(not t.is_alive() for t in threads), "the simulation hung under attack"
        # Keep going past one logging period: the suppressed-records summary must appear.
        time.sleep(max(0.0, attack.started + MIN_ATTACK - time.monotonic()))
        attack_seconds = attack.finish()

        def dropped(kind: str) -> int:
            return sum(c.stats()[kind] - baseline[c.node_id][kind] for c in comms)

        garbage = attack.sent["random"] + attack.sent["tampered"] + attack.sent["wrong key"]
        replays = attack.sent["replayed"]
        wait_until(
            lambda: (
                dropped("decrypt_failures") >= garbage and dropped("replays_rejected") >= replays
            ),
            timeout=30,
            what="every injected message to be counted",
        )
        time.sleep(0.5)  # anything counted twice would show now
        stats = {c.node_id: c.stats() for c in comms}
        records = [r for r in caplog.records if r.name == LOGGER]
    finally:
        intruder.close()

    merged = {}
    for node, result in results.items():
        assert not isinstance(result, Exception), (node, result)
        raster, metrics = result
        merged.update(raster)
        assert metrics.steps == STEPS and metrics.duplicates == 0, (node, metrics)

    warnings = [r for r in records if r.getMessage().startswith("Decryption failed")]
    suppressed = [r for r in warnings if "similar messages suppressed" in r.getMessage()]
    injected = garbage + replays
    print(
        f"\n{STEPS} steps on {len(NODES)} nodes in {run_seconds:.1f} s under attack "
        f"({attack_seconds:.1f} s of attack): injected {injected:,} messages "
        f"({attack.sent['random']:,} random, {attack.sent['tampered']:,} tampered, "
        f"{attack.sent['wrong key']:,} under another PSK, {replays:,} replays; "
        f"{(attack.sent['random'] + attack.sent['tampered']) / attack_seconds:,.0f} garbage/s)"
    )
    print(
        f"  dropped: {dropped('decrypt_failures'):,} decryption failures, "
        f"{dropped('replays_rejected'):,} replays; log records: {len(warnings)} "
        f"'Decryption failed' ({len(suppressed)} with a suppressed count), "
        f"{len(records) - len(warnings)} others"
    )
    for r in suppressed:
        print(f"    {r.getMessage()}")
    assert raster_digest(merged) == reference
    # Counted message for message: each injected message once, as the kind of drop it is.
    assert dropped("decrypt_failures") == garbage
    assert dropped("replays_rejected") == replays
    assert replays > 0 and attack.sent["tampered"] > 0 and attack.sent["wrong key"] > 0
    for node, s in stats.items():
        assert s["decode_errors"] == baseline[node]["decode_errors"], (node, s)
        assert s["dropped_by_callback_error"] == 0, (node, s)

    # Rate limit: per node and kind, at most LOG_BURST records per period. The periods are
    # fixed (each starts with the first record after the previous one ended), so a span of
    # D seconds meets at most D // period + 2 of them, and any 10 s at most two.
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in warnings:
        m = WARNING.match(r.getMessage())
        assert m, r.getMessage()
        kind = "replay" if "replayed or stale" in r.getMessage() else "decryption"
        groups[crossing[m.group(1)], kind].append(r.created)
    for (node, kind), times in groups.items():
        times.sort()
        periods = int((times[-1] - times[0]) // LOG_PERIOD) + 2
        assert len(times) <= LOG_BURST * periods, (node, kind, len(times), periods)
        for t in times:
            in_period = sum(1 for u in times if t <= u < t + LOG_PERIOD)
            assert in_period <= 2 * LOG_BURST, (node, kind, in_period)
    receivers = len(set(crossing.values()))
    assert len(warnings) <= 2 * receivers * LOG_BURST * (attack_seconds // LOG_PERIOD + 2)
    assert suppressed, "no record reported how many warnings were suppressed"
