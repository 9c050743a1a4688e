"""Prometheus/OpenMetrics export of a communicator's counters (optional extra ``metrics``:
``pip install evospikenet[metrics]``, which installs ``prometheus_client``).

::

    from evospikenet import metrics
    server = metrics.serve(comm, 9464)      # http://127.0.0.1:9464/metrics
    ...
    server.shutdown()

or ``ZenohConfig(metrics_port=9464)`` on a node, or ``evospikenet monitor --prometheus
9464``. Exported, as counters:

- ``evospikenet_<counter>_total{node}`` for every counter of ``stats()``
  (``evospikenet_decrypt_failures_total``, ``evospikenet_replays_rejected_total``, ...);
- ``evospikenet_sender_messages_total{node, sender, topic, outcome}`` per sender and topic
  from ``sender_stats()``, ``outcome`` one of ``received``, ``plaintext``,
  ``undecryptable``, ``replayed``; ``sender`` is ``""`` for publishers without an
  evospikenet header.

No key material is exported: key ids and fingerprints are not secret, keys never leave
the core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["MetricsServer", "StatsCollector", "serve", "serve_node"]

OUTCOMES = ("received", "plaintext", "undecryptable", "replayed")


class StatsCollector:
    """A ``prometheus_client`` collector that reads the counters at every scrape.

    Args:
        node_id: The ``node`` label.
        stats: Returns ``stats()``.
        sender_stats: Returns ``sender_stats()``.
    """

    def __init__(
        self,
        node_id: str,
        stats: Callable[[], dict[str, int]],
        sender_stats: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self.node_id = node_id
        self.stats = stats
        self.sender_stats = sender_stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        node = self.node_id
        for name, value in self.stats().items():
            family = CounterMetricFamily(
                f"evospikenet_{name}", f"evospikenet stats()[{name!r}]", labels=["node"]
            )
            family.add_metric([node], value)
            yield family
        per_sender = CounterMetricFamily(
            "evospikenet_sender_messages",
            "Messages seen per sender, topic and outcome",
            labels=["node", "sender", "topic", "outcome"],
        )
        for row in self.sender_stats():
            for outcome in OUTCOMES:
                per_sender.add_metric(
                    [node, row["sender"] or "", row["topic"], outcome], row[outcome]
                )
        yield per_sender


class MetricsServer:
    """An HTTP server answering ``/metrics``, running on a daemon thread."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The port it listens on (the real one when 0 was asked for)."""
        return self._server.server_address[1]

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve(comm: Any, port: int, address: str = "127.0.0.1") -> MetricsServer:
    """Serve the counters of the communicator ``comm`` on ``http://address:port/metrics``
    (port 0: any free port).

    Raises:
        ImportError: ``prometheus_client`` is not installed (the ``metrics`` extra).
        OSError: the port cannot be bound.
    """

    def senders() -> list[dict[str, Any]]:
        return [] if comm.closed else comm.sender_stats()

    return _serve(StatsCollector(comm.node_id, comm.stats, senders), port, address)


def serve_node(
    node_id: str,
    stats: Callable[[], dict[str, int]],
    sender_stats: Callable[[], list[dict[str, Any]]],
    port: int,
    address: str = "127.0.0.1",
) -> MetricsServer:
    """What ``ZenohConfig(metrics_port=port)`` starts: a server over the communicator's
    counters, given as functions (the communicator shuts it down at close)."""
    return _serve(StatsCollector(node_id, stats, sender_stats), port, address)


def _serve(collector: StatsCollector, port: int, address: str) -> MetricsServer:
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ImportError(
            "metrics need prometheus_client: pip install 'evospikenet[metrics]'"
        ) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, thread = start_http_server(port, addr=address, registry=registry)
    return MetricsServer(server, thread)
