"""The demo datasets shipped in ``assets/`` (each a dataset folder: schema.json, seeds.jsonl, holdout.jsonl)."""

from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(os.environ.get("AOD_ASSETS") or Path(__file__).resolve().parents[2] / "assets")


def demo_datasets() -> dict[str, Path]:
    """Name -> folder for every demo dataset found, sorted by name."""
    if not ASSETS.is_dir():
        return {}
    return {
        p.name: p for p in sorted(ASSETS.iterdir()) if (p / "schema.json").is_file() and (p / "seeds.jsonl").is_file()
    }
