"""The documented spike helper of the original API: ``ZenohBrainCommunicator``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from evospikenet._logsafe import escape_for_log
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

log = logging.getLogger("evospikenet.brain")


class ZenohBrainCommunicator(ZenohCommunicator):
    """A :class:`ZenohCommunicator` for one brain module, with spike helpers.

    ``ZenohBrainCommunicator(node_id, config=None, module_type="generic")``.

    - :meth:`publish_spikes` sends ``{"node_id", "spikes", "metadata", "timestamp_ns"}``
      on ``spikes/{module_type}/{target}`` (encrypted like every payload);
    - :meth:`subscribe_spikes` receives them from ``spikes/{source}/*`` with ``spikes``
      back as a numpy array;
    - :meth:`announce` publishes ``heartbeat/{node_id}`` periodically and tracks the
      other nodes' heartbeats: joins and departures are logged on ``evospikenet.brain``
      and visible in :attr:`peers`.
    """

    def __new__(
        cls,
        node_id: str | None = None,
        config: ZenohConfig | None = None,
        module_type: str = "generic",
    ):
        if not module_type or "/" in module_type or "*" in module_type:
            raise ValueError(f"module_type {module_type!r}: one topic chunk, no '/' or '*'")
        return super().__new__(cls, node_id, config)

    def __init__(
        self,
        node_id: str | None = None,
        config: ZenohConfig | None = None,
        module_type: str = "generic",
    ) -> None:
        self.module_type = module_type
        self._peers: dict[str, float] = {}
        self._peers_lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def publish_spikes(self, target: str, spikes, metadata: dict[str, Any] | None = None) -> None:
        """Publish ``spikes`` (array-like; sent as its dtype and shape) for ``target``."""
        arr = np.asarray(spikes)
        payload = {
            "node_id": self.node_id,
            "spikes": arr.tolist(),
            "dtype": str(arr.dtype),
            "shape": list(arr.shape),
            "metadata": metadata or {},
            "timestamp_ns": time.time_ns(),
        }
        self.publish(f"spikes/{self.module_type}/{target}", payload, serialize="json")

    def subscribe_spikes(self, source: str, callback: Callable[[dict[str, Any]], Any]):
        """Call ``callback(message)`` for spikes from module ``source`` to any target;
        ``message["spikes"]`` is a numpy array. Malformed messages are logged and dropped."""

        def on_message(data: Any) -> None:
            try:
                data["spikes"] = np.asarray(data["spikes"], dtype=data["dtype"]).reshape(
                    data["shape"]
                )
            except (KeyError, TypeError, ValueError) as e:
                log.warning(
                    "malformed spike message from module %s dropped: %s", source, escape_for_log(e)
                )
                return
            callback(data)

        return self.subscribe(f"spikes/{source}/*", on_message)

    # ----- presence -----

    @property
    def peers(self) -> list[str]:
        """Node ids whose heartbeat was heard recently (after :meth:`announce`)."""
        with self._peers_lock:
            return sorted(self._peers)

    def announce(self, interval: float = 1.0, lost_after: float = 3.0) -> None:
        """Publish a heartbeat every ``interval`` seconds and track the others'."""
        if self._heartbeat is not None:
            return

        def on_heartbeat(data: Any, sender: str, _topic: str) -> None:
            if sender == self.node_id:
                return
            with self._peers_lock:
                new = sender not in self._peers
                self._peers[sender] = time.monotonic()
            if new:
                log.info("node %s joined", escape_for_log(sender))

        self.subscribe("heartbeat/*", on_heartbeat, with_info=True)

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    self.publish(f"heartbeat/{self.node_id}", {"module_type": self.module_type})
                except RuntimeError:
                    return  # closed
                now = time.monotonic()
                with self._peers_lock:
                    gone = [p for p, t in self._peers.items() if now - t > lost_after]
                    for p in gone:
                        del self._peers[p]
                for p in gone:
                    log.info(
                        "node %s left (no heartbeat for %.0f s)", escape_for_log(p), lost_after
                    )

        self.publish(f"heartbeat/{self.node_id}", {"module_type": self.module_type})
        self._heartbeat = threading.Thread(target=beat, name="evospikenet-heartbeat", daemon=True)
        self._heartbeat.start()

    def close(self) -> None:
        """Stop the heartbeats, then close the communicator."""
        self._stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join(timeout=5)
        super().close()
