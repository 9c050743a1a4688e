"""Distributed spiking brain simulation over the encrypted communicator.

- :class:`Network`, :class:`Region`, :class:`Projection`, :func:`default_brain`: the model;
- :func:`simulate`: the whole network in this process (the reference);
- :class:`BrainNode`, :func:`assign_regions`: some regions on this node, the others on
  peers, spikes exchanged every step with conservative synchronization;
- :func:`load_network`: a network (and its node table) from a TOML file;
- :func:`save_record`, :func:`load_record`, :func:`merge_records`: run records (``.npz``);
- :func:`raster_digest`: a hash of a raster, to compare runs spike for spike;
- :class:`ZenohBrainCommunicator`: the original API's spike helper.
"""

from evospikenet.brain.files import NetworkFile, NetworkFileError, load_network
from evospikenet.brain.network import (
    Network,
    Projection,
    Raster,
    Region,
    default_brain,
    model_defaults,
    raster_digest,
    simulate,
)
from evospikenet.brain.node import BrainNode, RunMetrics, assign_regions
from evospikenet.brain.record import Record, load_record, merge_records, save_record
from evospikenet.brain.spikes import ZenohBrainCommunicator

__all__ = [
    "BrainNode",
    "Network",
    "NetworkFile",
    "NetworkFileError",
    "Projection",
    "Raster",
    "Record",
    "Region",
    "RunMetrics",
    "ZenohBrainCommunicator",
    "assign_regions",
    "default_brain",
    "load_network",
    "load_record",
    "merge_records",
    "model_defaults",
    "raster_digest",
    "save_record",
    "simulate",
]
