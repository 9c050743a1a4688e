"""Spike raster plots (matplotlib is an optional extra: ``pip install ".[plot]"``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evospikenet.brain.network import Raster


class PlottingUnavailable(RuntimeError):
    """matplotlib is not installed."""


def save_raster_png(raster: Raster, path: str | Path, title: str = "") -> Path:
    """Draw one panel per region (time on x, neuron on y, a dot per spike) into ``path``.

    Raises:
        PlottingUnavailable: matplotlib is missing (the message says how to install it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlottingUnavailable(
            'plots need matplotlib: pip install ".[plot]" (or pip install matplotlib)'
        ) from None
    names = list(raster)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.2 * len(names) + 0.6), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        steps = raster[name]
        t = np.repeat(np.arange(len(steps)), [len(s) for s in steps])
        n = np.concatenate(steps) if steps else np.zeros(0, dtype=np.uint32)
        ax.scatter(t, n, s=1.5, c="black", marker=".", linewidths=0)
        ax.set_ylabel(f"{name}\nneuron")
        ax.set_xlim(0, max(len(steps), 1))
    axes[-1, 0].set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
