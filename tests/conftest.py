"""Shared test set-up: offline data, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests never touch the network: use the offline copies when nothing else is configured.
if "BAYESGLM_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["BAYESGLM_DATA_DIR"] = str(SHARED_DATA)

torch.set_num_threads(1)


@pytest.fixture
def generator() -> torch.Generator:
    """A freshly seeded generator per test."""
    return torch.Generator().manual_seed(20240101)
