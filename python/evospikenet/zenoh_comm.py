"""Encrypted publish/subscribe and request/reply over Eclipse Zenoh.

The documented import path::

    from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

    config = ZenohConfig(psk=os.getenv("EVOSPIKENET_PSK"))
    with ZenohCommunicator("node-1", config) as comm:
        comm.subscribe("topic", lambda data: print(data))
        comm.publish("topic", {"data": "secret"}, serialize="json")

Every payload is sealed with AES-256-GCM under a per-sender key derived from the PSK
(HKDF-SHA256). Messages that fail authentication or replay checks are dropped, counted in
``stats()`` and reported on the ``evospikenet.zenoh_comm`` logger as
``Decryption failed for topic: <topic>``.

DH mode (forward secrecy), as the guide shows::

    comm = ZenohCommunicator("node-1", ZenohConfig())
    public_key = comm.initiate_key_exchange("node-2")
    print(f"Public key: {public_key.hex()}  fingerprint: {comm.fingerprint()}")
    comm.complete_key_exchange(bytes.fromhex(input("node-2's public key: ")))

or automatically with every peer, authenticated by the PSK::

    ZenohConfig(psk=os.getenv("EVOSPIKENET_PSK"), key_exchange="auto")
"""

from evospikenet._native import (
    Handle,
    MessageQueue,
    Service,
    Subscription,
    ZenohCommunicator,
    ZenohConfig,
    generate_identity_key,
    identity_fingerprint,
)

__all__ = [
    "Handle",
    "MessageQueue",
    "Service",
    "Subscription",
    "ZenohCommunicator",
    "ZenohConfig",
    "generate_identity_key",
    "identity_fingerprint",
]
