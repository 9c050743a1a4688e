"""A node that watches a namespace: it subscribes to every topic with the local key and
lets the core count what each sender publishes (``sender_stats()``), accepted or not."""

from __future__ import annotations

from types import TracebackType

from evospikenet._logsafe import escape_for_log
from evospikenet.cli.common import CommandError, PskSource, observer_config, observer_id
from evospikenet.errors import TransportError
from evospikenet.zenoh_comm import ZenohCommunicator


class Watch:
    """Subscribed to ``**`` of ``namespace`` until closed (a context manager).

    Raises:
        CommandError: a bad PSK or key file, or endpoints that cannot be reached.
    """

    def __init__(
        self,
        command: str,
        connect: list[str],
        source: PskSource,
        namespace: str,
        mode: str | None = None,
    ):
        config = observer_config(connect, source, namespace, mode)
        try:
            self.comm = ZenohCommunicator(observer_id(command), config)
        except (TransportError, ValueError) as e:
            raise CommandError(f"cannot join the mesh at {', '.join(connect)}: {e}") from None
        self.comm.subscribe("**", lambda _data: None)

    def senders(self) -> list[dict]:
        """The per (sender, topic) rows of the core's sender table."""
        return self.comm.sender_stats()

    def stats(self) -> dict:
        """The watching node's counters."""
        return dict(self.comm.stats())

    def close(self) -> None:
        self.comm.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def sender_name(row: dict) -> str:
    """How a report names the sender of a row (escaped: it comes from the network)."""
    if row["sender"] is None:
        return "a Zenoh publisher without an evospikenet header"
    return repr(escape_for_log(row["sender"]))
