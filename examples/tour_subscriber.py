"""The README's tour, first terminal: receive three encrypted messages.

EVOSPIKENET_PSK=<64 hex digits> python3 examples/tour_subscriber.py
"""

import os

from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

config = ZenohConfig(psk=os.getenv("EVOSPIKENET_PSK"))
with ZenohCommunicator("node-2", config) as comm:
    inbox = comm.subscribe_queue("tour/greetings", with_info=True)
    comm.serve("tour/ready", lambda _: "listening")  # lets node-1 know we are here
    print("node-2 waiting for messages on tour/greetings")
    for _ in range(3):
        data, sender, topic = inbox.get(timeout=60)
        print(f"{sender} -> {topic}: {data}")
    print(comm.stats()["decrypt_failures"], "decryption failures")
