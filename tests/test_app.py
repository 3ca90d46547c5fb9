"""The app's pages through streamlit's AppTest, driven from the entry point as a user would.

AppTest renders one page at a time: tests start from app.py (st.navigation) and use switch_page().
One test fits a tiny model (20 training steps); everything else runs without fitting.
"""

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 120

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
    }
).encode()
SEEDS = b'{"name": "a", "age": 1}\n{"name": "b", "age": -2}\n{"name": "c"}\n{"name": "d", "age": 4}\n'


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "models"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def shown(markdown):
    """What a reader sees of Markdown the pages escaped (``aod_core.studio.markup.md``): the
    characters without their backslashes and word joiners."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def texts(elements):
    return [shown(e.value) for e in elements]


def find_table(at, column):
    """The first table (st.dataframe) that has ``column``."""
    for df in at.dataframe:
        value = df.value
        if column in value.columns:
            return value
    raise AssertionError(f"no table with a {column!r} column")


def pick_demo(at, name):
    at.selectbox(key="design_demo").set_value(name).run()
    assert not at.exception
    assert not at.error, texts(at.error)


def edits(*rows):
    return {"edited_rows": {}, "added_rows": list(rows), "deleted_rows": []}


def test_design_empty_state(app):
    assert any("Nothing loaded yet" in t for t in texts(app.info))
    assert app.session_state["dataset"] is None
    assert not app.dataframe and not app.error


def test_design_demo_shows_fields_stats_and_scaffold(app):
    pick_demo(app, "penguin-groups")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Seeds": "118", "Dropped seeds": "0", "Holdout": "30", "Leaf fields": "7"}
    fields = find_table(app, "constraints")
    assert "$.birds[*].species" in list(fields["path"])
    stats = find_table(app, "distinct")
    assert list(stats["path"])[0] == "$.island"
    (code,) = app.code
    assert code.value.startswith('{"island": ⟨"Biscoe"|"Dream"|"Torgersen"⟩') and "⟨len 1..4⟩" in code.value
    slots = find_table(app, "gated_by")
    assert "$.birds.length" in list(slots["path"])
    ds = app.session_state["dataset"]
    assert len(ds.seeds.records) == 118 and app.session_state["dataset_label"] == "demo: penguin-groups"
    # The task description is the prompt text in session state, and survives a page switch.
    app.text_area(key="prompt_text").input("Penguin groups with realistic measurements").run()
    app.switch_page("pages/sample.py").run()
    assert app.text_area(key="sample_instruction").value == "Penguin groups with realistic measurements"
    app.switch_page("pages/design.py").run()
    assert app.text_area(key="prompt_text").value == "Penguin groups with realistic measurements"
    assert app.selectbox(key="design_demo").value == "penguin-groups"


def test_design_upload_errors_stop_and_drop(app):
    app.radio(key="design_source").set_value("Upload files").run()
    app.file_uploader(key="design_schema_file").set_value(("s.json", b"{nope", "application/json")).run()
    assert any("upload the seed records too" in t for t in texts(app.info))
    app.file_uploader(key="design_seeds_file").set_value(("people.jsonl", SEEDS, "application/octet-stream")).run()
    assert not app.exception
    assert texts(app.error) == [
        "s.json: invalid JSON at line 1, column 2: Expecting property name enclosed in double quotes"
    ]
    assert app.session_state["dataset"] is None

    # A valid schema; two seeds fail it and "stop" is chosen: every problem is listed.
    app.file_uploader(key="design_schema_file").set_value(("s.json", SCHEMA, "application/json")).run()
    assert not app.exception
    (error,) = texts(app.error)
    assert error.startswith("people.jsonl:2: $.age: -2 is less than the minimum of 0")
    issues = find_table(app, "message")
    assert issues.to_dict("records") == [
        {"line": 2, "path": "$.age", "message": "-2 is less than the minimum of 0"},
        {"line": 3, "path": "$", "message": "'age' is a required property"},
    ]
    assert app.session_state["dataset"] is None
    # the fix-here editor lists the two bad seeds; applying them unchanged reports they still fail
    app.button(key="design_fix_apply").click().run()
    assert not app.exception
    assert any("2 record(s) still fail the schema" in e for e in texts(app.error))
    assert app.session_state["dataset"] is None

    # "Drop invalid seeds": the dataset loads with the dropped seeds listed.
    app.radio(key="design_on_invalid").set_value("drop").run()
    assert not app.exception and not app.error
    assert {m.label: m.value for m in app.metric}["Dropped seeds"] == "2"
    assert any("Dropped 2 invalid seeds" in t for t in texts(app.warning))
    assert len(find_table(app, "message")) == 2
    ds = app.session_state["dataset"]
    assert [r["name"] for r in ds.seeds.records] == ["a", "d"]


def test_sample_empty_state(app):
    app.switch_page("pages/sample.py").run()
    assert not app.exception
    assert any("Design page" in t for t in texts(app.info))
    assert app.get("page_link") and not app.button


def test_sample_bad_pin_shows_error_without_fitting(app, tmp_path):
    pick_demo(app, "penguins")
    app.switch_page("pages/sample.py").run()
    app.session_state["sample_pins"] = edits({"path": "$.island", "value": "Atlantis"})
    app.button(key="sample_go").click().run()
    assert not app.exception
    (error,) = texts(app.error)
    assert error.startswith('pin $.island: "Atlantis" is not one of')
    assert app.session_state["sample_result"] is None
    assert not (tmp_path / "models").exists()  # rejected before any fitting


def test_sample_fit_and_sample_tiny_model(app):
    pick_demo(app, "penguins")
    app.text_area(key="prompt_text").input("adult penguins").run()
    app.switch_page("pages/sample.py").run()
    assert not app.exception
    assert any("No samples yet" in t for t in texts(app.caption))
    with_keys = {w.key for w in app.number_input}
    assert {
        "sample_n",
        "sample_seed",
        "sample_steps",
        "sample_temperature",
        "sample_blocks",
        "sample_threshold",
        "sample_train_steps",
    } <= with_keys
    assert app.number_input(key="sample_n").value == 100
    app.number_input(key="sample_train_steps").set_value(20)
    app.number_input(key="sample_n").set_value(20)
    app.session_state["sample_pins"] = edits({"path": "$.island", "value": "Dream"})
    app.button(key="sample_go").click().run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)

    metrics = {m.label: m.value for m in app.metric}
    copying = {"Closer to a seed than real", "Distance to seeds vs real", "Reused keys", "Broken dependencies"}
    assert set(metrics) == {"Valid JSON", "Schema-valid", "Seed copies", "Duplicates", "Seconds"} | copying
    assert metrics["Valid JSON"] == "100%" and metrics["Schema-valid"] == "100%"
    assert metrics["Reused keys"] == "—" and metrics["Broken dependencies"] == "0%"  # penguins: none to keep
    assert metrics["Closer to a seed than real"].endswith("%") and metrics["Distance to seeds vs real"].endswith("×")
    records = find_table(app, "schema_valid")
    assert len(records) == 20
    assert all(json.loads(t)["island"] == "Dream" for t in records["json"])
    assert [b.label for b in app.get("download_button")][0].startswith("Download JSONL")
    result = app.session_state["sample_result"]
    assert result.n == 20 and result.prompt.text == "adult penguins" and result.settings["train_steps"] == 20

    # Reruns keep the result; a bad pin shows an error and leaves the last batch visible.
    app.session_state["sample_pins"] = edits({"path": "$.nope", "value": "1"})
    app.button(key="sample_go").click().run()
    assert not app.exception
    (error,) = texts(app.error)
    assert error.startswith("no field '$.nope' in the scaffold")
    assert len(find_table(app, "schema_valid")) == 20
    assert app.session_state["sample_result"] is result

    # Pins need the scaffold: the raw-text ablation refuses them instead of ignoring them.
    app.session_state["sample_pins"] = edits({"path": "$.island", "value": "Dream"})
    app.toggle(key="sample_scaffold").set_value(False)
    app.button(key="sample_go").click().run()
    assert any("need the scaffold" in t for t in texts(app.error))

    # Choosing another dataset on Design drops the old batch.
    app.switch_page("pages/design.py").run()
    pick_demo(app, "seattle-weather")
    assert app.session_state["sample_result"] is None


def test_sample_page_uses_a_pretrained_dlm_from_the_models_page(app, tmp_path):
    from tests.tiny_dlm import corpus_for, save_mdm, tiny_tokenizer

    pick_demo(app, "penguins")
    seeds = [
        json.loads(x)
        for x in (Path(__file__).resolve().parents[1] / "assets/penguins/seeds.jsonl").read_text().splitlines()
    ]
    folder = save_mdm(tmp_path / "dlm", tiny_tokenizer(corpus_for(seeds)))
    app.switch_page("pages/models.py").run()
    app.selectbox(key="set_generator_kind").set_value("hf").run()
    app.text_input(key="set_generator_target").set_value(str(folder))
    app.text_input(key="set_gen_options").set_value("batch=5").run()
    app.switch_page("pages/sample.py").run()
    assert not app.exception
    assert any("pretrained diffusion LM" in t for t in texts(app.caption))
    assert "sample_train_steps" not in {w.key for w in app.number_input}
    app.number_input(key="sample_n").set_value(10)
    app.session_state["sample_pins"] = edits({"path": "$.island", "value": "Biscoe"})
    app.button(key="sample_go").click().run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Schema-valid"] == "100%"
    records = find_table(app, "schema_valid")
    assert len(records) == 10 and all(json.loads(t)["island"] == "Biscoe" for t in records["json"])
    assert app.session_state["sample_result"].settings["generator"] == f"hf:{folder}"


def test_design_page_calibrates_the_judge_on_the_seeds(app):
    pick_demo(app, "penguins")
    app.button(key="design_calibrate").click().run()
    assert not app.exception and not app.error, texts(app.error)
    shown = {m.label: m.value for m in app.metric}
    held = int(shown["Held-out seeds accepted"].rstrip("%"))
    assert 85 <= held <= 95 and shown["Holdout accepted"].endswith("%") and int(shown["Evidence rules"]) >= 10
    assert any("Accept threshold" in c for c in texts(app.caption))
    assert "rule" in find_table(app, "rule").columns


def test_sample_instruction_text_compiles_to_edits_shown_next_to_it(app):
    """Typing an instruction, compiling it, seeing (and editing) the edits, sampling with them."""
    pick_demo(app, "penguins")
    app.switch_page("pages/models.py").run()
    app.text_input(key="set_compiler").set_value("none").run()  # the rules alone: no chat model to load
    app.switch_page("pages/sample.py").run()
    assert any("compiled into the scaffold edits" in t for t in texts(app.caption))
    app.text_area(key="sample_instruction").input(
        "only Dream island, no nulls in sex, every measurement realistic"
    ).run()
    app.button(key="sample_compile").click().run()
    assert not app.exception, app.exception
    (editor,) = [e for e in app.data_editor if e.key.startswith("sample_compiled_edits_")]
    table = editor.value
    assert sorted(zip(table["op"], table["path"])) == [("forbid", "$.sex"), ("pin", "$.island")]
    assert set(table["by"]) == {"compiler"} and set(table["phrase"]) == {"only Dream island", "no nulls in sex"}
    (warning,) = texts(app.warning)
    assert "no field matches 'realistic'" in warning

    app.number_input(key="sample_train_steps").set_value(20)
    app.number_input(key="sample_n").set_value(20)
    app.button(key="sample_go").click().run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    records = [json.loads(t) for t in find_table(app, "schema_valid")["json"]]
    assert len(records) == 20 and all(r["island"] == "Dream" and r["sex"] is not None for r in records)
    used = find_table(app, "edit")
    assert {'pin island = "Dream"', "forbid sex = null"} == set(used["edit"])
    assert app.session_state["sample_result"].prompt.compiled["text"].startswith("only Dream island")


def test_design_page_shows_and_overrides_the_seeds_dependencies(app):
    pick_demo(app, "countries")
    fields = find_table(app, "dependencies")
    by_path = dict(zip(fields["path"], fields["dependencies"]))
    assert by_path["$.iso_num"] == "identifier; fixed by $.country"
    assert "key ($.country, $.year)" in by_path["$.year"]
    rules = find_table(app, "holdout breaking it")
    assert "$.country -> $.iso_num" in list(rules["rule"]) and "($.country, $.year)" in list(rules["rule"])
    assert all(rules["use"]) and set(rules["holdout breaking it"]) <= {"0/200", "—"}
    app.text_input(key="design_dep_add").input("$.lifeExp -> $.nope").run()
    assert any("no seed has a field $.nope" in t for t in texts(app.error))
    app.text_input(key="design_dep_add").input("$.continent -> $.year").run()
    assert app.session_state["set_dependencies"]["add"] == ["$.continent -> $.year"]
    app.radio(key="design_dep_mode").set_value("off").run()
    assert not app.exception and app.session_state["set_dependencies"]["mode"] == "off"
    assert any("Off: the generator keeps none" in t for t in texts(app.caption))


# ---- user values are text, not Markdown ----------------------------------------------------------

PAYLOAD = "![x](http://127.0.0.1:9/p.png)"
# fields of the element messages that Streamlit renders as Markdown: bodies, labels, help, progress text
MARKDOWN_FIELDS = {"body", "label", "help", "text", "labels"}
PLAIN = {"code", "text", "json"}  # st.code, st.text and st.json show characters as they are
# GitHub's bare links, found in the text after escapes are read (mdast-util-gfm-autolink-literal)
BARE_LINK = re.compile(r"(?i)https?://|www\.|[-.\w+]@[-\w]+\.")


def markdown_strings(at):
    """Every string of the current page that Streamlit's Markdown renders."""
    found = []

    def collect(msg):
        for field, value in msg.ListFields():
            values = list(value) if field.is_repeated else [value]
            if field.type == field.TYPE_MESSAGE:
                for v in values:
                    collect(v)
            elif field.name in MARKDOWN_FIELDS:
                found.extend(v for v in values if isinstance(v, str))

    def walk(node):
        if getattr(node, "proto", None) is not None and node.type not in PLAIN:
            collect(node.proto)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def live_markup(body):
    """What of ``body`` Markdown draws as an image, a link or HTML (CommonMark, then bare links)."""
    live = []
    for token in MarkdownIt("commonmark").parse(body):
        if token.type == "html_block":
            live.append(token.content)
        for child in token.children or []:
            if child.type in ("image", "link_open", "html_inline") or (
                child.type == "text" and BARE_LINK.search(child.content)
            ):
                live.append(f"{child.type}: {child.content}")
    return live


HOSTILE = [
    PAYLOAD,
    "[x](http://h) <img src=x> <b>b</b> &amp; $a$ *e* _u_ ~~s~~ `c` | t | \\ \\[",
    "-2 is less than 0",
    "1. one\n# two\n> three\n+ four\n=====\n---\n2) five",
    "www.example.com and a@b.co and HTTPS://x.y",
    ":red[colour] people.jsonl:2: $.age",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_md_renders_as_the_characters_it_holds(value):
    from html import escape

    from aod_core.studio.markup import md, md_code

    html = MarkdownIt("commonmark").render(md(value)).replace("\u2060", "")
    assert html == "<p>" + escape(value, quote=False) + "</p>\n"
    assert not live_markup(md(value)) and shown(md(value)) == value
    one_line = value.replace("\n", " ")
    html = MarkdownIt("commonmark").render("a " + md_code(value) + " b")
    assert html == f"<p>a <code>{escape(one_line, quote=False)}</code> b</p>\n"
    for edge in ("`", "a``b", " x ", "` y"):
        assert MarkdownIt("commonmark").render(md_code(edge)) == f"<p><code>{escape(edge, quote=False)}</code></p>\n"


def test_user_values_show_as_text_not_markdown(tmp_path, monkeypatch):
    """A seed value, a ?run= name and a run folder's name holding Markdown image syntax are shown as
    those characters on every page: no image (a browser would fetch it), no link."""
    from aod_core.runs.store import RunStore

    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("AOD_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "runs").mkdir()
    RunStore.create(tmp_path / "runs" / "![r](p.png)", {"loop": {"iterations": 1}})
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
        "required": ["name"],
    }
    seeds = [{"name": "seed " + PAYLOAD, "age": 1}] + [{"name": n, "age": i} for i, n in enumerate("abcd")]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = "run " + PAYLOAD
    seen = []

    def check():
        assert not at.exception, at.exception
        for body in markdown_strings(at):
            if "p.png" in body:
                assert not live_markup(body), body
                seen.append(shown(body))

    at.run()
    check()  # the ?run= name, refused
    at.radio(key="design_source").set_value("Upload files").run()
    at.file_uploader(key="design_schema_file").set_value(("s.json", json.dumps(schema).encode(), "application/json"))
    at.file_uploader(key="design_seeds_file").set_value(
        ("seeds.jsonl", "\n".join(map(json.dumps, seeds)).encode(), "application/octet-stream")
    ).run()
    check()  # the seed value, quoted by the schema error
    at.radio(key="design_on_invalid").set_value("drop").run()
    check()
    for page in ("sample", "models", "run", "curate", "export", "runs"):
        at.switch_page(f"pages/{page}.py").run()
        check()
    at.button(key="runs_open").click().run()  # the run folder named with Markdown, on the Run page
    check()
    assert any(f"run {PAYLOAD}" in s for s in seen) and any(f"seed {PAYLOAD}" in s for s in seen)
    assert "![r](p.png)" in [shown(h.value) for h in at.subheader]


def test_a_run_name_too_long_for_a_file_name_is_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("AOD_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = "r" * 300  # was OSError: File name too long, the page gone
    at.run()
    assert not at.exception
    (warning,) = texts(at.warning)
    assert warning.startswith("Could not reopen the run in the address: not a run name: 'rrrr")
    assert "up to 128" in warning
    assert "run" not in at.query_params and at.session_state["run_dir"] is None


def test_the_server_config_keeps_xsrf_cors_and_answers_loopback_names_only():
    """.streamlit/config.toml, read by Streamlit's own Host check (the one its WebSocket applies)."""
    import tomllib

    from streamlit import config
    from streamlit.web.server.starlette.starlette_websocket import is_host_allowed

    server = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "127.0.0.1" and server["enableXsrfProtection"] and server["enableCORS"]
    old = config.get_option("server.allowedHosts")
    config.set_option("server.allowedHosts", server["allowedHosts"])
    try:
        assert all(is_host_allowed(h) for h in ("127.0.0.1:8501", "localhost:8501", "[::1]:8501", "LOCALHOST"))
        # a name re-pointed at 127.0.0.1 (DNS rebinding), or a Host that only looks like loopback
        for host in ("evil.example:8501", "127.0.0.1.evil.example", "localhost@evil.example", None):
            assert not is_host_allowed(host), host
    finally:
        config.set_option("server.allowedHosts", old)


def test_export_page_bulk_output_folder_stays_inside_the_runs_folder(tmp_path, monkeypatch):
    from aod_core.runs.store import RunStore
    from ui.state import registry

    root = tmp_path / "runs"
    root.mkdir()
    RunStore.create(root / "r1", {"loop": {"iterations": 1}})
    monkeypatch.setenv("AOD_RUNS_DIR", str(root))
    registry.clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = "r1"
    at.run()
    at.switch_page("pages/export.py").run()
    assert not at.exception
    assert at.text_input(key="bulk_out").value == "r1/bulk"  # named relative to the runs folder
    for bad in ("../outside", str(tmp_path / "outside"), "/etc"):
        at.text_input(key="bulk_out").set_value(bad)
        next(b for b in at.button if b.label == "Start bulk generation").click().run()
        assert not at.exception
        (error,) = texts(at.error)
        assert error == (
            f"{bad}: the output folder must be a folder inside the runs folder {root.resolve()}, named relative "
            "to it (e.g. 'RUN/bulk')"
        )
        assert registry().get_bulk(root / "r1") is None and not (tmp_path / "outside").exists()
