"""Values from the network (sender ids, topics, payload errors) in log lines."""

from __future__ import annotations


def escape_for_log(text: object) -> str:
    """``str(text)`` with control and other non-printable characters escaped (``\\n``,
    ``\\x1b``, ``\\u2028``), as the Rust core does for its own records: a peer must not be
    able to start a forged line in a log. Printable text comes back unchanged."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
