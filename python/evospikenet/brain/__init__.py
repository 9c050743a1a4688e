"""Distributed spiking brain simulation over the encrypted communicator.

- :class:`Network`, :class:`Region`, :class:`Projection`, :func:`default_brain`: the model;
- :func:`simulate`: the whole network in this process (the reference);
- :class:`BrainNode`, :func:`assign_regions`: some regions on this node, the others on
  peers, spikes exchanged every step with conservative synchronization;
- :func:`raster_digest`: a hash of a raster, to compare runs spike for spike;
- :class:`ZenohBrainCommunicator`: the original API's spike helper.
"""

from evospikenet.brain.network import (
    Network,
    Projection,
    Raster,
    Region,
    RegionState,
    default_brain,
    raster_digest,
    simulate,
)
from evospikenet.brain.node import BrainNode, RunMetrics, assign_regions
from evospikenet.brain.spikes import ZenohBrainCommunicator

__all__ = [
    "BrainNode",
    "Network",
    "Projection",
    "Raster",
    "Region",
    "RegionState",
    "RunMetrics",
    "ZenohBrainCommunicator",
    "assign_regions",
    "default_brain",
    "raster_digest",
    "simulate",
]
