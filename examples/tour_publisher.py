"""The README's tour, second terminal: send three encrypted messages to node-2.

EVOSPIKENET_PSK=<the same 64 hex digits> python3 examples/tour_publisher.py
"""

import os

from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

config = ZenohConfig(psk=os.getenv("EVOSPIKENET_PSK"))
with ZenohCommunicator("node-1", config) as comm:
    # A request is retried until a service answers: node-2 is up and subscribed.
    print("node-2 is", comm.request("tour/ready", "are you there?", timeout=60))
    for n in range(3):
        comm.publish("tour/greetings", {"n": n, "text": "hello"}, serialize="json")
    print("sent 3 encrypted messages")
