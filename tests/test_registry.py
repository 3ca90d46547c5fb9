"""The spec registries: every consumer reads one table, and a new generator kind is one module plus one
registration line (the worked example in docs/ARCHITECTURE.md is run here, so it cannot go stale)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from aod_core import chat, generators
from aod_core.canvas.prompt import Prompt
from aod_core.data.schema import parse_schema
from aod_core.errors import InputError
from aod_core.registry import Registry
from aod_core.studio.settings import config_from_settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name"]}
SEEDS = [{"name": "a", "n": 1}, {"name": "b", "n": 2}, {"name": "c", "n": 3}]


def _doc_blocks() -> tuple[str, str]:
    """The example module and its registration line, as docs/ARCHITECTURE.md shows them."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    module = next(b for b in blocks if "def build(" in b)
    line = next(b for b in blocks if b.strip().startswith("register(GeneratorKind("))
    return module, line.strip()


@pytest.fixture
def replay_kind(tmp_path, monkeypatch):
    """The documented example generator, written as a module of its own and registered with its one line."""
    module, line = _doc_blocks()
    pkg = tmp_path / "example_gens"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "replay.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    table = Registry(generators.GENERATORS)  # the test's kinds leave the real table untouched
    monkeypatch.setattr(generators, "GENERATORS", table)
    line = line.replace("aod_core.generators.replay", "example_gens.replay")
    exec(line, {"register": table.register, "GeneratorKind": generators.GeneratorKind})
    yield generators.GENERATORS["replay"]
    sys.modules.pop("example_gens.replay", None)
    sys.modules.pop("example_gens", None)


def test_worked_example_is_one_module_and_one_line(replay_kind):
    schema = parse_schema(SCHEMA, "<schema>")
    gen = generators.load_generator("replay", schema, SEEDS, options={"shuffle": False})
    gen.fit()
    cands = gen.sample(Prompt(), 5, seed=0)
    assert [c.record["name"] for c in cands] == ["a", "b", "c", "a", "b"]
    assert all(schema.is_valid(c.record) for c in cands)
    # the options check, the spec forms and the app's settings all see the new kind
    with pytest.raises(InputError, match="unknown setting"):
        generators.check_options("replay", {"bogus": 1})
    assert "replay" in generators.spec_forms()
    cfg = config_from_settings({"generator": "replay", "gen_options": "shuffle=false"})
    assert cfg.generator == "replay" and cfg.generator_config == {"shuffle": False}


def test_every_registered_kind_builds_its_options_and_has_help():
    for kind in generators.GENERATORS.values():
        assert kind.help and kind.form.startswith(kind.name)
        cls = kind.options_class()
        if cls is not None:
            cls().check()  # the defaults are usable
        assert callable(kind.build_function())
    for kind in chat.CHAT_BACKENDS.values():
        assert kind.help and kind.form.startswith(kind.name)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("gpt", "unknown generator spec 'gpt'"),
        ("embedded:x", "unknown generator spec"),
        ("ar:", "needs a chat model spec"),
        ("hf", "needs a id-or-path|needs an id-or-path"),
        ("difflm:", "needs a causal LM folder"),
    ],
)
def test_bad_generator_specs_name_the_forms(spec, message):
    with pytest.raises(InputError, match=message):
        generators.check_options(spec, {})


def test_kind_of_and_chat_kind_read_the_tables():
    assert generators.kind_of(" hf:/models/x").name == "hf"
    assert generators.kind_of("difflm").sample_view == "difflm"
    assert generators.kind_of("nonsense") is None
    assert chat.chat_kind("openai:gpt@http://127.0.0.1:1/v1").per_session
    assert not chat.chat_kind("embedded").per_session
    assert chat.chat_kind("embedded:x") is None
    assert json.dumps(chat.SPEC_FORMS) and "openai:<model>@<base_url>" in chat.SPEC_FORMS


def test_the_metrics_doc_lists_every_registered_metric_with_its_direction():
    from aod_core.eval.audit import METRICS

    doc = (ROOT / "docs" / "METRICS.md").read_text()
    for name, m in METRICS.items():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, name
        assert f"| {m.direction} |" in row, name


def test_no_docstring_cites_a_file_outside_the_repository():
    offenders = [
        str(p.relative_to(ROOT))
        for d in ("aod_core", "pages", "ui")
        for p in (ROOT / d).rglob("*.py")
        if "DESIGN.md" in p.read_text() or "DESIGN §" in p.read_text()
    ]
    assert offenders == []


def test_option_widgets_come_from_the_options_class_and_reach_the_run_settings():
    from aod_core.generators.base import option_widgets

    hf = {w["name"]: w for w in option_widgets(generators.kind_of("hf:x").options_class())}
    assert hf["decode"]["choices"] == ("fast", "vanilla") and hf["batch"]["default"] == 32 and hf["batch"]["help"]
    # widget values reach the generator only when its kind takes them; the text box wins over a widget
    cfg = config_from_settings({"generator": "hf:/models/x", "gen_fields": {"batch": 8, "d_model": 64}})
    assert cfg.generator_config == {"batch": 8}
    cfg = config_from_settings({"generator": "hf:/models/x", "gen_fields": {"batch": 8}, "gen_options": "batch=4"})
    assert cfg.generator_config == {"batch": 4}
    with pytest.raises(InputError, match="threshold"):
        config_from_settings({"generator": "hf:/models/x", "gen_fields": {"threshold": 2.0}})


def test_the_sample_page_builds_its_generator_from_the_same_settings_as_a_run():
    import json as _json

    from aod_core.studio import sampling

    hf = generators.kind_of("hf:x")
    s = {"generator": "hf:/m", "gen_fields": {"batch": 8}, "gen_options": "decode=vanilla", "trust_remote_code": True}
    opts = _json.loads(sampling.spec_options_text(s, hf))
    assert opts == {"batch": 8, "decode": "vanilla", "trust_remote_code": True}
    assert opts == config_from_settings(s).generator_config  # one rule for both
    # a kind the Models page does not name gets nothing of its settings (ar: is sampled as embedded)
    assert (
        sampling.spec_options_text(
            {"generator": "ar:embedded", "gen_options": "x=1"}, generators.GENERATORS["embedded"]
        )
        == "{}"
    )
