"""A real OpenAI-compatible server on loopback for the ``openai:`` tests and the servers benchmark:
``transformers serve`` (the ``serving`` extra of transformers) serving the embedded SmolLM2.

The server reads the folder the embedded GGUF is converted to (``LocalChatModel``'s cache), so it
never converts on its own and never downloads: the hub is switched off in its environment. The folder
is reached through a link named ``SmolLM2-135M-Instruct`` in the server's working folder, because
``transformers serve`` pinned to a local folder only answers requests that name the model exactly as
its command line did; a short relative name keeps the ``openai:`` spec readable.

The server runs its model in a child process of its own, so it is started in a new process group and
that group (only the processes this helper started) is stopped on the way out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.app_server import free_port

MODEL_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class RealServer:
    process: subprocess.Popen
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str
    log_path: Path

    @property
    def spec(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def embedded_folder(cache_dir: Path) -> Path:
    """The embedded model as a transformers folder (converted from its GGUF once, then cached)."""
    from aod_core.chat.local import LocalChatModel

    model = LocalChatModel.embedded(cache_dir=cache_dir).load()
    return Path(model.loaded_from)


def serve_command(port: int, model: str, *, batching: bool = True) -> list[str]:
    # Continuous batching answers the several requests an agent sends at once together, as vLLM does;
    # without it the server queues them, and a queued request's wait counts against the client's time-out.
    return [sys.executable, "-m", "transformers.cli.transformers", "serve", model, "--host", "127.0.0.1",
            "--port", str(port), "--device", "cpu", "--dtype", "float32", "--log-level", "warning",
            *(["--continuous-batching"] if batching else [])]  # fmt: skip


@contextmanager
def real_server(
    folder: Path, workdir: Path, *, batching: bool = True, threads: int = 1, wait_s: float = 240
) -> Iterator[RealServer]:
    """``transformers serve`` of the model ``folder`` on a free loopback port: yields once ``/health``
    answers and the model lists, and stops the server's process group on the way out."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / MODEL_NAME
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(folder.resolve(), target_is_directory=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    env.pop("OPENAI_API_KEY", None)  # the server needs none, and a test's key must not reach it
    log_path = workdir / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            serve_command(port, MODEL_NAME, batching=batching),
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the model's child process stops with it
        )
        server = RealServer(proc, f"{base}/v1", MODEL_NAME, log_path)
        try:
            _wait_until_ready(server, base, wait_s)
            yield server
        finally:
            stop(proc)


def _wait_until_ready(server: RealServer, base: str, wait_s: float) -> None:
    end = time.monotonic() + wait_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"transformers serve exited ({server.process.returncode}): {server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if json.load(r).get("status") == "ok":
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"transformers serve did not answer /health within {wait_s:.0f} s: {server.log_tail()}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """Stop the server and its model process: the group it leads, which this helper created."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)
    # The model process may outlive the server by a moment; the group is ours, so end what is left.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
