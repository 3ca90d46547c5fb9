"""End to end in a real browser: Debian's chromium driven by Playwright against `streamlit run app.py`
on loopback, with the real embedded models (fitted DLM, the plausibility judge, SmolLM2 optimizer).

Upload the penguins schema and seeds, start a short run, watch metrics and feedback arrive, pause and
edit the prompt, resume, see that the agents accepted records on their own, override verdicts on the
Curate page, download the JSONL export and check every line against the schema. Screenshots of every step go to ``$AOD_SCREENSHOTS`` (or the test's
temporary folder) and the failing page is saved on failure.
"""

import json
import os
import time
from pathlib import Path

import jsonschema
import pytest
from playwright.sync_api import expect

from aod_core.runs.store import RunStore
from tests.app_server import CHROMIUM, FLAGS, app_server

ROOT = Path(__file__).resolve().parent.parent
PENGUINS = ROOT / "assets" / "penguins"
RUN_TIMEOUT_S = 600

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    with app_server(tmp_path / "runs", tmp_path / "streamlit.log", wait_s=60) as (_proc, url):
        yield url, tmp_path / "runs"


@pytest.fixture
def page(tmp_path):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium (the README's install step)"
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    shots = Path(os.environ.get("AOD_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        pg.set_default_timeout(60_000)
        pg.shots = shots
        try:
            yield pg
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request, page):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        path = page.shots / "FAILED.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failing page: {path}")


def _nav(page, title):
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title.split(" &")[0]).first.wait_for()


def _number(page, label, value):
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(300)


def _idle(page):
    """Wait until Streamlit has finished the rerun the last action started."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)


def _state(run_dir):
    return json.loads((run_dir / "state.json").read_text())["status"] if (run_dir / "state.json").exists() else None


def test_upload_run_steer_curate_export(server, page, tmp_path):
    url, runs = server
    schema = json.loads((PENGUINS / "schema.json").read_text())
    page.goto(url)
    expect(page.get_by_role("radio", name="Upload files")).to_be_enabled(timeout=120_000)  # connected

    # design: upload the schema and seeds
    page.get_by_text("Upload files", exact=True).first.click()
    uploaders = page.locator('[data-testid="stFileUploader"] input[type=file]')
    uploaders.nth(0).set_input_files(str(PENGUINS / "schema.json"))
    uploaders.nth(1).set_input_files(str(PENGUINS / "seeds.jsonl"))
    page.get_by_text("Leaf fields").wait_for()
    page.get_by_role("textbox", name="Task description").fill(
        "Field measurements of adult penguins; realistic and varied."
    )
    page.get_by_role("textbox", name="Task description").press("Tab")
    _idle(page)
    page.screenshot(path=str(page.shots / "design.png"), full_page=True)

    # settings: a short run
    _nav(page, "Models & settings")
    for label, value in (
        ("Iterations", 3),
        ("Batch size", 4),
        ("Probe batch", 2),
        ("Proposals per iteration", 1),
        ("Generator training steps", 120),
    ):
        _number(page, label, value)
    page.get_by_text("Settings are usable.").wait_for()

    # run: start, see metrics and feedback arrive
    _nav(page, "Run")
    page.get_by_role("button", name="Start run").click()
    page.get_by_role("button", name="Pause").wait_for(timeout=120_000)
    run_dir = next(runs.iterdir())
    page.get_by_role("tab", name="Judge & optimizer").click()
    page.get_by_text("judge feedback").first.wait_for(timeout=RUN_TIMEOUT_S * 1000)
    page.get_by_role("tab", name="Charts").click()
    page.get_by_text("Metrics per iteration").first.wait_for()
    page.screenshot(path=str(page.shots / "run.png"), full_page=True)

    # steer: pause, edit the prompt by hand, resume
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Resume").wait_for(timeout=RUN_TIMEOUT_S * 1000)
    page.get_by_role("textbox", name="Instruction text").fill("Mostly Biscoe penguins, every measurement realistic.")
    page.get_by_role("button", name="Use this prompt next").click()
    page.get_by_text("Your edit is waiting for the next iteration.").wait_for()
    page.get_by_role("button", name="Resume").click()
    end = time.time() + RUN_TIMEOUT_S
    while _state(run_dir) not in ("finished", "failed") and time.time() < end:
        time.sleep(1)
    assert _state(run_dir) == "finished", (run_dir / "state.json").read_text()
    page.get_by_role("button", name="Pause").wait_for(state="detached")  # the page redrew for the finished run
    page.get_by_text("finished", exact=True).first.wait_for()
    page.mouse.move(0, 0)
    page.screenshot(path=str(page.shots / "run-finished.png"), full_page=True)
    store = RunStore.open(run_dir, repair=False)
    authors = [p["author"] for p in store.prompts() if p["role"] == "used"]
    assert "human" in authors, authors
    human = next(p for p in store.prompts() if p["role"] == "used" and p["author"] == "human")
    assert human["prompt"]["text"].startswith("Mostly Biscoe")
    # the words reached the text-blind DLM as a compiler-authored bias; "realistic" was reported, not guessed
    compiled = human["prompt"]["compiled"]
    assert [(e["op"], e["path"], e["value"], e["author"]) for e in compiled["edits"]] == [
        ("bias", "$.island", "Biscoe", "compiler")
    ]
    assert human["prompt"]["bias"]["$.island"]['"Biscoe"'] == compiled["edits"][0]["amount"]
    assert "realistic" in compiled["unmapped"][0]["reason"]
    assert any(p["role"] == "compiled" and p["for"] == "human" for p in store.prompts())
    by_agents = store.accepted()
    assert by_agents, "the judge accepted records on its own: the export needs no hand-accepted ones"

    # curate: accept two candidates by hand, then reject the first of them
    _nav(page, "Curate")
    page.get_by_text("Record detail").wait_for()
    page.get_by_role("button", name="Accept this record").click()
    page.get_by_text("after your 1 override(s)").wait_for()
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Candidate").click()
    page.get_by_role("option").nth(1).click()
    _idle(page)
    page.get_by_role("button", name="Accept this record").click()
    page.get_by_text("after your 2 override(s)").wait_for()
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Candidate").click()
    page.get_by_role("option").nth(0).click()
    _idle(page)
    page.get_by_role("button", name="Reject this record").click()
    _idle(page)
    page.screenshot(path=str(page.shots / "curate.png"), full_page=True)
    overrides = store.overrides()
    assert list(overrides.values()).count("reject") == 1 and list(overrides.values()).count("accept") == 1
    rejected = next(
        c["record"] for c in store.candidates() if overrides.get(f"{c['iteration']}:main:{c['index']}") == "reject"
    )

    # export: the JSONL download holds the curated records, each valid against the schema
    _nav(page, "Export")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download JSONL").click()
    path = tmp_path / "export.jsonl"
    dl.value.save_as(path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == store.curated() and len(lines) >= len(by_agents) - 1
    for record in lines:
        jsonschema.validate(record, schema)
    assert rejected not in lines
    page.screenshot(path=str(page.shots / "export.png"), full_page=True)
