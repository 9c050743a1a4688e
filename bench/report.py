"""What every benchmark writes: its results with the machine and settings, as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def write_report(out: str, settings: dict, results: dict, **more) -> None:
    """Write ``results`` (and any ``more`` sections) to ``out``, creating its folder."""
    doc = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version},
        "settings": settings,
        "results": results,
        **more,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(doc, indent=2))
    print(f"\nwrote {out}")
