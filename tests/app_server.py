"""``streamlit run app.py`` on loopback for the browser test and the browser-load benchmark, and the
Chromium they drive (Debian's, never one Playwright downloads)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("AOD_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(runs: Path, log_path: Path, *, wait_s: float = 90) -> Iterator[tuple[subprocess.Popen, str]]:
    """The app serving ``runs`` (``AOD_RUNS_DIR``) on a free loopback port: yields (process, URL) once
    the port answers, and stops the process (its own id only) on the way out."""
    port = free_port()
    env = dict(os.environ, AOD_RUNS_DIR=str(runs))
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            end = time.time() + wait_s
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"streamlit exited: {log_path.read_text()[-2000:]}") from None
                    if time.time() > end:
                        raise RuntimeError(f"streamlit did not start within {wait_s:.0f} s") from None
                    time.sleep(0.3)
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
