"""RunStore: one run's folder, append-only and crash-safe (contract in docs/RUN_FOLDER.md).

Files (JSON Lines unless noted):

* ``config.json``: the run's configuration, no secrets (written atomically at creation; the runner
  adds the reproducibility fingerprint after the first fit and what changed at each resume).
* ``candidates.jsonl``: every candidate with its checks, verdict, score and reasons.
* ``prompts.jsonl``: every prompt tried or chosen, with its reward and author.
* ``feedback.jsonl``: the judge's batch feedback per iteration.
* ``accepted.jsonl``: accepted records only, one JSON object per line.
* ``metrics.jsonl``: one object per *finished* iteration. It is written last, so it is the commit
  marker: an iteration without its metrics line did not happen.
* ``overrides.jsonl``: human accept/reject decisions on candidates (curation); the last per
  candidate wins. ``curated()`` applies them to the accepted records; exports use it.
* ``state.json``: status (running / paused / stopped / finished / failed) for the app and resume.
* ``.lock``: the writer's claim (``runs/lock.py``): one process works on a folder at a time, from
  ``create`` through every resume; a killed writer's claim goes with its process.

A killed run loses at most the iteration in flight: ``RunStore.open`` cuts every file back to the
last committed iteration (``accepted.jsonl`` by the committed count, the others by their
``iteration`` field, a torn last line in any of them), so resuming never duplicates a record.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from aod_core.errors import InputError
from aod_core.files import atomic_write_text
from aod_core.records import canonical_json
from aod_core.runs.lock import LOCK_NAME, RunLock, holder
from aod_core.secrets import scrub

ITERATION_FILES = ("candidates.jsonl", "prompts.jsonl", "feedback.jsonl")
# Statuses that claim a writer is at work; with no writer holding the folder they read as interrupted.
WORKING = ("created", "running", "paused")


@dataclass
class IterationLog:
    """Everything one iteration adds to the store, written in one go by ``commit``."""

    iteration: int
    candidates: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[Any] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def _read_jsonl(path: Path) -> tuple[list[Any], int]:
    """Parsed lines and the byte length of the well-formed prefix (a torn last line is dropped)."""
    if not path.exists():
        return [], 0
    rows, good = [], 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                rows.append(json.loads(raw))
            except ValueError:
                break
            good += len(raw)
    return rows, good


def _damage(path: Path) -> int | None:
    """The 1-based number of a damaged line with more lines after it, else None.

    Only the last line can be torn by a kill (the store appends); a bad line *followed by* good ones
    means the file was edited by hand or damaged otherwise, and cutting it back there would silently
    drop committed work, so ``repair`` refuses instead."""
    if not path.exists():
        return None
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ends with a newline
    for n, raw in enumerate(lines[:-1], 1):  # the last one may be torn: repair cuts it
        try:
            json.loads(raw)
        except ValueError:
            return n
    return None


class StoreWriteError(InputError):
    """The run folder could not be written (disk full, read-only, gone); committed iterations are intact."""


def _append(path: Path, rows: list[Any]) -> None:
    if not rows:
        path.touch()
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


def scrub_secrets(obj: Any) -> Any:
    """A copy without secrets (aod_core/secrets.py): API keys and URL credentials never reach the disk."""
    return scrub(obj)


def _refuse_used(p: Path) -> None:
    """InputError for a folder that holds a run or other files (a lone lock file is nobody's run)."""
    if p.is_dir() and any(q.name != LOCK_NAME for q in p.iterdir()):
        what = "holds a run (use aod resume)" if (p / "config.json").exists() else "exists and is not empty"
        raise InputError(f"run folder {what}", where=str(p))


class RunStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = RunLock(self.path)

    # -- creating and opening -------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, config: dict[str, Any]) -> RunStore:
        """A new run folder, claimed by the returned store (``release`` lets it go); refuses a
        folder that already holds a run or other files, or that another process is creating."""
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise InputError("run folder exists and is not a folder", where=str(p))
        _refuse_used(p)  # before the lock file is made: a refused folder is left as it was
        if not p.parent.exists():
            raise InputError(f"parent folder {p.parent} does not exist", where=str(p))
        try:
            p.mkdir(exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the run folder ({e.strerror or e})", where=str(p)) from None
        store = cls(p)
        store.claim(takeover=False)
        try:
            _refuse_used(p)  # again under the claim: another process may have made it meanwhile
        except InputError:
            store.release()
            raise
        atomic_write_text(p / "config.json", json.dumps(scrub_secrets(config), indent=2, ensure_ascii=False))
        for name in ITERATION_FILES + ("accepted.jsonl", "metrics.jsonl"):
            (p / name).touch()
        store.set_status("created")
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, *, repair: bool = True) -> RunStore:
        """An existing run. With ``repair`` (resuming) the store claims the folder (``RunBusy``
        while another process works on it) and cuts it back to its last committed iteration.
        Readers that must not touch a live run (export, the app) pass ``repair=False``: every
        read method already returns committed iterations only."""
        p = Path(path)
        if not (p / "config.json").is_file():
            raise InputError("not a run folder (no config.json)", where=str(p))
        store = cls(p)
        if repair:
            store.claim()
            try:
                store.repair()
            except BaseException:
                store.release()
                raise
        return store

    # -- the writer's claim (runs/lock.py) --------------------------------------------------------

    @property
    def claimed(self) -> bool:
        """Whether this store holds the folder's writer lock."""
        return self._lock.held

    def claim(self, *, takeover: bool = True) -> None:
        """Take the writer lock (no-op when this store holds it); ``RunBusy`` names the holder.
        A status left ``running`` by a writer that died becomes ``interrupted`` at once, so the
        folder says what happened even if this process goes on to do nothing."""
        if self._lock.held:
            return
        self._lock.acquire()
        if takeover:
            raw = self._raw_state()
            if raw.get("status") in WORKING:
                try:
                    self.set_status("interrupted", iteration=self.iterations_done(), was=raw.get("status"))
                except InputError:
                    pass  # a read-only folder: the reader's view (``state``) still says interrupted

    def release(self) -> None:
        self._lock.release()

    def check_consistent(self) -> None:
        """InputError, with the reason, for a folder that a kill cannot have left: a missing file,
        a damaged line before the last, fewer accepted records than the metrics counted. A torn
        last line or the lines of an uncommitted iteration are what ``repair`` cuts back."""
        names = ("metrics.jsonl", "accepted.jsonl") + ITERATION_FILES
        missing = [n for n in names if not (self.path / n).is_file()]
        has_work = any((self.path / n).is_file() and (self.path / n).stat().st_size for n in names)
        if missing and has_work:
            raise InputError(
                f"{', '.join(missing)} missing from the run folder (removed by hand?): the run cannot "
                "be continued safely; restore the file(s) or start a new run",
                where=str(self.path),
            )
        for n in missing:  # a run killed before its first commit: nothing to lose
            (self.path / n).touch()
        for n in names:
            bad = _damage(self.path / n)
            if bad is not None:
                raise InputError(
                    f"line {bad} of {n} is not valid JSON and more lines follow it (edited by hand?); "
                    "resume would have to drop what follows: fix or remove that line",
                    where=str(self.path / n),
                )
        metrics, _ = _read_jsonl(self.path / "metrics.jsonl")
        for i, m in enumerate(metrics):
            if not isinstance(m, dict) or m.get("iteration") != i:
                raise InputError(
                    f"metrics.jsonl line {i + 1} should be iteration {i}, found {m.get('iteration') if isinstance(m, dict) else m!r} (edited by hand?)",
                    where=str(self.path / "metrics.jsonl"),
                )
        if metrics:
            want = metrics[-1].get("accepted_total", 0)
            have = len(_read_jsonl(self.path / "accepted.jsonl")[0])
            if have < want:
                raise InputError(
                    f"accepted.jsonl holds {have} records but {want} were accepted by iteration "
                    f"{metrics[-1]['iteration']}: accepted records were removed; restore the file",
                    where=str(self.path / "accepted.jsonl"),
                )

    def repair(self) -> int:
        """Drop whatever the iteration in flight left behind; returns lines removed. Refuses
        (``check_consistent``) a folder damaged in a way a kill cannot explain."""
        self.check_consistent()
        metrics, good = _read_jsonl(self.path / "metrics.jsonl")
        removed = self._truncate(self.path / "metrics.jsonl", good)
        last = metrics[-1]["iteration"] if metrics else -1
        accepted_total = metrics[-1].get("accepted_total", 0) if metrics else 0
        for name in ITERATION_FILES:
            rows, _ = _read_jsonl(self.path / name)
            keep = [r for r in rows if isinstance(r, dict) and r.get("iteration", -1) <= last]
            removed += self._rewrite_if_changed(self.path / name, rows, keep)
        rows, _ = _read_jsonl(self.path / "accepted.jsonl")
        removed += self._rewrite_if_changed(self.path / "accepted.jsonl", rows, rows[:accepted_total])
        return removed

    def _truncate(self, path: Path, good: int) -> int:
        if path.exists() and path.stat().st_size > good:
            with open(path, "r+b") as f:
                f.truncate(good)
            return 1
        return 0

    def _rewrite_if_changed(self, path: Path, rows: list, keep: list) -> int:
        size = path.stat().st_size if path.exists() else 0
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep)
        if len(keep) != len(rows) or len(text.encode()) != size:
            atomic_write_text(path, text)
            return max(1, len(rows) - len(keep))
        return 0

    # -- writing --------------------------------------------------------------------------------

    def commit(self, log: IterationLog) -> None:
        """Append one finished iteration; metrics last, so a crash before it undoes the rest.

        A failed write (disk full, ...) raises ``StoreWriteError``: what it left half-written is an
        uncommitted iteration, which ``aod resume`` cuts back and redoes once the disk has room."""
        try:
            self._commit(log)
        except OSError as e:
            done = self.iterations_done()
            raise StoreWriteError(
                f"cannot write the run folder ({e.strerror or e}) while saving iteration "
                f"{log.iteration}; the {done} iteration(s) saved before are intact: make room, "
                f"then run: aod resume {self.path}",
                where=str(self.path),
            ) from None

    def _commit(self, log: IterationLog) -> None:
        for name, rows in (
            ("candidates.jsonl", log.candidates),
            ("prompts.jsonl", log.prompts),
            ("feedback.jsonl", log.feedback),
        ):
            _append(self.path / name, [dict(r, iteration=log.iteration) for r in rows])
        _append(self.path / "accepted.jsonl", log.accepted)
        total = sum(1 for _ in self._lines("accepted.jsonl"))
        _append(self.path / "metrics.jsonl", [dict(log.metrics, iteration=log.iteration, accepted_total=total)])

    def update_config(self, **keys: Any) -> None:
        """Add or replace top-level keys of ``config.json`` (atomically; secrets scrubbed)."""
        config = dict(self.config, **keys)
        try:
            atomic_write_text(
                self.path / "config.json", json.dumps(scrub_secrets(config), indent=2, ensure_ascii=False)
            )
        except OSError as e:
            raise StoreWriteError(f"cannot write config.json ({e.strerror or e})", where=str(self.path)) from None

    def set_status(self, status: str, **info: Any) -> None:
        state = scrub({"status": status, "pid": os.getpid(), "updated": time.time(), **info})  # errors may quote a URL
        try:
            atomic_write_text(self.path / "state.json", json.dumps(state, ensure_ascii=False))
        except OSError as e:
            raise StoreWriteError(f"cannot write state.json ({e.strerror or e})", where=str(self.path)) from None

    # -- reading --------------------------------------------------------------------------------

    def _lines(self, name: str) -> Iterator[Any]:
        yield from _read_jsonl(self.path / name)[0]

    @property
    def config(self) -> dict[str, Any]:
        """``config.json``, read strictly (it may have been edited by hand): InputError naming the
        file when it cannot be read, is not JSON or holds something other than an object."""
        from aod_core.data.limits import strict_loads
        from aod_core.data.schema import json_type

        where = str(self.path / "config.json")
        try:
            config = strict_loads((self.path / "config.json").read_text(encoding="utf-8"))
        except OSError as e:
            raise InputError(f"cannot read the run's configuration: {e.strerror or e}", where=where) from None
        except UnicodeDecodeError as e:
            raise InputError(
                f"the run's configuration is not UTF-8 text (byte {e.start}: {e.reason})", where=where
            ) from None
        except json.JSONDecodeError as e:
            raise InputError(
                f"the run's configuration is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}", where=where
            ) from None
        except ValueError as e:  # NaN, a key twice, nested too deep (limits.strict_loads)
            raise InputError(f"the run's configuration is not valid JSON: {e}", where=where) from None
        if not isinstance(config, dict):
            raise InputError(f"the run's configuration must be a JSON object, found {json_type(config)}", where=where)
        return config

    def _raw_state(self) -> dict[str, Any]:
        try:
            st = json.loads((self.path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"status": "unknown"}
        return st if isinstance(st, dict) else {"status": "unknown"}

    def state(self) -> dict[str, Any]:
        """``state.json``, except that a working status no writer holds reads ``interrupted``: its
        process was killed before it could say so (``was`` keeps what the file said)."""
        st = self._raw_state()
        if st.get("status") in WORKING and not self._lock.held and not self.busy():
            return dict(st, status="interrupted", was=st["status"])
        return st

    def busy(self) -> bool:
        """Whether a writer other than this store works on the folder. A folder from before
        locks existed (no ``.lock``) is judged by its state's PID."""
        if self._lock.held:
            return False
        if (self.path / LOCK_NAME).exists():
            return holder(self.path) is not None
        pid = self._raw_state().get("pid")
        try:
            os.kill(int(pid), 0)
        except (OSError, ValueError, TypeError, OverflowError):
            return False
        return int(pid) != os.getpid()

    def metrics(self) -> list[dict[str, Any]]:
        return list(self._lines("metrics.jsonl"))

    def _last(self) -> tuple[int, int]:
        m = self.metrics()
        return (m[-1]["iteration"], m[-1].get("accepted_total", 0)) if m else (-1, 0)

    def accepted(self) -> list[Any]:
        """Accepted records of committed iterations (a live run's in-flight lines are not shown)."""
        return list(self._lines("accepted.jsonl"))[: self._last()[1]]

    def _committed(self, name: str) -> list[dict[str, Any]]:
        last = self._last()[0]
        return [r for r in self._lines(name) if isinstance(r, dict) and r.get("iteration", -1) <= last]

    def candidates(self, iteration: int | None = None) -> list[dict[str, Any]]:
        return [c for c in self._committed("candidates.jsonl") if iteration is None or c.get("iteration") == iteration]

    def prompts(self) -> list[dict[str, Any]]:
        return self._committed("prompts.jsonl")

    def feedback(self) -> list[dict[str, Any]]:
        return self._committed("feedback.jsonl")

    def iterations_done(self) -> int:
        return len(self.metrics())

    # -- curation (human overrides of verdicts) ---------------------------------------------------

    def set_override(self, key: str, decision: str | None) -> None:
        """Record a human decision on one candidate (``candidate_key``): accept, reject or None to
        clear it. Appended, so the history of decisions stays; the last line per key wins."""
        if decision not in OVERRIDE_DECISIONS:
            raise InputError(f"override must be one of accept, reject or none, got {decision!r}")
        _append(self.path / "overrides.jsonl", [{"key": key, "decision": decision, "time": time.time()}])

    def overrides(self) -> dict[str, str]:
        """Current override per candidate key (cleared ones left out)."""
        last: dict[str, str | None] = {}
        for row in self._lines("overrides.jsonl"):
            if isinstance(row, dict) and isinstance(row.get("key"), str):
                last[row["key"]] = row.get("decision")
        return {k: v for k, v in last.items() if v}

    def curated(self) -> list[Any]:
        """Accepted records with the overrides applied: the run's accepted records minus those a
        human rejected, plus main-batch candidates a human accepted, once each, in run order."""
        ov = self.overrides()
        if not ov:
            return self.accepted()
        rejected, added = set(), []
        for c in self.candidates():
            decision = ov.get(candidate_key(c))
            if decision == "reject" and c.get("record") is not None:
                rejected.add(canonical_json(c["record"]))
            elif decision == "accept" and c.get("record") is not None and not c.get("accepted"):
                added.append(c["record"])
        out, seen = [], set()
        for r in self.accepted() + added:
            k = canonical_json(r)
            if k not in rejected and k not in seen:
                seen.add(k)
                out.append(r)
        return out


OVERRIDE_DECISIONS = ("accept", "reject", None)


def candidate_key(row: dict[str, Any]) -> str:
    """Stable id of a stored candidate: iteration, batch (main or probe) and index in the batch."""
    return f"{row.get('iteration')}:{row.get('phase', 'main')}:{row.get('index')}"
