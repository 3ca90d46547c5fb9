"""What ``aod`` prints while it works: a progress bar on stderr (redrawn on a terminal, a few plain
lines otherwise) for fitting and sampling."""

from __future__ import annotations

import sys
import time

from aod_core.diffusion.sampler import StepInfo
from aod_core.generators.base import Progress


class _Progress:
    """Progress on stderr: a redrawn line on a terminal, a few plain lines otherwise."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, label: str, done: int, total: int, extra: str = "", *, force: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 5.0) and done < total:
            return
        self.last = now
        width = 24
        filled = int(width * done / max(total, 1))
        line = f"{label:<8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {extra}"
        sys.stderr.write(("\r" + line + ("\n" if done >= total else "")) if self.tty else line + "\n")
        sys.stderr.flush()

    def fit(self, p: Progress) -> None:
        loss = p.info.get("loss")
        extra = "(cached)" if p.info.get("cached") else (f"loss {loss:.3f}" if isinstance(loss, float) else "")
        label = f"{p.stage} {p.info['stage']}" if p.info.get("stage") else p.stage  # difflm: VAE, latent diffusion
        self.show(label, p.done, p.total, extra, force=p.done >= p.total)

    def step(self, s: StepInfo) -> None:
        self.show("sample", s.total - s.masked, s.total, f"step {s.step}")
