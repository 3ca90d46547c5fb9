"""The Models, Run, Curate, Export and Runs pages through AppTest, with a scripted chat model standing
in for the agents (the real embedded models are driven by the browser test)."""

import time

import pytest
from streamlit.testing.v1 import AppTest
from test_app import APP, TIMEOUT, pick_demo, texts
from test_loop import respond

from aod_core.chat.scripted import ScriptedChatModel
from aod_core.runs.store import RunStore


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("AOD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr("aod_core.studio.models.load_chat_model", lambda spec, **kw: ScriptedChatModel(respond))
    from ui.state import registry

    registry.clear()  # a fresh process-wide registry per test
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def small_settings(at, **over):
    at.switch_page("pages/models.py").run()
    values = {"set_iterations": 2, "set_batch": 6, "set_probe": 3, "set_proposals": 1, "set_train_steps": 30, **over}
    for key, value in values.items():
        at.number_input(key=key).set_value(value)
    at.run()
    assert not at.exception


def wait_finished(at, timeout=240):
    from ui.state import registry

    end = time.time() + timeout
    while time.time() < end:
        jobs = registry().active()
        if not jobs:
            return
        time.sleep(0.2)
    raise AssertionError("run did not finish")


def test_models_page_checks_settings(app):
    app.switch_page("pages/models.py").run()
    assert any("usable" in s for s in texts(app.success))
    app.selectbox(key="set_judge_kind").set_value("openai").run()
    app.text_input(key="set_judge_target").set_value("gpt@ftp://x").run()
    assert any("cannot start a run" in e for e in texts(app.error))
    assert any("CPU" in c or "GPU" in c for c in texts(app.caption))
    app.selectbox(key="set_judge_kind").set_value("embedded").run()
    app.selectbox(key="set_generator_kind").set_value("hf").run()
    app.text_input(key="set_generator_target").set_value("some/model").run()
    app.text_input(key="set_gen_options").set_value("batch=8, decode=slow").run()
    assert any("decode must be fast or vanilla" in e for e in texts(app.error))
    app.text_input(key="set_gen_options").set_value("batch=8, decode=vanilla").run()
    assert any("usable" in s for s in texts(app.success))


def test_models_page_draws_the_generator_kinds_own_settings(app):
    """The widgets come from the kind's options class; a value changed there reaches the run settings."""
    app.switch_page("pages/models.py").run()
    assert {"gen_field_embedded_d_model", "gen_field_embedded_n_layers"} <= {w.key for w in app.number_input}
    app.selectbox(key="set_generator_kind").set_value("hf").run()
    app.text_input(key="set_generator_target").set_value("some/model").run()
    assert "gen_field_hf_decode" in {w.key for w in app.selectbox}
    app.number_input(key="gen_field_hf_batch").set_value(8).run()
    app.selectbox(key="gen_field_hf_decode").set_value("vanilla").run()
    assert app.session_state["set_gen_fields"] == {"batch": 8, "decode": "vanilla"}
    assert any("usable" in s for s in texts(app.success))


def test_pages_without_a_run_show_empty_states(app):
    app.switch_page("pages/run.py").run()
    assert any("No dataset yet" in t for t in texts(app.info))
    for page in ("curate", "export"):
        app.switch_page(f"pages/{page}.py").run()
        assert not app.exception and any("No run open" in t for t in texts(app.info))
    app.switch_page("pages/runs.py").run()
    assert any("No runs yet" in t for t in texts(app.info))


def test_start_a_run_watch_curate_export_and_reopen(app, tmp_path):
    pick_demo(app, "penguins")
    small_settings(app)
    app.switch_page("pages/run.py").run()
    app.button(key="run_start").click().run()
    assert not app.exception and not app.error, texts(app.error)
    run_dir = app.session_state["run_dir"]
    assert run_dir
    wait_finished(app)
    app.run()
    store = RunStore.open(run_dir, repair=False)
    assert store.state()["status"] == "finished" and store.iterations_done() == 2
    assert not app.exception and not app.error
    assert [m.value for m in app.metric][0] == "2/2"
    assert any("judge feedback" in m for m in texts(app.markdown))

    # a bad prompt edit on a finished run is refused with a message
    next(t for t in app.text_area if t.label == "Instruction text").set_value("more Dream birds")
    next(b for b in app.get("form_submit_button") if b.label == "Use this prompt next").click().run()
    assert any("resume it first" in e for e in texts(app.error))

    # the words compile into scaffold edits shown next to the text; what cannot be mapped is a warning
    next(t for t in app.text_area if t.label == "Instruction text").set_value(
        "only Dream island, every measurement realistic"
    )
    next(b for b in app.get("form_submit_button") if b.label == "Compile the text").click().run()
    assert not app.exception, app.exception
    (editor,) = [e for e in app.data_editor if e.key.startswith("edit_compiled_")]
    assert list(zip(editor.value["op"], editor.value["path"], editor.value["by"])) == [("pin", "$.island", "compiler")]
    assert any("no field matches 'realistic'" in w for w in texts(app.warning))

    # curate: reject the first accepted record (or accept a rejected one), the export follows
    app.switch_page("pages/curate.py").run()
    assert not app.exception
    cands = [c for c in store.candidates() if c.get("record") is not None and not c["checks"]["schema_errors"]]
    target = cands[0]
    from aod_core.studio import runview

    runview.override(store, f"{target['iteration']}:main:{target['index']}", "reject")
    app.run()
    assert any("1 override" in c for c in texts(app.caption))
    app.switch_page("pages/export.py").run()
    assert not app.exception
    expected = store.curated()
    assert target["record"] not in expected
    if expected:
        assert [m.value for m in app.metric][2] == str(len(expected))
    app.button(key="export_report_build").click().run()
    assert not app.exception
    if expected:
        app.button(key="export_audit").click().run()
        assert not app.exception
        audit = next(df.value for df in app.dataframe if "metric" in df.value.columns)
        assert {"schema_valid_rate", "field_overlap", "distinct_2"} <= set(audit["metric"])

    # runs page lists it; a second session re-attaches through the URL
    app.switch_page("pages/runs.py").run()
    assert any(run_dir.endswith(r) for r in app.dataframe[0].value["run"])
    other = AppTest.from_file(APP, default_timeout=TIMEOUT)
    other.query_params["run"] = run_dir.rsplit("/", 1)[-1]
    other.run()
    assert other.session_state["run_dir"].endswith(run_dir.rsplit("/", 1)[-1])


def test_bad_run_name_in_url_is_reported(app):
    other = AppTest.from_file(APP, default_timeout=TIMEOUT)
    other.query_params["run"] = "../etc"
    other.run()
    assert not other.exception
    assert any("Could not reopen" in w for w in texts(other.warning))


def test_start_errors_show_in_the_page(app):
    pick_demo(app, "penguins")
    app.switch_page("pages/models.py").run()
    app.selectbox(key="set_generator_kind").set_value("hf").run()
    app.text_input(key="set_generator_target").set_value("/nowhere").run()
    app.switch_page("pages/run.py").run()
    app.button(key="run_start").click().run()
    assert not app.exception
    assert any("Could not start the run" in e for e in texts(app.error))
    assert app.session_state["run_dir"] is None


def test_two_sessions_run_two_jobs_without_seeing_each_other(app):
    sessions = [app, AppTest.from_file(APP, default_timeout=TIMEOUT)]
    sessions[1].run()
    for at in sessions:
        pick_demo(at, "penguins")
        small_settings(at, set_iterations=1)
        at.switch_page("pages/run.py").run()
        at.button(key="run_start").click().run()
        assert not at.exception and not at.error, texts(at.error)
    a, b = (at.session_state["run_dir"] for at in sessions)
    assert a != b
    wait_finished(app)
    for at, mine in zip(sessions, (a, b)):
        at.run()
        assert at.session_state["run_dir"] == mine
        shown = [s.value for s in at.subheader]
        assert mine.rsplit("/", 1)[-1] in shown and (b if mine == a else a).rsplit("/", 1)[-1] not in shown


def test_run_page_compares_methods_on_the_current_dataset(app, monkeypatch):
    from test_bench import scripted

    monkeypatch.setattr("aod_core.studio.models.load_chat_model", lambda spec, **kw: ScriptedChatModel(scripted))
    pick_demo(app, "penguins")
    small_settings(app, set_iterations=1, set_batch=4)
    app.switch_page("pages/run.py").run()
    app.multiselect(key="bench_methods").set_value(["static_dlm", "ar_only", "aod"]).run()
    app.button(key="bench_start").click().run()
    assert not app.exception and not app.error, texts(app.error)
    from ui.state import registry

    job = registry().get_bench(app.session_state["bench_dir"])
    job.thread.join(240)
    assert job.status == "finished", job.error
    app.run()
    table = next(df.value for df in app.dataframe if "method" in df.value.columns)
    assert list(table["method"]) == ["static_dlm", "ar_only", "aod"]
    assert table["task_success_rate"].between(0, 1).all()


def test_the_plausibility_judge_explains_rejections_on_the_run_and_curate_pages(app):
    pick_demo(app, "penguins")
    small_settings(app)
    app.switch_page("pages/run.py").run()
    app.button(key="run_start").click().run()
    run_dir = app.session_state["run_dir"]
    wait_finished(app)
    app.run()
    assert not app.exception
    store = RunStore.open(run_dir, repair=False)
    judged = [c for c in store.candidates() if c["judged_by"] == "plausibility"]
    assert judged and all(c["evidence"] is not None for c in judged)
    from aod_core.studio import runview

    reasons = runview.rejection_reasons(store)
    if any(c["verdict"] == "reject" for c in store.candidates(0)):
        assert reasons and reasons[0]["iteration"] == 1
        assert any("most frequent reasons" in c for c in texts(app.caption))
    app.switch_page("pages/curate.py").run()
    target = next(c for c in store.candidates() if c["judged_by"] == "plausibility")
    app.selectbox(key="curate_detail").set_value(f"{target['iteration']}:main:{target['index']}").run()
    assert not app.exception
    assert any("Plausibility evidence" in m for m in texts(app.markdown))


def test_resuming_a_run_on_a_new_server_asks_first(app, tmp_path, monkeypatch):
    """A run folder from someone else names a server that would get this session's key: the Runs page
    asks before resuming, Cancel leaves it, and a confirmation resumes and remembers the server."""
    from aod_core.chat.endpoints import trusted
    from aod_core.runs.store import IterationLog

    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "someone-else"))
    (tmp_path / "runs").mkdir(exist_ok=True)
    store = RunStore.create(
        tmp_path / "runs" / "their-run", {"optimizer": "openai:m@http://127.0.0.1:9/v1", "loop": {"iterations": 2}}
    )
    store.commit(IterationLog(0, accepted=[], metrics={"reward": 0.5}))
    store.set_status("stopped", iteration=1)
    store.release()
    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "me"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-mine")
    started = []
    monkeypatch.setattr("aod_core.studio.jobs.RunJob._run", lambda job: started.append(job.store.path.name))
    app.switch_page("pages/runs.py").run()
    app.button(key="runs_resume").click().run()
    assert not app.exception and not started
    assert any("server you have not used before" in w for w in texts(app.warning))
    assert any("http://127.0.0.1:9/v1" in c.value for c in app.code)
    app.button(key="resume_cancel").click().run()
    assert not any("not used before" in w for w in texts(app.warning)) and not started
    app.button(key="runs_resume").click().run()
    app.button(key="resume_trust").click().run()
    deadline = time.time() + 30
    while not started and time.time() < deadline:
        time.sleep(0.1)
    assert started == ["their-run"] and "http://127.0.0.1:9/v1" in trusted()
