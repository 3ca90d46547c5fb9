"""One session's hostile upload does not stall the others (issue 28, item 1), in a real browser.

Debian's chromium, driven by Playwright, opens two sessions of ``streamlit run app.py``. Session B
loads a demo dataset. Session A uploads a schema whose ``pattern`` is ``^(a+)+$`` and seeds whose
values are 10,000 a's and a "!": with Python's ``re`` that one check would hold the server's GIL for
longer than the universe has left; on RE2 the seeds are refused at once. While A's upload is being
checked, ``/_stcore/health`` is polled from a thread of the test and session B is used; both must
answer. A then uploads a schema with a backreference and sees the one-line refusal.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.app_server import CHROMIUM, FLAGS, app_server

pytestmark = pytest.mark.slow

EVIL = "^(a+)+$"
SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": EVIL}, "n": {"type": "integer"}},
    "required": ["code", "n"],
}
REFUSAL_S = 5  # the upload's outcome must be on the page this soon
HEALTH_S = 2  # and the health check must never take longer than this meanwhile


@pytest.fixture
def server(tmp_path):
    with app_server(tmp_path / "runs", tmp_path / "streamlit.log", wait_s=60) as (_proc, url):
        yield url


@pytest.fixture
def browser(tmp_path):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium (the README's install step)"
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _session(browser, url):
    """A page in a browser context of its own: a Streamlit session of its own."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    expect(page.get_by_role("radio", name="Upload files")).to_be_enabled(timeout=120_000)  # connected
    return page


class _HealthPoller(threading.Thread):
    """Polls ``/_stcore/health`` until stopped; keeps each answer's latency (None: no answer)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.latencies, self.done = f"{url}/_stcore/health", [], threading.Event()

    def run(self):
        while not self.done.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    ok = r.status == 200 and r.read().strip() == b"ok"
            except OSError:
                ok = False
            self.latencies.append(time.perf_counter() - t0 if ok else None)
            self.done.wait(0.1)


def _shots(tmp_path, pages):
    for name, page in pages.items():
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_a_hostile_pattern_upload_is_refused_quickly_and_stalls_no_other_session(server, browser, tmp_path):
    url = server
    schema = tmp_path / "evil-schema.json"
    schema.write_text(json.dumps(SCHEMA))
    seeds = tmp_path / "evil-seeds.jsonl"
    rows = [{"code": "a" * (3 + i % 5), "n": i} for i in range(10)]
    rows += [{"code": "a" * (10_000 + i) + "!", "n": i} for i in range(5)]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))

    b = _session(browser, url)
    b.locator('[data-testid="stSelectbox"]').filter(has_text="Demo dataset").click()
    b.get_by_role("option", name="penguins", exact=True).click()
    b.get_by_text("Leaf fields").wait_for(timeout=120_000)

    a = _session(browser, url)
    a.get_by_text("Upload files", exact=True).first.click()
    uploaders = a.locator('[data-testid="stFileUploader"] input[type=file]')
    uploaders.nth(0).set_input_files(str(schema))
    a.get_by_text("Now upload the seed records too.").wait_for()

    health = _HealthPoller(url)
    health.start()
    try:
        t0 = time.perf_counter()
        uploaders.nth(1).set_input_files(str(seeds))
        # session B, meanwhile: switch its source and see its page answer
        b.get_by_text("Upload files", exact=True).first.click()
        expect(b.get_by_text("JSON Schema (.json)")).to_be_visible(timeout=REFUSAL_S * 1000)
        b_seconds = time.perf_counter() - t0
        # (the page renders the message as Markdown: the "$" of "$.code" and of the pattern pair up
        # as math, so the test reads the parts outside them)
        error = a.locator('[data-testid="stAlertContentError"]').first
        expect(error).to_contain_text("evil-seeds.jsonl:11:", timeout=REFUSAL_S * 1000)
        refused_s = time.perf_counter() - t0
        expect(error).to_contain_text("(and 4 more problems in 5 records; drop invalid records to continue)")
        expect(a.get_by_text("problem(s) in 5 of 15 records")).to_be_visible()
    except Exception:
        _shots(tmp_path, {"session-a": a, "session-b": b})
        raise
    finally:
        time.sleep(0.5)  # a few more health checks after the refusal
        health.done.set()
        health.join(15)
    answered = [t for t in health.latencies if t is not None]
    print(
        f"hostile seeds refused {refused_s:.2f} s after the upload; session B answered after {b_seconds:.2f} s; "
        f"{len(answered)}/{len(health.latencies)} health checks answered, slowest {max(answered):.3f} s"
    )
    assert health.latencies and len(answered) == len(health.latencies) and max(answered) < HEALTH_S

    # a pattern RE2 cannot run is refused when the schema is uploaded, in one line naming its place
    back = tmp_path / "backref-schema.json"
    back.write_text(json.dumps({**SCHEMA, "properties": {"code": {"type": "string", "pattern": r"(a)\1"}}}))
    t0 = time.perf_counter()
    uploaders.nth(0).set_input_files(str(back))
    refusal = a.locator('[data-testid="stAlertContentError"]').first
    expect(refusal).to_contain_text("backref-schema.json: /properties/code/pattern: pattern ", timeout=REFUSAL_S * 1000)
    expect(refusal).to_contain_text(
        "cannot be checked safely (backreferences are not supported by the linear-time engine)"
    )
    print(f"backreference schema refused {time.perf_counter() - t0:.2f} s after the upload")
    _shots(tmp_path, {"session-a": a, "session-b": b})
