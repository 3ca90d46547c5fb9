"""Concurrent browser sessions: real Chromium pages driving one `streamlit run app.py` on loopback.

Each session is its own browser context (its own cookies, so its own Streamlit session) that
uploads a different demo's schema and seeds on the Design page, sets small budgets on the Models &
settings page and presses **Start run** on the Run page; when its run finishes it presses **New
run** and starts another, until ``--minutes`` are up. The pages are driven round-robin from one
thread (Playwright's sync API is single-threaded); the runs themselves work in the app's worker
threads, concurrently. At the end it checks:

* every run it started finished (none failed, none hung past ``--run-timeout``);
* no session saw another's data: the run each page shows is the one that page started, the run's
  ``inputs/schema.json`` is that session's schema, and every accepted record is valid against it
  (the datasets differ, so another session's record fails it);
* the app process's peak memory (``VmHWM``), and its RSS at the first and the last quarter of the
  time (the runs come and go: memory must not pile up).

    python benchmarks/bench_browser_load.py --sessions 3 --minutes 10 --out benchmarks/results/browser-load.json

Needs Debian's chromium (``apt-get install chromium``; ``AOD_CHROMIUM`` to point elsewhere) and
Playwright's Python package; it never downloads a browser.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import jsonschema

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.app_server import CHROMIUM, FLAGS, app_server  # noqa: E402

DATASETS = ("penguins", "seattle-weather", "cars", "penguin-groups")
BUDGET = (
    ("Iterations", 2),
    ("Batch size", 6),
    ("Probe batch", 4),
    ("Proposals per iteration", 0),
    ("Generator training steps", 60),
)


def _mem_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


class Session:
    """One browser context = one user: a dataset, the runs it started, what its page showed."""

    def __init__(self, browser, url: str, dataset: str):
        self.dataset = dataset
        self.schema = json.loads((ROOT / "assets" / dataset / "schema.json").read_text())
        self.ctx = browser.new_context(viewport={"width": 1300, "height": 900})
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(120_000)
        self.url = url
        self.runs: list[dict] = []  # {"name", "started", "ended", "status", "shown"}
        self.current: dict | None = None

    def _idle(self) -> None:
        self.page.wait_for_timeout(300)
        self.page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=180_000)

    def _nav(self, title: str) -> None:
        self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
        self.page.get_by_role("heading", name=title.split(" &")[0]).first.wait_for()

    def design(self) -> None:
        pg = self.page
        pg.goto(self.url)
        pg.get_by_role("radio", name="Upload files").wait_for(timeout=180_000)
        pg.get_by_text("Upload files", exact=True).first.click()
        files = pg.locator('[data-testid="stFileUploader"] input[type=file]')
        files.nth(0).set_input_files(str(ROOT / "assets" / self.dataset / "schema.json"))
        files.nth(1).set_input_files(str(ROOT / "assets" / self.dataset / "seeds.jsonl"))
        pg.get_by_text("Leaf fields").wait_for(timeout=180_000)
        self._nav("Models & settings")
        for label, value in BUDGET:
            box = pg.get_by_role("spinbutton", name=label, exact=True)
            box.fill(str(value))
            box.press("Enter")
            pg.wait_for_timeout(300)
        pg.get_by_text("Settings are usable.").wait_for()
        self._nav("Run")

    def start(self, runs_dir: Path) -> None:
        pg = self.page
        before = {p.name for p in runs_dir.iterdir()} if runs_dir.exists() else set()
        pg.get_by_role("button", name="Start run").click()
        end = time.time() + 180
        new: set[str] = set()
        while time.time() < end and not new:
            new = ({p.name for p in runs_dir.iterdir()} if runs_dir.exists() else set()) - before
            time.sleep(0.2)
        if len(new) != 1:
            raise SystemExit(f"{self.dataset}: expected one new run folder after Start run, got {sorted(new)}")
        name = new.pop()
        pg.get_by_role("heading", name=name).wait_for(timeout=180_000)  # the page shows the run it started
        self.current = {"name": name, "started": time.time(), "ended": None, "status": None, "shown": name}
        self.runs.append(self.current)

    def poll(self, runs_dir: Path, run_timeout: float) -> bool:
        """True when the current run has ended (finished, failed or timed out)."""
        run = self.current
        if run is None:
            return True
        state_file = runs_dir / run["name"] / "state.json"
        try:
            status = json.loads(state_file.read_text()).get("status")
        except (OSError, ValueError):
            status = None
        if status in ("finished", "failed", "stopped") or time.time() - run["started"] > run_timeout:
            run.update(ended=time.time(), status=status if status in ("finished", "failed", "stopped") else "hung")
            if run["status"] == "finished":  # the page redraws for the finished run, still its own
                self.page.get_by_role("button", name="Pause").wait_for(state="detached", timeout=120_000)
                try:
                    self.page.get_by_role("heading", name=run["name"]).wait_for(timeout=60_000)
                except Exception:  # Playwright's TimeoutError: record what the page shows instead
                    shot = runs_dir.parent / f"page-{self.dataset}-{len(self.runs)}.png"
                    self.page.screenshot(path=str(shot), full_page=True)
                    errors = self.page.locator('[data-testid="stException"]')
                    text = errors.first.inner_text()[:500] if errors.count() else self.page.inner_text("body")[:500]
                    run["shown"] = f"(not its run; screenshot {shot}): {text}"
            self.current = None
            return True
        return False

    def new_run(self) -> None:
        self.page.get_by_role("button", name="New run").click()
        self.page.get_by_role("button", name="Start run").wait_for(timeout=120_000)


def check(sessions: list[Session], runs_dir: Path) -> dict:
    problems, records = [], 0
    for s in sessions:
        validator = jsonschema.Draft202012Validator(s.schema)
        for run in s.runs:
            folder = runs_dir / run["name"]
            if run["status"] != "finished":
                problems.append(f"{s.dataset}: run {run['name']} ended {run['status']}")
            if run["shown"] != run["name"]:
                problems.append(f"{s.dataset}: page showed {run['shown']!r}, not its run {run['name']!r}")
            if json.loads((folder / "inputs" / "schema.json").read_text()) != s.schema:
                problems.append(f"{s.dataset}: run {run['name']} holds another session's schema")
            for line in (folder / "accepted.jsonl").read_text().splitlines():
                records += 1
                if not validator.is_valid(json.loads(line)):
                    problems.append(f"{s.dataset}: run {run['name']} holds a record that fails its schema")
    return {"problems": problems, "accepted_records_checked": records}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--run-timeout", type=float, default=600.0, help="seconds before a run counts as hung")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "browser-load.json"))
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} missing: apt-get install chromium (or set AOD_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-browser-load-"))
    runs_dir = tmp / "runs"
    mem: list[tuple[float, int]] = []
    t_start = time.time()
    with app_server(runs_dir, tmp / "streamlit.log") as (proc, url):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            sessions = [Session(browser, url, DATASETS[i % len(DATASETS)]) for i in range(args.sessions)]
            for s in sessions:
                s.design()
            for s in sessions:
                s.start(runs_dir)
            deadline = t_start + args.minutes * 60
            while any(s.current is not None for s in sessions):
                for s in sessions:
                    if s.poll(runs_dir, args.run_timeout) and time.time() < deadline:
                        print(
                            f"[{time.time() - t_start:6.0f}s] {s.dataset}: run {len(s.runs)} {s.runs[-1]['status']}",
                            flush=True,
                        )
                        s.new_run()
                        s.start(runs_dir)
                m = _mem_kb(proc.pid)
                if "VmRSS" in m:
                    mem.append((time.time() - t_start, m["VmRSS"]))
                time.sleep(1.0)
            browser.close()
        peak = _mem_kb(proc.pid).get("VmHWM", 0)
    elapsed = time.time() - t_start
    result = check(sessions, runs_dir)
    q = max(1, len(mem) // 4)
    first = sorted(r for _, r in mem[:q])[len(mem[:q]) // 2] if mem else 0
    last = sorted(r for _, r in mem[-q:])[len(mem[-q:]) // 2] if mem else 0
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "sessions": args.sessions,
        "datasets": [s.dataset for s in sessions],
        "minutes": round(elapsed / 60, 2),
        "budget": dict(BUDGET),
        "runs": sum(len(s.runs) for s in sessions),
        "runs_by_session": {s.dataset: [r["status"] for r in s.runs] for s in sessions},
        "run_seconds_median": sorted(r["ended"] - r["started"] for s in sessions for r in s.runs if r["ended"])[
            len([1 for s in sessions for r in s.runs if r["ended"]]) // 2
        ]
        if any(s.runs for s in sessions)
        else None,
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_first_quarter_mb": round(first / 1024, 1),
        "rss_last_quarter_mb": round(last / 1024, 1),
        **result,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
