"""hf: generators on tiny random-weight models built from configs (no downloads): loading paths, the
token-level scaffold, allowed-token masks, shifted logits, threshold decoding and EOS inside runs."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import torch

from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.canvas.token_scaffold import _leaf_values
from aod_core.data.schema import load_schema, parse_schema
from aod_core.data.seeds import load_records
from aod_core.diffusion import hf_compat
from aod_core.errors import InputError
from aod_core.generators import load_generator
from aod_core.generators.hf import DecodeStats, HFConfig, HFGenerator, ModelRunner, align_shifted, denoise
from aod_core.generators.hf_load import load_dlm
from tests.tiny_dlm import corpus_for, save_mdm, tiny_tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
REMOTE = Path(__file__).resolve().parent / "remote_dlm"
CPU = torch.device("cpu")


def _dataset(name: str):
    schema = load_schema(ASSETS / name / "schema.json")
    return schema, load_records(ASSETS / name / "seeds.jsonl", schema).records


def _validator(schema):
    return jsonschema.Draft202012Validator(schema.raw, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def penguins():
    return _dataset("penguins")


@pytest.fixture(scope="module")
def tokenizer(penguins):
    seeds = penguins[1] + _dataset("seattle-weather")[1] + _dataset("penguin-groups")[1]
    return tiny_tokenizer(corpus_for(seeds))


@pytest.fixture(scope="module")
def mdm_folder(tmp_path_factory, tokenizer):
    return save_mdm(tmp_path_factory.mktemp("mdm"), tokenizer)


def _remote_folder(root: Path, tokenizer, *, dream: bool) -> Path:
    """A trust_remote_code model folder whose code needs every v5 shim."""
    from safetensors.torch import save_file
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    for f in REMOTE.glob("*.py"):
        shutil.copy(f, root / f.name)
    name = "Dream" if dream else "LLaDA"
    model_cls = "TinyDreamModel" if dream else "TinyLLaDAModelLM"
    cfg = {
        "model_type": "Dream" if dream else "llada",
        "architectures": [model_cls],
        "auto_map": {
            "AutoConfig": f"configuration_tinydlm.Tiny{name}Config",
            "AutoModel": f"modeling_tinydlm.{model_cls}",
        },
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_attention_heads": 4,
        "mask_token_id": tokenizer.mask_token_id,
        "tie_word_embeddings": True,
    }
    (root / "config.json").write_text(json.dumps(cfg))
    tokenizer.save_pretrained(root)
    hf_compat.apply()
    cls = get_class_from_dynamic_module(f"modeling_tinydlm.{model_cls}", str(root), local_files_only=True)
    hf_compat.fix_model_class(cls)
    from transformers import AutoConfig

    model = cls(AutoConfig.from_pretrained(root, trust_remote_code=True, local_files_only=True))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"},
        str(root / "model.safetensors"),
        metadata={"format": "pt"},
    )
    return root


# ---- loading --------------------------------------------------------------------------------------


def test_mdm_folder_loads_natively_and_every_record_is_schema_valid(mdm_folder, penguins):
    schema, seeds = penguins
    gen = load_generator(f"hf:{mdm_folder}", schema, seeds, device="cpu", options={"batch": 12})
    report = gen.fit()
    assert report["model_type"] == "aod-mdm" and report["window_cache"] is True
    assert report["mask_id"] == gen.tokenizer.mask_token_id and report["end_id"] == gen.tokenizer.eos_token_id
    cands = gen.sample(Prompt(), 24, seed=3)
    v = _validator(schema)
    assert len(cands) == 24 and all(c.error is None and v.is_valid(c.record) for c in cands)
    again = gen.sample(Prompt(), 24, seed=3)
    assert [c.text for c in again] == [c.text for c in cands]  # reproducible per seed


def test_modernbert_masked_lm_loads_through_auto_model_for_masked_lm(tmp_path, tokenizer, penguins):
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    cfg = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        cls_token_id=tokenizer.eos_token_id,
        sep_token_id=tokenizer.eos_token_id,
    )
    ModernBertForMaskedLM(cfg).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    schema, seeds = penguins
    gen = HFGenerator(str(tmp_path), schema.resolved, seeds, device="cpu", config=HFConfig(batch=8))
    report = gen.fit()
    assert report["model_type"] == "modernbert" and report["window_cache"] is False
    cands = gen.sample(Prompt(), 8, seed=0)
    assert all(c.error is None and _validator(schema).is_valid(c.record) for c in cands)


@pytest.mark.parametrize("dream", [False, True])
def test_remote_code_models_load_with_the_v5_shims(tmp_path, tokenizer, penguins, dream):
    folder = _remote_folder(tmp_path, tokenizer, dream=dream)
    model, tok, facts = load_dlm(folder, CPU, torch.float32, trust_remote_code=True)
    assert facts["shifted_logits"] is dream
    assert "tied_weights_list" in facts["shims"]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # what the v4 list meant
    schema, seeds = penguins
    gen = HFGenerator(
        str(folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=6, trust_remote_code=True)
    )
    cands = gen.sample(Prompt(), 6, seed=1)
    assert all(c.error is None and _validator(schema).is_valid(c.record) for c in cands)


def test_each_shim_restores_what_v5_removed():
    import transformers.utils as tu
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.modeling_utils import _get_tied_weight_keys

    hf_compat.apply()
    cfg = PretrainedConfig(hidden_size=64, num_attention_heads=4, rope_theta=10000.0)
    inv, scale = ROPE_INIT_FUNCTIONS["default"](cfg, None)
    assert scale == 1.0 and torch.allclose(inv, 1.0 / 10000.0 ** (torch.arange(0, 16, 2).float() / 16))
    assert tu.is_torch_fx_available() is True

    class Old(PreTrainedModel):
        config_class = PretrainedConfig
        _tied_weights_keys = ["head.weight"]

        def __init__(self, config):
            super().__init__(config)
            self.emb = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 10, bias=False)

        def get_input_embeddings(self):
            return self.emb

        def get_output_embeddings(self):
            return self.head

    with pytest.raises(AttributeError):  # what v5 does with a v4 list
        _get_tied_weight_keys(_bare(Old))
    assert hf_compat.fix_model_class(Old) is True
    model = Old(PretrainedConfig(tie_word_embeddings=True))
    assert _get_tied_weight_keys(model) == []
    assert hf_compat.tie_after_load(model) and model.head.weight is model.emb.weight
    assert hf_compat.apply() == []  # idempotent


def _bare(cls):
    """An object carrying the class's tied-weight list, as v5's helper sees a module."""
    module = torch.nn.Module()
    module._tied_weights_keys = list(cls._tied_weights_keys)
    return module


def test_chat_template_when_there_is_one_plain_prompt_otherwise(mdm_folder, penguins, tokenizer):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu")
    gen.fit()
    templated = gen.tokenizer.decode(gen.prompt_ids("Say hi"))
    assert templated.startswith("<|user|>Say hi") and templated.endswith("<|assistant|>")
    gen.tokenizer.chat_template = None
    assert gen.tokenizer.decode(gen.prompt_ids("Say hi")) == "Say hi\n"


def test_loading_errors_are_one_line_input_errors(tmp_path, tokenizer, penguins):
    schema, seeds = penguins
    with pytest.raises(InputError, match="not found locally"):
        load_generator("hf:no-such-org/no-such-model", schema, seeds)
    causal = tmp_path / "causal"
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4
        )
    ).save_pretrained(causal)
    plain = tiny_tokenizer(["hello world"], vocab_size=280, chat_template=False)
    plain.mask_token = None
    plain.save_pretrained(causal)
    with pytest.raises(InputError, match="causal LM"):
        load_dlm(causal, CPU, torch.float32)
    no_weights = tmp_path / "noweights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(
        json.dumps({"model_type": "aod-mdm", "vocab_size": len(tokenizer), "mask_token_id": tokenizer.mask_token_id})
    )
    tokenizer.save_pretrained(no_weights)
    with pytest.raises(InputError, match="weights .* missing"):
        load_dlm(no_weights, CPU, torch.float32)


def test_remote_code_is_refused_unless_the_user_allows_it(tmp_path, tokenizer, penguins):
    """A folder that ships Python is refused in one line, before any of its code runs; the option
    (--gen-opt trust_remote_code=true / --trust-remote-code / the Models page checkbox) lets it in."""
    (tmp_path / "m").mkdir()
    folder = _remote_folder(tmp_path / "m", tokenizer, dream=False)
    marker = tmp_path / "code-ran"
    with open(folder / "configuration_tinydlm.py", "a") as f:  # the folder's code leaves a trace if it runs
        f.write(f"\nopen({str(marker)!r}, 'w').close()\n")
    for name in [m for m in sys.modules if "tinydlm" in m]:
        del sys.modules[name]  # _remote_folder imported the code once while building the folder
    marker.unlink(missing_ok=True)
    schema, seeds = penguins
    with pytest.raises(InputError) as e:
        load_generator(f"hf:{folder}", schema, seeds, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and str(folder) in msg and "trust_remote_code=true" in msg and "--trust-remote-code" in msg
    with pytest.raises(InputError, match="ships its own Python code"):
        load_dlm(folder, CPU, torch.float32)
    assert not marker.exists()  # refused before transformers imported anything from the folder
    gen = load_generator(f"hf:{folder}", schema, seeds, device="cpu", options={"trust_remote_code": True, "batch": 4})
    assert all(c.error is None for c in gen.sample(Prompt(), 4, seed=0))


def test_a_folder_without_code_needs_no_trust(mdm_folder):
    from aod_core.generators.hf_load import remote_code_files

    assert remote_code_files(mdm_folder) == []


def test_out_of_memory_names_the_batch(mdm_folder, penguins, monkeypatch):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=7))

    def boom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr("aod_core.generators.hf.denoise", boom)
    with pytest.raises(InputError, match="batch 7"):
        gen.sample(Prompt(), 3)


def test_out_of_memory_halves_the_batch_and_keeps_the_size_that_fits(mdm_folder, penguins, monkeypatch):
    import aod_core.generators.hf as hf

    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=4))
    real, sizes = hf.denoise, []

    def small_gpu(runner, plans, **kw):
        sizes.append(len(plans))
        if len(plans) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(runner, plans, **kw)

    monkeypatch.setattr(hf, "denoise", small_gpu)
    out = gen.sample(Prompt(), 3, seed=1)
    assert len(out) == 3 and sizes == [3, 1, 1, 1]
    assert gen.describe()["batch_now"] == 1 and gen.describe()["oom_halvings"] == 1
    validator = _validator(schema)
    assert all(c.parsed and validator.is_valid(c.record) for c in out)


# ---- token-level scaffold -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["penguins", "seattle-weather"])
def test_scaffold_round_trip_seed_values_through_the_runs(mdm_folder, name):
    schema, seeds = _dataset(name)
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu")
    gen.fit()
    ts = gen.tokens
    langs = ts.languages(Prompt())
    for seed in seeds[:25]:
        plan = ts.plan([5, 6], Prompt(), langs, random.Random(0))
        row = list(plan.ids)
        values = {slot.start: value for slot, value in _leaf_values(ts.scaffold.root, seed)}
        for run in plan.runs:
            text = json.dumps(values[run.slot.start], ensure_ascii=False)
            if run.slot.vtype == "number" and isinstance(values[run.slot.start], (int, float)):
                text = run.slot.spell(values[run.slot.start])
            ids = ts.encode_text(text)
            lang = run.language
            state = lang.start
            for t in ids:  # every seed value is in its run's language
                state = lang.step(state, t)
                assert state >= 0, (run.slot.path, text)
            assert bool(lang.accept[state]) and len(ids) <= run.width
            row[run.start : run.start + run.width] = ids + [ts.end_id] * (run.width - len(ids))
        text, record, error = ts.read(plan, row)
        assert error is None and record == seed
        assert row[:2] == [5, 6] and row[-1] == ts.end_id  # prompt first, EOS after the record


def test_allowed_tokens_per_slot_kind(mdm_folder, penguins):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu")
    gen.fit()
    ts, table = gen.tokens, gen.tokens.table
    langs = ts.languages(Prompt())
    by_path = {s.path: langs[s.start] for s in ts.scaffold.slots if s.start in langs}
    mass = {table.strings[t] for t in by_path["$.body_mass_g"].cands.tolist()}
    assert mass and all(set(s) <= set("0123456789-null") for s in mass)  # digits (and the letters of null)
    species = {table.strings[t] for t in by_path["$.species"].cands.tolist()}
    spellings = ['"Adelie"', '"Chinstrap"', '"Gentoo"']
    assert all(any(sp.find(s) >= 0 for sp in spellings) for s in species)  # pieces of enum spellings only
    assert table.strings.count(None) >= 3  # special tokens never appear in a value
    for special in (ts.mask_id, ts.end_id):
        assert special not in by_path["$.species"].cands.tolist()


def test_prompt_edits_reach_the_token_canvas(mdm_folder, penguins):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=10))
    prompt = Prompt(
        pins={"$.island": "Dream"}, forbid={"$.species": ["Adelie", "Gentoo"]}, ranges={"$.year": [2008, 2008]}
    )
    cands = gen.sample(prompt, 10, seed=2)
    assert all(
        c.record["island"] == "Dream" and c.record["species"] == "Chinstrap" and c.record["year"] == 2008 for c in cands
    )
    with pytest.raises(InputError, match="no field"):
        gen.sample(Prompt(pins={"$.wings": 2}), 1)
    with pytest.raises(InputError, match="biases"):
        gen.check_prompt(Prompt(bias={"$.species": {'"Adelie"': 1.0}}))


def test_arrays_and_optional_keys_take_their_shape_from_the_seeds(mdm_folder):
    schema, seeds = _dataset("penguin-groups")
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=16))
    cands = gen.sample(Prompt(), 16, seed=5)
    v = _validator(schema)
    assert all(c.error is None and v.is_valid(c.record) for c in cands)
    lengths = {len(v) for c in cands for v in c.record.values() if isinstance(v, list)}
    assert len(lengths) > 1  # array lengths vary like the seeds'
    # so an edit of an array's length is refused, not silently ignored
    with pytest.raises(InputError, match="draws array lengths"):
        gen.check_prompt(Prompt(pins={"$.birds.length": 3}))


def test_unions_exponents_and_formats_on_the_token_canvas(mdm_folder):
    schema = parse_schema(
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "properties": {
                "id": {
                    "oneOf": [{"type": "integer", "minimum": 0, "maximum": 99}, {"type": "string", "format": "uuid"}]
                },
                "sci": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                "day": {"type": "string", "format": "date-time"},
            },
            "required": ["id", "sci", "day"],
        }
    )
    seeds = [
        {"id": 3, "sci": 6.02e23, "day": "2020-01-01T10:00:00Z"},
        {"id": "123e4567-e89b-12d3-a456-426614174000", "sci": 1.6e-19, "day": "2021-06-30T23:59:59+02:00"},
    ]
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=12))
    cands = gen.sample(Prompt(), 12, seed=1)
    assert all(c.error is None and schema.is_valid(c.record) for c in cands), [c.error or c.record for c in cands]
    assert {type(c.record["id"]) for c in cands} == {int, str}


# ---- decoding -------------------------------------------------------------------------------------


def test_shifted_logits_are_aligned_to_their_positions():
    logits = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    out = align_shifted(logits)
    assert torch.equal(out[:, 1:], logits[:, :-1]) and torch.equal(out[:, 0], logits[:, 0])

    class Echo(torch.nn.Module):  # the logit at i is one-hot of i: after alignment, position i sees i-1
        def forward(self, input_ids):
            B, L = input_ids.shape
            return type("O", (), {"logits": torch.eye(L).expand(B, L, L)})()

    at = torch.zeros(1, 4, dtype=torch.bool)
    at[0, 2] = True
    got = ModelRunner(Echo(), shifted=True, window_cache=False).full(torch.zeros(1, 4, dtype=torch.long), at)
    assert int(got.argmax(-1)) == 1


class _Recorder:
    """A runner that keeps every canvas it was asked about and can prefer one token everywhere."""

    def __init__(self, inner: ModelRunner, favour: int | None = None):
        self.inner, self.favour, self.seen = inner, favour, []
        self.window_cache = inner.window_cache
        self.shifted = False

    def _bias(self, logits):
        if self.favour is not None:
            logits = logits.clone()
            logits[..., self.favour] += 50.0
        return logits

    def full(self, x, at):
        self.seen.append(x.clone())
        return self._bias(self.inner.full(x, at))

    def prefill(self, x, at):
        self.seen.append(x.clone())
        logits, kv = self.inner.prefill(x, at)
        return self._bias(logits), kv

    def window(self, x, start, stop, cache, at):
        self.seen.append(x.clone())
        return self._bias(self.inner.window(x, start, stop, cache, at))


def _plans(gen, n, seed=0):
    gen.fit()
    langs = gen.tokens.languages(Prompt())
    rng = random.Random(seed)
    head = gen.prompt_ids(gen.instruction(Prompt(), rng))
    return [gen.tokens.plan(head, Prompt(), langs, rng) for _ in range(n)]


@pytest.mark.parametrize("decode,cache", [("fast", True), ("fast", False), ("vanilla", False)])
def test_decoding_invariants(mdm_folder, penguins, decode, cache):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu")
    plans = _plans(gen, 6)
    rec = _Recorder(gen.runner)
    stats = DecodeStats()
    mask = gen.facts["mask_id"]
    rows = denoise(
        rec,
        plans,
        mask_id=mask,
        end_id=gen.facts["end_id"],
        sampling=Sampling(threshold=None),
        decode=decode,
        threshold=0.5,
        block_length=8,
        cache=cache,
        vanilla_k=1,
        generator=torch.Generator().manual_seed(0),
        device=CPU,
        stats=stats,
    )
    assert all(mask not in r for r in rows)  # everything filled
    for before, after in zip(rec.seen, rec.seen[1:]):
        fixed = before != mask
        assert torch.equal(before[fixed], after[fixed])  # committed tokens never change
        assert int((after == mask).sum()) < int((before == mask).sum())  # every step commits
    assert stats.forwards == len(rec.seen)
    for plan, row in zip(plans, rows):  # the fixed skeleton is untouched
        fixed = [i for i, t in enumerate(plan.ids) if t != mask]
        assert [row[i] for i in fixed] == [plan.ids[i] for i in fixed]


def test_classifier_free_guidance_runs_a_doubled_batch(mdm_folder, penguins):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=4))
    cands = gen.sample(Prompt(sampling=Sampling(cfg_scale=1.5)), 4, seed=0)
    assert all(c.error is None and _validator(schema).is_valid(c.record) for c in cands)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_memory_stays_flat_across_samples(mdm_folder, penguins):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cuda", config=HFConfig(batch=8))
    gen.sample(Prompt(), 8, seed=0)
    before = torch.cuda.memory_allocated()
    for seed in range(1, 4):
        gen.sample(Prompt(), 8, seed=seed)
    assert torch.cuda.memory_allocated() <= before


def test_lower_threshold_commits_more_per_step(mdm_folder, penguins):
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu")
    gen.fit()
    steps = {}
    for tau in (1.0, 0.05):
        stats = DecodeStats()
        denoise(
            gen.runner,
            _plans(gen, 4),
            mask_id=gen.facts["mask_id"],
            end_id=gen.facts["end_id"],
            sampling=Sampling(threshold=tau, temperature=0.0),
            decode="fast",
            threshold=tau,
            block_length=64,
            cache=False,
            vanilla_k=1,
            generator=torch.Generator().manual_seed(0),
            device=CPU,
            stats=stats,
        )
        steps[tau] = stats.steps
    assert steps[0.05] < steps[1.0]


def test_eos_inside_runs_only_after_a_complete_value(mdm_folder, penguins):
    """A model that always wants EOS still writes complete values; after EOS a run is all EOS."""
    schema, seeds = penguins
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu")
    plans = _plans(gen, 4)
    end = gen.facts["end_id"]
    rows = denoise(
        _Recorder(gen.runner, favour=end),
        plans,
        mask_id=gen.facts["mask_id"],
        end_id=end,
        sampling=Sampling(temperature=0.0),
        decode="fast",
        threshold=0.9,
        block_length=16,
        cache=True,
        vanilla_k=1,
        generator=torch.Generator().manual_seed(0),
        device=CPU,
    )
    v = _validator(schema)
    for plan, row in zip(plans, rows):
        for run in plan.runs:
            toks = row[run.start : run.start + run.width]
            first = toks.index(end) if end in toks else len(toks)  # a value that fills its run has no EOS
            assert first >= 1 and all(t == end for t in toks[first:])  # even null must be written out
        text, record, error = gen.tokens.read(plan, row)
        assert error is None and v.is_valid(record)


def test_window_cache_matches_a_full_forward_when_nothing_changed(mdm_folder):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(mdm_folder).eval()
    x = torch.randint(0, 300, (2, 40))
    full = model(input_ids=x).logits
    logits, kv = model.prefill(x)
    assert torch.allclose(logits, full, atol=1e-5)
    assert torch.allclose(model.forward_window(x[:, 10:20], 10, kv), full[:, 10:20], atol=1e-5)


def test_cli_sample_with_an_hf_folder(mdm_folder, tmp_path):
    out = tmp_path / "o.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "aod_core.cli",
        "sample",
        "--schema",
        str(ASSETS / "penguins/schema.json"),
        "--seeds",
        str(ASSETS / "penguins/seeds.jsonl"),
        "--generator",
        f"hf:{mdm_folder}",
        "--n",
        "6",
        "--out",
        str(out),
        "--quiet",
        "--gen-opt",
        "batch=3",
        "--gen-opt",
        "decode=vanilla",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 6
    bad = subprocess.run(cmd[:-4] + ["--gen-opt", "decode=slow"], capture_output=True, text=True)
    assert bad.returncode == 2 and "decode must be fast or vanilla" in bad.stderr.strip().splitlines()[-1]


def test_llada_8b_shape_has_llada_8b_parameter_count():
    from aod_core.diffusion.mdm import MaskedDiffusionLM, MDMConfig, param_count

    small = MDMConfig(
        vocab_size=500,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    assert param_count(small) == MaskedDiffusionLM(small).n_params()
    assert 7.9e9 < param_count(MDMConfig.llada_8b()) < 8.1e9


def test_dependencies_and_steering_on_the_token_canvas(mdm_folder, monkeypatch):
    """A pinned determinant writes its dependents from the seeds' map; a pinned dependent forbids the
    determinants mapped elsewhere; a ranged field is decoded before every other run."""
    schema, seeds = _dataset("countries")
    gen = HFGenerator(str(mdm_folder), schema.resolved, seeds, device="cpu", config=HFConfig(batch=6))
    recs = [c.record for c in gen.sample(Prompt(pins={"$.country": "Japan"}), 6, seed=0)]
    assert {(r["continent"], r["iso_alpha"], r["iso_num"]) for r in recs} == {("Asia", "JPN", 392)}
    code = {s["country"]: s["iso_alpha"] for s in seeds}
    recs = [c.record for c in gen.sample(Prompt(), 6, seed=1) if c.parsed]
    assert all(r["iso_alpha"] == code[r["country"]] for r in recs if r["country"] in code)
    gen.fit()
    prompt, cond = gen.conditions(Prompt(pins={"$.continent": "Africa"}))
    assert "Japan" in prompt.forbid["$.country"] and "Nigeria" not in prompt.forbid["$.country"]
    year = next(s.start for s in gen.scaffold.slots if s.path == "$.year")
    _, cond = gen.conditions(Prompt(ranges={"$.year": [1990, 2010]}))
    assert cond.first == {year}
    seen = []
    full = gen.runner.full
    monkeypatch.setattr(gen.runner, "full", lambda x, at: (seen.append(at.nonzero()[:, 0].tolist()), full(x, at))[1])
    monkeypatch.setattr(gen.runner, "window_cache", False)
    recs = [c.record for c in gen.sample(Prompt(ranges={"$.year": [1990, 2010]}), 2, seed=3)]
    assert all(1990 <= r["year"] <= 2010 for r in recs if r)
    # the first steps decode one run per row (the year's), where a block of the skeleton holds several
    first = seen[:1]
    assert first and all(max(rows.count(r) for r in rows) == 1 for rows in first), seen[:3]
    assert max(max(rows.count(r) for r in rows) for rows in seen) > 1
