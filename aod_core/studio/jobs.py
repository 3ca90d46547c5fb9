"""Work the app does in the background: AoD runs, ``aod bench`` comparisons and ``aod generate``
bulk jobs, one worker thread each, observed through snapshots.

The loop never calls a UI; the worker turns its events into a small, lock-protected view (status,
progress bars, the newest verdicts, a timeline of feedback / proposals / chosen prompts) that a
page reads with ``job.view()`` as often as it likes. Jobs live in a process-wide ``JobRegistry``
keyed by run folder, so a refreshed page or a second tab finds the job it started and attaches to
it; a session only ever looks at the run folder it started or opened, so two sessions with two
jobs do not see each other's state. The chat models every job shares are the registry's
:class:`~aod_core.studio.models.ModelPool`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aod_core.canvas.prompt import Prompt
from aod_core.chat.base import ChatModel
from aod_core.chat.endpoints import check_resume
from aod_core.errors import InputError
from aod_core.generators.base import Progress
from aod_core.runs.checks import check_run_folder
from aod_core.runs.loop import Event, Stopped
from aod_core.runs.setup import RunConfig, needs_chat, open_loop
from aod_core.runs.store import RunStore
from aod_core.studio.models import ModelPool

log = logging.getLogger(__name__)

ACTIVE = ("starting", "loading", "fitting", "running", "paused", "stopping")
STAGE_LABELS = {
    "fit": "Fitting the generator",
    "load": "Loading the generator model",
    "judge": "Calibrating the judge on the seeds",
}
TIMELINE_KEEP = 300  # newest timeline entries kept in memory (the run folder has everything)


@dataclass
class Bar:
    frac: float = 0.0
    text: str = ""


@dataclass
class JobView:
    """A consistent copy of a job's state for one page render."""

    run_dir: str
    status: str
    phase: str
    iteration: int | None
    iterations: int
    accepted_total: int
    fit: Bar
    denoise: Bar
    judging: Bar
    live_rows: list[dict[str, Any]]
    pending_texts: list[str]
    timeline: list[dict[str, Any]]
    error: str | None
    pending_prompt: bool
    started: float
    updated: float
    warnings: list[str] = field(default_factory=list)  # e.g. what changed since the run started (fingerprint)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class RunJob:
    """One run folder worked on by a background thread (a new run or a resumed one)."""

    def __init__(self, store: RunStore, models: ModelPool, *, api_key: str | None = None):
        self.store = store
        self.models = models
        self._api_key = api_key  # memory only; never written anywhere
        self._lock = threading.Lock()
        self._loop = None
        self._pause = False
        self._stop = False
        self._pending: Prompt | None = None
        config = RunConfig.from_dict(store.config)
        self._iterations = config.loop.iterations
        self._v = dict(
            status="starting",
            phase="Starting",
            iteration=None,
            error=None,
            accepted_total=len(store.accepted()),
            fit=Bar(),
            denoise=Bar(),
            judging=Bar(),
            live_rows=[],
            pending_texts=[],
            started=time.time(),
            updated=time.time(),
            warnings=[],
        )
        self._timeline: deque[dict[str, Any]] = deque(maxlen=TIMELINE_KEEP)
        self.thread = threading.Thread(target=self._work, name=f"aod-run-{store.path.name}", daemon=True)

    # -- reading (any thread) -------------------------------------------------------------------

    def view(self) -> JobView:
        with self._lock:
            v = dict(self._v)
            return JobView(
                run_dir=str(self.store.path),
                iterations=self._iterations,
                fit=Bar(**asdict(v.pop("fit"))),
                denoise=Bar(**asdict(v.pop("denoise"))),
                judging=Bar(**asdict(v.pop("judging"))),
                live_rows=list(v.pop("live_rows")),
                pending_texts=list(v.pop("pending_texts")),
                timeline=list(self._timeline),
                warnings=list(v.pop("warnings")),
                pending_prompt=self._pending is not None,
                **v,
            )

    @property
    def active(self) -> bool:
        return self.thread.is_alive() or not self.thread.ident  # working, or about to start

    # -- control (any thread) -------------------------------------------------------------------

    def pause(self) -> None:
        with self._lock:
            self._pause = True
            if self._loop is not None:
                self._loop.pause()

    def resume(self) -> None:
        with self._lock:
            self._pause = False
            if self._loop is not None:
                self._loop.resume()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            if self._v["status"] in ACTIVE:
                self._v.update(status="stopping", phase="Stopping at the next step")
            if self._loop is not None:
                self._loop.stop()

    def set_prompt(self, prompt: Prompt) -> None:
        """A human-authored prompt for the next iteration. Checked against the generator when the
        loop exists (InputError if it does not fit); otherwise held until the loop is built."""
        with self._lock:
            loop = self._loop
            if loop is None:
                self._pending = prompt
        if loop is not None:
            with self._lock:
                previous, self._pending = self._pending, prompt
            try:
                loop.set_prompt(prompt)
            except InputError:
                with self._lock:
                    self._pending = previous
                raise
        self._add({"kind": "human_edit", "iteration": self._v["iteration"], "prompt": prompt.to_dict()})

    def prompt_check(self):
        """The running generator's prompt check (``check_prompt``), or None before the loop exists."""
        with self._lock:
            loop = self._loop
        return None if loop is None else loop.gen.check_prompt

    # -- the worker -----------------------------------------------------------------------------

    def _set(self, **kw: Any) -> None:
        with self._lock:
            if self._stop and kw.get("status") in ("loading", "fitting", "running"):
                kw.pop("status")  # a stop request outranks progress reports
                kw.pop("phase", None)
            self._v.update(kw, updated=time.time())

    def _add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._timeline.append(dict(entry, time=time.time()))
            self._v["updated"] = time.time()

    def _on_fit(self, p: Progress) -> None:
        if self._stop:
            raise Stopped  # fitting takes a minute; a stop should not wait for it
        frac = min(1.0, p.done / p.total) if p.total else 1.0
        if p.info.get("cached"):
            self._set(fit=Bar(1.0, "Generator loaded from cache"))
            return
        loss = p.info.get("loss")
        extra = f" · loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
        label = STAGE_LABELS.get(p.stage, p.stage.replace("_", " ").capitalize())
        if p.info.get("stage"):  # a generator with several training phases (difflm: VAE, latent diffusion)
            label += f" ({p.info['stage']})"
        self._set(fit=Bar(frac, f"{label}: step {p.done}/{p.total}{extra}"))

    def _on_event(self, e: Event) -> None:
        d, it = e.data, e.iteration
        if e.kind == "run_started":
            self._set(status="paused" if self._pause else "running", phase="Running")
        elif e.kind == "iteration_started":
            with self._lock:
                self._pending = None  # a pending human edit has been applied at this boundary
            self._set(
                iteration=it, phase=f"Iteration {it + 1}: generating", denoise=Bar(), judging=Bar(), pending_texts=[]
            )
            self._add(
                {"kind": "iteration_started", "iteration": it, "author": d.get("author"), "prompt": d.get("prompt")}
            )
        elif e.kind == "step":
            what = {"generate": "main batch", "calibrate": "batch measuring the compiled shares"}.get(
                d["phase"], "probe batch"
            )
            frac = d["done"] / d["total"] if d["total"] else 1.0
            self._set(denoise=Bar(frac, f"Denoising the {what}: {d['done']}/{d['total']} positions"))
        elif e.kind == "batch_generated":
            self._set(phase=f"Iteration {it + 1}: judging", pending_texts=list(d["texts"]))
        elif e.kind == "judge_step":
            what = "main batch" if d["phase"] == "main" else "probe batch"
            frac = d["done"] / d["total"] if d["total"] else 1.0
            self._set(judging=Bar(frac, f"Judging the {what}: {d['done']}/{d['total']} records"))
        elif e.kind == "verdicts":
            self._set(live_rows=[dict(r, iteration=it) for r in d["rows"]], pending_texts=[])
        elif e.kind == "feedback":
            self._add(
                {
                    "kind": "feedback",
                    "iteration": it,
                    "feedback": d.get("feedback", ""),
                    "error": d.get("summary_error"),
                    "facts": d.get("facts", []),
                }
            )
        elif e.kind == "compiled":
            self._add({"kind": "compiled", "iteration": it, "compiled": d.get("compiled")})
        elif e.kind == "proposals":
            self._set(phase=f"Iteration {it + 1}: trying the optimizer's proposals")
            self._add({"kind": "proposals", "iteration": it, "proposals": d["proposals"]})
        elif e.kind in ("prompt_chosen", "metrics"):
            self._add(dict(d, kind=e.kind, iteration=it))
        elif e.kind == "accepted":
            self._set(accepted_total=d["total"])
        elif e.kind == "paused":
            self._set(status="paused", phase=f"Paused before iteration {it + 1} goes on")
        elif e.kind == "resumed":
            self._set(status="running", phase="Running")
        elif e.kind in ("stopped", "finished"):
            self._set(status=e.kind, phase=e.kind.capitalize())
        elif e.kind == "failed":
            self._set(status="failed", error=d.get("error"))
        elif e.kind == "warning":
            with self._lock:
                self._v["warnings"] = self._v["warnings"] + [d["warning"]]

    def _work(self) -> None:
        try:
            self._run()
        finally:  # whatever happened, the view must not claim the job is still working
            self.store.release()
            with self._lock:
                # The registry keeps every job of the process (its view and timeline are small), so a
                # finished job lets go of its loop: the generator, the judge's fitted models, the
                # seeds. Without this, memory grew by megabytes per run (benchmarks/bench_load.py).
                self._loop = None
                if self._v["status"] in ACTIVE:
                    self._v.update(
                        status="failed", error=self._v["error"] or "the worker ended unexpectedly", phase="Failed"
                    )

    def _run(self) -> None:
        try:
            # Claim the folder now, so `aod resume` elsewhere sees it is being worked on.
            self.store.set_status("running", iteration=self.store.iterations_done())
            config = RunConfig.from_dict(self.store.config)
            cache: dict[str, ChatModel] = {}
            for spec in dict.fromkeys([config.judge, config.optimizer]):
                if not needs_chat(config, spec):
                    continue  # the plausibility judge reads no chat model
                self._set(status="loading", phase=f"Loading the chat model {spec}")
                cache[spec] = self.models.get(spec, config.device, self._api_key)
                if hasattr(cache[spec], "load"):
                    cache[spec].load()  # a load error shows now, not in the middle of judging
            self._set(status="fitting", phase="Fitting the generator on the seeds")
            handle = open_loop(
                self.store, on_event=self._on_event, on_fit=self._on_fit, chat_cache=cache, api_key=self._api_key
            )
            with self._lock:
                self._loop, pending, pause, stop = handle.loop, self._pending, self._pause, self._stop
            if pending is not None:
                try:
                    handle.loop.set_prompt(pending)
                except InputError as e:
                    with self._lock:
                        self._pending = None
                    self._add({"kind": "error", "iteration": None, "error": f"your prompt edit was refused: {e}"})
            if pause:
                handle.loop.pause()
            if stop:
                raise Stopped
            handle.loop.run()
        except Stopped:  # the folder first: whoever sees the view stopped finds the folder stopped too
            self.store.set_status("stopped", iteration=self.store.iterations_done())
            self._set(status="stopped", phase="Stopped")
        except InputError as e:
            self._fail(str(e))
        except Exception as e:  # shown in the page; the run folder keeps every finished iteration
            log.error("run %s failed:\n%s", self.store.path, traceback.format_exc())
            self._fail(f"{type(e).__name__}: {e}")

    def _fail(self, message: str) -> None:
        self._set(status="failed", error=message, phase="Failed")
        try:
            self.store.set_status("failed", error=message, iteration=self.store.iterations_done())
        except (OSError, InputError) as e:  # the folder is gone or the disk is full: the page still says why
            self._set(error=f"{message} (and the run folder could not be updated: {e})")


class JobRegistry:
    """Every job of this process, by run folder; the app keeps one (``st.cache_resource``)."""

    def __init__(self, models: ModelPool | None = None) -> None:
        self.models = models or ModelPool()
        self._jobs: dict[str, RunJob] = {}
        self.benches: dict[str, BenchJob] = {}  # aod bench jobs by output folder
        self.bulks: dict[str, BulkJob] = {}  # aod generate jobs by run folder
        self._lock = threading.Lock()

    def start(
        self,
        store: RunStore,
        *,
        api_key: str | None = None,
        prompt: Prompt | None = None,
        trust_endpoints: bool = False,
    ) -> RunJob:
        """Start (or resume) the run in ``store``; refuses a run another job or process is working on,
        and (``UntrustedEndpoint``) one that would send the key to a server the user has not used,
        unless they confirmed it (``trust_endpoints``)."""
        check_run_folder(store.path)  # a folder edited by hand is refused with the file and line, as by aod resume
        check_resume(store.config, api_key=api_key, confirmed=trust_endpoints)
        key = str(store.path.resolve())
        with self._lock:
            old = self._jobs.get(key)
            if old is not None and old.active:
                raise InputError("this run is already working in this app", where=store.path.name)
            store.claim()  # the folder's writer lock, held by the job until it ends (RunBusy names a holder)
            job = RunJob(store, self.models, api_key=api_key)
            if prompt is not None:
                job.set_prompt(prompt)
            self._jobs[key] = job
        job.thread.start()
        return job

    def get(self, run_dir: str) -> RunJob | None:
        with self._lock:
            return self._jobs.get(str(Path(run_dir).resolve()))

    def active(self) -> list[RunJob]:
        with self._lock:
            return [j for j in self._jobs.values() if j.active]

    def start_bench(self, dataset: Any, out: Path, config: Any, *, api_key: str | None = None) -> BenchJob:
        """Start ``aod bench`` in the background; it shares this registry's chat models."""
        config.check()
        job = BenchJob(dataset, out, config, self.models, api_key)
        with self._lock:
            self.benches[str(Path(out).resolve())] = job
        job.thread.start()
        return job

    def get_bench(self, out: str | Path) -> BenchJob | None:
        with self._lock:
            return self.benches.get(str(Path(out).resolve()))

    def start_bulk(self, run_dir: str | Path, out: str | Path, settings: Any) -> BulkJob:
        """Start ``aod generate`` for a run in the background; one bulk job per run at a time. ``out``
        is the Export page's field: a folder inside the runs root (``runview.bulk_out_dir``)."""
        from aod_core.studio.runview import bulk_out_dir

        settings.check()
        out = bulk_out_dir(out)
        key = str(Path(run_dir).resolve())
        with self._lock:
            busy = [j for j in self.bulks.values() if j.active]
            if busy:  # one Ray instance per process: a second job would share (and shut down) the first's
                raise InputError(
                    f"a bulk job ({busy[0].run_dir.name}) is already working in this app; one at a time",
                    where=Path(run_dir).name,
                )
            job = BulkJob(run_dir, out, settings)
            self.bulks[key] = job
        job.thread.start()
        return job

    def get_bulk(self, run_dir: str | Path) -> BulkJob | None:
        """The newest bulk job of a run (working or finished) in this process."""
        with self._lock:
            return self.bulks.get(str(Path(run_dir).resolve()))


class BenchJob:
    """``aod bench`` for the app: one worker thread, a log for the page; results are read from
    the output folder, which the bench rewrites after every method."""

    def __init__(self, dataset: Any, out: Path, config: Any, models: ModelPool, api_key: str | None = None):
        self.out, self.config, self.models, self.dataset = Path(out), config, models, dataset
        self._api_key = api_key  # memory only
        self._lock = threading.Lock()
        self._lines: deque[str] = deque(maxlen=200)
        self.status, self.error = "running", None
        self.thread = threading.Thread(target=self._work, name=f"aod-bench-{self.out.name}", daemon=True)

    def _log(self, line: str) -> None:
        with self._lock:
            self._lines.append(f"{time.strftime('%H:%M:%S')} {line}")

    def _work(self) -> None:
        from aod_core.runs.bench import Bench

        try:
            cache = {
                spec: self.models.get(spec, self.config.device, self._api_key)
                for spec in {self.config.judge, self.config.optimizer}
            }
            Bench(self.dataset, self.out, self.config, chat_cache=cache, log=self._log).run()
            self.status = "finished"
        except InputError as e:
            self.status, self.error = "failed", str(e)
        except Exception as e:  # shown in the page; results of finished methods stay in the folder
            log.error("bench %s failed:\n%s", self.out, traceback.format_exc())
            self.status, self.error = "failed", f"{type(e).__name__}: {e}"

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    @property
    def active(self) -> bool:
        return self.thread.is_alive()


class BulkJob:
    """``aod generate`` for the app (Export page): one worker thread running the Ray pipeline,
    observed through ``view()``; the output folder keeps every finished shard, so a failed or
    stopped job continues where it was when started again with the same settings."""

    def __init__(self, run_dir: str | Path, out: str | Path, settings: Any):
        self.run_dir, self.out, self.settings = Path(run_dir), Path(out), settings
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._v: dict[str, Any] = {
            "status": "starting",
            "progress": None,
            "manifest": None,
            "error": None,
            "started": time.time(),
            "updated": time.time(),
        }
        self.thread = threading.Thread(target=self._work, name=f"aod-bulk-{self.run_dir.name}", daemon=True)

    def _on_progress(self, p: Any) -> None:
        with self._lock:
            self._v.update(
                status="running" if p.stage != "done" else "finished", progress=asdict(p), updated=time.time()
            )

    def _work(self) -> None:
        from aod_core.runs.bulk import generate

        try:
            manifest = generate(
                self.run_dir, self.out, self.settings, on_progress=self._on_progress, should_stop=self._stop.is_set
            )
            with self._lock:
                self._v.update(status="finished", manifest=manifest, updated=time.time())
        except InputError as e:
            with self._lock:
                self._v.update(status="stopped" if self._stop.is_set() else "failed", error=str(e), updated=time.time())
        except Exception as e:  # shown in the panel; finished shards stay in the output folder
            log.error("bulk job %s failed:\n%s", self.out, traceback.format_exc())
            with self._lock:
                self._v.update(status="failed", error=f"{type(e).__name__}: {e}", updated=time.time())

    def stop(self) -> None:
        """Stop after the shard that finishes next (finished shards are kept)."""
        self._stop.set()
        with self._lock:
            if self._v["status"] in ("starting", "running"):
                self._v["status"] = "stopping"

    def view(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._v, out=str(self.out), n=self.settings.n)

    @property
    def active(self) -> bool:
        return self.thread.is_alive() or not self.thread.ident
