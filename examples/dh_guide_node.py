"""The guide's manual Diffie-Hellman exchange, one node per terminal.

    python3 examples/dh_guide_node.py node-1 node-2     # first terminal
    python3 examples/dh_guide_node.py node-2 node-1     # second terminal

Each node prints its X25519 public key and fingerprint and asks for the peer's key:
paste each one's "Public key" into the other. Then each publishes one message under the
DH-derived keys, exactly as the guide writes it, and prints the message the peer sent.
No PSK is needed: the keys come from the exchange (compare the fingerprints on both
screens to rule out a man in the middle).
"""

import sys
import time

from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

me, peer = sys.argv[1], sys.argv[2]
with ZenohCommunicator(me, ZenohConfig()) as comm:
    inbox = comm.subscribe_queue(f"chat/{peer}")

    # The guide's lines:
    public_key = comm.initiate_key_exchange(peer)
    print(f"Public key: {public_key.hex()}  fingerprint: {comm.fingerprint()}", flush=True)
    print(f"Paste {peer}'s public key:", flush=True)
    comm.complete_key_exchange(bytes.fromhex(input().strip()))
    comm.publish(f"chat/{me}", {"data": f"secret from {me}"}, serialize="json")

    print(f"{peer} fingerprint: {comm.peer_fingerprint(peer)}")
    print(f"received: {inbox.get(timeout=30)}")
    time.sleep(1.0)  # our own message may still be on its way to the peer
