"""Shared fixtures for the engine tests.

torch is pinned to one intra-op thread: the test machine has 2 cores shared with other work, and
the sampler's many small tensor ops run ~15x slower when two threads fight over them.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from aod_core.data.seeds import Dataset, load_dataset
from aod_core.generators.embedded import EmbeddedConfig

torch.set_num_threads(1)
# The per-user cache-signing key (aod_core/secrets.py) of the tests is their own, never the user's.
os.environ.setdefault("AOD_CONFIG_DIR", tempfile.mkdtemp(prefix="aod-config-"))

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMOS = ("penguins", "seattle-weather", "penguin-groups")


@lru_cache(maxsize=None)
def demo(name: str) -> Dataset:
    """A demo dataset folder from assets/ (schema, seeds, holdout), loaded once per session."""
    return load_dataset(ASSETS / name)


@pytest.fixture(scope="session")
def get_demo():
    """The demo loader as a fixture: ``get_demo("penguins")`` (loaded once per session)."""
    return demo


@pytest.fixture(params=DEMOS)
def demo_dataset(request) -> Dataset:
    return demo(request.param)


def tiny_config(train_steps: int = 100, **overrides):
    """An EmbeddedConfig small enough to fit in about a second on one core."""
    from dataclasses import fields

    names = {f.name for f in fields(EmbeddedConfig)}
    size = {"batch_size": 32} if "batch_size" in names else {"batch_tokens": 32 * 24}
    return EmbeddedConfig(
        **{"d_model": 32, "n_layers": 1, "n_heads": 2, "train_steps": train_steps, **size, **overrides}
    )


@pytest.fixture(scope="session")
def tiny():
    """``tiny(train_steps=..., **overrides)`` -> a tiny EmbeddedConfig."""
    return tiny_config


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Lets fixtures see a test's outcome (the browser test saves a screenshot when it fails)."""
    outcome = yield
    setattr(item, f"rep_{outcome.get_result().when}", outcome.get_result())
