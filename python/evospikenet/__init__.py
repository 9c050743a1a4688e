"""evospikenet: the secure communication layer of a distributed spiking brain simulation.

Brain regions exchange spikes over Eclipse Zenoh; every payload is encrypted and
authenticated with AES-256-GCM. The core is Rust (``evospikenet._native``)::

    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig
"""

from evospikenet import _runtime  # noqa: F401  (installs the interpreter-exit hook)
from evospikenet._native import __version__

__all__ = ["__version__"]
