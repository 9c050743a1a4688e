"""Long runs: a million encrypted messages from several processes and threads arrive
exactly once, with flat memory; a subscriber that cannot keep up drops (and counts) what
does not fit its queue instead of blocking the sender or growing without bound.

Figures (rates, RSS) are printed; run with ``pytest -s`` to see them.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import struct
import threading
import time

import pytest
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
from support.comm import LOOPBACK_ANY_PORT, wait_until

pytestmark = pytest.mark.system

MIB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS in /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def stop_processes(procs) -> None:
    """Join, then kill whatever is still running (a failed test leaves nothing behind)."""
    for p in procs:
        p.join(30)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(10)


# ----- a million messages, four threads in two processes -------------------------------------

SOAK_TOPIC = "soak/stream"
SOAK_PROCESSES = 2
SOAK_THREADS = 2
SOAK_MESSAGES = 1_000_000
PER_THREAD = SOAK_MESSAGES // (SOAK_PROCESSES * SOAK_THREADS)
# (process, thread, sequence number): 6 bytes of payload per message.
RECORD = struct.Struct("<BBI")
# The thread number of the announcements a publisher sends until the receiver saw one.
HELLO = 0xFF
# Memory the receiver may gain over the whole run, and over its second half (after
# warm-up, a flat process gains nothing). A leak of a couple of hundred bytes per message,
# or a queue that keeps what it delivered, exceeds the first; of 70 bytes, the second.
SOAK_RSS_BOUND = 200 * MIB
SOAK_RSS_SECOND_HALF_BOUND = 32 * MIB
# Seconds without any progress after which the run is declared stuck.
STALL = 60.0


def _soak_publisher(index: int, locator: str, psk: str, go, stop, report) -> None:
    comm = ZenohCommunicator(f"soak-pub-{index}", ZenohConfig(connect=[locator], psk=psk))
    try:
        # Announce until the receiver has heard this process: from then on the route to
        # its subscription exists and nothing published is lost for lack of one.
        hello = RECORD.pack(index, HELLO, 0)
        while not go.wait(0.02):
            comm.publish(SOAK_TOPIC, hello, serialize="raw")
        rss_start = rss_bytes()

        def run(thread: int) -> None:
            pack, publish = RECORD.pack, comm.publish
            for seq in range(PER_THREAD):
                publish(SOAK_TOPIC, pack(index, thread, seq), serialize="raw")

        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(t,)) for t in range(SOAK_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        report.put((index, elapsed, comm.stats()["published"], rss_start, rss_bytes()))
        # Stay connected until the receiver has everything: closing could cut off
        # messages still in the transmission queue.
        stop.wait(300)
    finally:
        comm.close()


class StreamLedger:
    """Which sequence numbers of each (process, thread) stream arrived, and how often."""

    def __init__(self) -> None:
        self.seen = [bytearray(PER_THREAD) for _ in range(SOAK_PROCESSES * SOAK_THREADS)]
        self.delivered = 0
        self.duplicates = 0
        self.hellos: set[int] = set()

    def on_message(self, payload: bytes) -> None:
        process, thread, seq = RECORD.unpack(payload)
        if thread == HELLO:
            self.hellos.add(process)
            return
        seen = self.seen[process * SOAK_THREADS + thread]
        if seen[seq]:
            self.duplicates += 1
        else:
            seen[seq] = 1
            self.delivered += 1

    def missing(self) -> str:
        lines = []
        for i, seen in enumerate(self.seen):
            lost = PER_THREAD - sum(seen)
            if lost:
                first = seen.index(0)
                lines.append(f"process {i // SOAK_THREADS} thread {i % SOAK_THREADS}: "
                             f"{lost} missing, first {first}")  # fmt: skip
        return "; ".join(lines) or "none"


def test_million_messages_from_four_threads_arrive_exactly_once(psk):
    receiver = ZenohCommunicator("soak-rx", ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk))
    ledger = StreamLedger()
    receiver.subscribe(SOAK_TOPIC, ledger.on_message)
    ctx = mp.get_context("spawn")
    go, stop, report = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_soak_publisher, args=(i, receiver.locators[0], psk, go, stop, report))
        for i in range(SOAK_PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        wait_until(
            lambda: len(ledger.hellos) == SOAK_PROCESSES,
            timeout=60,
            what="every publisher process to reach the receiver",
        )
        rss_start = rss_bytes()
        rss_peak = rss_start
        rss_middle = None
        started = last_change = time.monotonic()
        last_count = 0
        go.set()
        while ledger.delivered < SOAK_MESSAGES:
            time.sleep(0.2)
            now = time.monotonic()
            rss_peak = max(rss_peak, rss_bytes())
            if rss_middle is None and ledger.delivered >= SOAK_MESSAGES // 2:
                rss_middle = rss_bytes()
            if ledger.delivered != last_count:
                last_count, last_change = ledger.delivered, now
            assert now - last_change < STALL, (
                f"no progress for {STALL:.0f} s: {ledger.delivered:,} of {SOAK_MESSAGES:,} "
                f"delivered; missing: {ledger.missing()}; receiver stats {receiver.stats()}"
            )
            assert all(p.is_alive() or p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        elapsed = time.monotonic() - started
        publishers = [report.get(timeout=60) for _ in procs]
        # Late duplicates would arrive right behind the last message: give them a moment.
        time.sleep(0.5)
        rss_end = rss_bytes()
        stats = receiver.stats()
    finally:
        stop.set()
        stop_processes(procs)
        receiver.close()

    assert rss_middle is not None
    print(
        f"\n{SOAK_MESSAGES:,} messages ({SOAK_PROCESSES} processes x {SOAK_THREADS} threads, "
        f"{RECORD.size}-byte payloads, encrypted) in {elapsed:.1f} s: "
        f"{SOAK_MESSAGES / elapsed:,.0f} msgs/s received"
    )
    for index, pub_elapsed, published, pub_rss0, pub_rss1 in sorted(publishers):
        print(
            f"  publisher {index}: {published:,} published in {pub_elapsed:.1f} s "
            f"({published / pub_elapsed:,.0f} msgs/s), RSS {pub_rss0 / MIB:.1f} -> "
            f"{pub_rss1 / MIB:.1f} MiB"
        )
    print(
        f"  receiver RSS: start {rss_start / MIB:.1f} MiB, middle {rss_middle / MIB:.1f} MiB, "
        f"end {rss_end / MIB:.1f} MiB, peak {rss_peak / MIB:.1f} MiB"
    )
    print(f"  receiver stats: {stats}")
    assert [p.exitcode for p in procs] == [0] * SOAK_PROCESSES
    assert ledger.delivered == SOAK_MESSAGES, ledger.missing()
    assert ledger.duplicates == 0
    assert all(all(seen) for seen in ledger.seen), ledger.missing()
    for counter in ("decrypt_failures", "replays_rejected", "decode_errors"):
        assert stats[counter] == 0, (counter, stats)
    assert stats["dropped_by_callback_error"] == 0, stats
    assert sum(published for _, _, published, _, _ in publishers) >= SOAK_MESSAGES
    assert rss_peak - rss_start < SOAK_RSS_BOUND, (rss_start, rss_peak)
    assert rss_end - rss_middle < SOAK_RSS_SECOND_HALF_BOUND, (rss_middle, rss_end)


# ----- a subscriber slower than its publisher ------------------------------------------------

SLOW_TOPIC = "soak/slow"
SLOW_MESSAGES = 20_000
SLOW_QUEUE = 100
# Large enough that keeping every message would cost far more than the bound below:
# 20,000 x 8 KiB = 156 MiB, against a queue of 100 x 8 KiB.
SLOW_PAYLOAD = 8 * 1024
SLOW_RSS_BOUND = 64 * MIB
# Seconds the publisher may take for the whole stream before it counts as blocked.
PUBLISH_DEADLINE = 120.0


def _slow_consumer_publisher(locator: str, psk: str, go, stop, report) -> None:
    comm = ZenohCommunicator("slow-tx", ZenohConfig(connect=[locator], psk=psk))
    try:
        while not go.wait(0.02):
            comm.publish(SLOW_TOPIC, b"hello", serialize="raw")
        padding = bytes(SLOW_PAYLOAD - 5)
        started = time.monotonic()
        for seq in range(SLOW_MESSAGES):
            comm.publish(SLOW_TOPIC, b"m" + seq.to_bytes(4, "little") + padding, serialize="raw")
        report.put(time.monotonic() - started)
        stop.wait(120)
    finally:
        comm.close()


def test_slow_queue_subscriber_drops_and_counts_without_blocking_the_sender(psk):
    receiver = ZenohCommunicator("slow-rx", ZenohConfig(listen=[LOOPBACK_ANY_PORT], psk=psk))
    inbox = receiver.subscribe_queue(SLOW_TOPIC, maxsize=SLOW_QUEUE)
    ctx = mp.get_context("spawn")
    go, stop, report = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(
        target=_slow_consumer_publisher, args=(receiver.locators[0], psk, go, stop, report)
    )
    proc.start()
    try:
        assert inbox.get(timeout=60) == b"hello"
        go.set()
        rss_start = rss_peak = rss_bytes()
        sequence: list[int] = []
        hellos = 1
        publish_seconds = None
        deadline = time.monotonic() + PUBLISH_DEADLINE
        while True:
            try:
                item = inbox.get(timeout=0.05)
            except queue.Empty:
                item = None
            if item is not None:
                if item[:1] == b"m":
                    sequence.append(int.from_bytes(item[1:5], "little"))
                else:
                    hellos += 1
                time.sleep(0.002)  # the slow consumer: about 500 messages/s at most
            rss_peak = max(rss_peak, rss_bytes())
            if publish_seconds is None:
                try:
                    publish_seconds = report.get_nowait()
                except queue.Empty:
                    assert time.monotonic() < deadline, (
                        f"the publisher is still blocked after {PUBLISH_DEADLINE:.0f} s; "
                        f"received {len(sequence)}, stats {receiver.stats()}"
                    )
                    continue
                settle = time.monotonic() + 30
            dropped = receiver.stats()["dropped_queue_full"]
            if item is None and len(sequence) + dropped == SLOW_MESSAGES:
                break
            assert time.monotonic() < settle, (
                f"{SLOW_MESSAGES - len(sequence) - dropped} messages neither delivered nor "
                f"counted as dropped: received {len(sequence)}, dropped {dropped}"
            )
        stats = receiver.stats()
        rss_end = rss_bytes()
    finally:
        stop.set()
        stop_processes([proc])
        receiver.close()

    print(
        f"\nslow subscriber (queue of {SLOW_QUEUE}, {SLOW_PAYLOAD // 1024} KiB messages): "
        f"{SLOW_MESSAGES:,} published in {publish_seconds:.2f} s "
        f"({SLOW_MESSAGES / publish_seconds:,.0f} msgs/s), {len(sequence):,} received, "
        f"{stats['dropped_queue_full']:,} dropped and counted; receiver RSS "
        f"{rss_start / MIB:.1f} -> peak {rss_peak / MIB:.1f} -> {rss_end / MIB:.1f} MiB"
    )
    assert proc.exitcode == 0
    assert len(sequence) + stats["dropped_queue_full"] == SLOW_MESSAGES
    assert stats["dropped_queue_full"] > 0, "the consumer was never behind: no overflow tested"
    assert len(sequence) >= SLOW_QUEUE
    # What was kept arrives in order and once.
    assert sequence == sorted(set(sequence))
    assert stats["decrypt_failures"] == 0 and stats["replays_rejected"] == 0
    assert rss_peak - rss_start < SLOW_RSS_BOUND, (rss_start, rss_peak)
