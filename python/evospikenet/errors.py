"""The exceptions evospikenet raises, by kind.

Every error the communicator meets at run time is an :class:`EvoSpikeNetError`, and
also an instance of the built-in exception it was before this module existed, so both
``except KeyExchangeError`` and an older ``except ValueError`` catch a failed exchange::

    from evospikenet.errors import EvoSpikeNetError, RemoteHandlerError

    try:
        reply = comm.request("plan", {"goal": 3})
    except RemoteHandlerError:
        ...  # the service raised while handling it
    except TimeoutError:
        ...  # nobody answered in time (a DeadlineExceededError)

A wrong argument (a value of the wrong type, a malformed topic, an unknown serializer)
raises the built-in ``TypeError`` or ``ValueError``, as the standard library does: it is
a bug to fix, not a condition to handle.

The extension (``src/py/errors.rs``) imports these classes; they are defined here, in
Python, so that each can derive from both this hierarchy and a built-in exception.
"""

__all__ = [
    "CommunicatorClosedError",
    "ConfigError",
    "DeadlineExceededError",
    "EvoSpikeNetError",
    "KeyExchangeError",
    "RemoteHandlerError",
    "RunMismatchError",
    "TransportError",
]


class EvoSpikeNetError(Exception):
    """Base class of every run-time error of evospikenet."""


class ConfigError(EvoSpikeNetError, ValueError):
    """A configuration value is malformed: a PSK, an endpoint, a mode, a fingerprint.

    The message says what is expected and never shows a key.
    """


class KeyExchangeError(EvoSpikeNetError, ValueError):
    """A step of a DH key exchange failed: a malformed or unusable public key, no
    pending exchange, an invalid peer id. A failed step is also logged as ``ERROR Key
    exchange failed: <reason>`` and counted in ``stats()["key_exchange_failures"]``.

    ``publish`` raises it too when the publications held until a peer confirms a manual
    exchange pass their limit (4096 messages or 64 MiB): the peer has not completed its
    side. The message never holds key material.
    """


class CommunicatorClosedError(EvoSpikeNetError, RuntimeError):
    """The communicator was closed (``close()`` or the end of its ``with`` block)."""


class RemoteHandlerError(EvoSpikeNetError, RuntimeError):
    """The service that answered a request raised while handling it.

    The message names the service's node and the type of its exception, not the
    exception's text (which may hold details of that node).
    """


class RunMismatchError(EvoSpikeNetError, ValueError):
    """Two brain nodes disagree on what to simulate: the network (region sizes, seed,
    parameters), the number of steps or which node runs which region. Raised by
    :meth:`evospikenet.brain.BrainNode.run` at the start barrier, on every node that
    meets the disagreement; the message names the parameter and both values.
    """


class DeadlineExceededError(EvoSpikeNetError, TimeoutError):
    """A wait ran out of time: no reply to a request, no session with a peer."""


class TransportError(EvoSpikeNetError, ConnectionError):
    """Zenoh failed: the session could not be opened (a listen port in use, a router
    that cannot be reached) or a network operation failed."""
