"""What every benchmark records beside its numbers (machine, date), and where it writes them.

The benchmarks are scripts run by hand (``python bench/bench_<topic>.py``); their JSON
files under ``bench/results/`` feed the book's performance page (``make performance``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def now() -> str:
    """The current UTC time, to the second, in ISO format."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def machine(**extra) -> dict:
    """Platform, processor, core count and torch version, plus the benchmark's own ``extra`` facts."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        **extra,
    }


def write(name: str, record: dict, *, indent: int = 2) -> Path:
    """Write ``record`` to ``bench/results/<name>.json`` and say where."""
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=indent, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path
