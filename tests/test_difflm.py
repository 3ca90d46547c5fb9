"""DiffLM (``difflm``): model pieces, beta schedule, soft-prompt injection, the generator end to end.

Everything runs on a tiny Llama (2 layers, width 32, built from a config) with a byte-level BPE
tokenizer trained here on the penguin seeds, never on SmolLM2: the decoder is injectable
(``decoder=(model, tokenizer)``) or given as a folder (``difflm:<folder>``). The tiny LM gets a few
seconds of language-model training on the seeds first, because a random-weight one this small gives
a near-uniform next-token distribution that no soft prompt can move: frozen afterwards, it is the
same situation as SmolLM2 at a thousandth of the cost.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from conftest import ASSETS

from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.data.schema import load_schema
from aod_core.errors import InputError
from aod_core.eval.audit import audit
from aod_core.eval.distance import dcr_distances
from aod_core.generators import difflm as D
from aod_core.generators import load_generator
from aod_core.generators.difflm.generator import DiffLMConfig, DiffLMGenerator
from aod_core.records import Candidate
from aod_core.runs import charts

PENGUINS = ASSETS / "penguins"
SCHEMA = load_schema(PENGUINS / "schema.json")
SEEDS = [json.loads(line) for line in (PENGUINS / "seeds.jsonl").read_text().splitlines()]
HOLDOUT = [json.loads(line) for line in (PENGUINS / "holdout.jsonl").read_text().splitlines()]

TINY = {
    "latent_dim": 4,
    "soft_tokens": 2,
    "encoder_dim": 16,
    "encoder_layers": 1,
    "encoder_heads": 2,
    "injector_hidden": 32,
    "train_steps": 12,
    "batch_size": 8,
    "eval_every": 4,
    "diffusion_steps": 150,
    "diffusion_hidden": 32,
    "diffusion_layers": 1,
    "diffusion_batch": 32,
    "ode_steps": 8,
    "sample_batch": 16,
    "retries": 1,
    "max_new_tokens": 120,
}


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator([json.dumps(r, separators=(",", ":")) for r in SEEDS], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")


def _tiny_lm(tok, state: dict | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


def _pretrain(model, tok, steps: int = 100) -> dict:
    texts = [json.dumps(r, separators=(",", ":")) for r in SEEDS]
    rows = [[tok.eos_token_id] + tok(t)["input_ids"] + [tok.eos_token_id] for t in texts]
    x = torch.full((len(rows), max(map(len, rows))), tok.eos_token_id)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = x[torch.randint(len(x), (16,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


@pytest.fixture(scope="module")
def lm_state(tok):
    return _pretrain(_tiny_lm(tok), tok)


@pytest.fixture
def pair(tok, lm_state):
    """A fresh (model, tokenizer): a decoder per test, so nothing leaks between tests."""
    return _tiny_lm(tok, lm_state), tok


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tok, lm_state):
    """The tiny decoder saved as an ordinary transformers folder (for ``difflm:<folder>``)."""
    where = tmp_path_factory.mktemp("tiny-lm")
    _tiny_lm(tok, lm_state).save_pretrained(where)
    tok.save_pretrained(where)
    return where


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "cache"))


def tiny(**kw) -> DiffLMConfig:
    return DiffLMConfig(**{**TINY, **kw})


# -- records as text ---------------------------------------------------------------------------------


def test_serialize_orders_keys_by_schema_and_marks_values():
    rec = dict(reversed(list(SEEDS[0].items())))  # keys in the wrong order
    text, spans = D.serialize_record(rec, SCHEMA.raw)
    assert text == json.dumps(SEEDS[0], separators=(",", ":"))  # schema order, compact
    values = [text[a:b] for a, b in spans]
    assert values == [json.dumps(v) for v in SEEDS[0].values()]  # required keys are structure, values are not
    nested, spans = D.serialize_record({"a": [1, 2]}, {"properties": {"a": {"type": "array"}}})
    assert nested == '{"a":[1,2]}'
    assert [nested[a:b] for a, b in spans] == ['"a":', "[", "1", ",", "2", "]", "}"]  # optional key, array choices


def test_tokenize_weighs_values_over_structure(tok):
    data = D.tokenize_records(SEEDS[:3], tok, SCHEMA.raw, eos_id=tok.eos_token_id, structure_weight=0.1, max_tokens=200)
    assert data.ids.shape[0] == 3 and data.ids.shape == data.weights.shape
    n = int(data.lengths[0])
    assert data.ids[0, n - 1] == tok.eos_token_id and (data.weights[0, n:] == 0).all()
    ids, w = data.ids[0, : n - 1].tolist(), data.weights[0, : n - 1].tolist()
    pieces = tok.convert_ids_to_tokens(ids)
    assert w[0] == pytest.approx(0.1)  # '{"' is structure
    digits = [wi for p, wi in zip(pieces, w) if p.isdigit()]
    assert digits and all(wi == 1.0 for wi in digits)
    cut = D.tokenize_records(SEEDS[:3], tok, SCHEMA.raw, eos_id=tok.eos_token_id, structure_weight=0.1, max_tokens=10)
    assert cut.ids.shape[1] == 10 and (cut.ids[:, -1] != tok.eos_token_id).all()  # cut records lose their end


# -- model pieces ----------------------------------------------------------------------------------


def test_shapes(pair):
    dec = D.FrozenDecoder(*pair)
    data = D.tokenize_records(
        SEEDS[:5], dec.tokenizer, SCHEMA.raw, eos_id=dec.eos_id, structure_weight=0.1, max_tokens=200
    )
    enc = D.RecordEncoder(dec.d_model, 16, 1, 2, latent_dim=6, max_len=200)
    mu, logvar = enc(dec.token_embeddings(data.ids), data.lengths)
    assert mu.shape == logvar.shape == (5, 6)
    soft = D.SoftPrompt(6, 32, k=3, d_model=dec.d_model, init=torch.randn(3, dec.d_model))
    s = soft(mu)
    assert s.shape == (5, 3, dec.d_model)
    loss, per = D.reconstruction_loss(dec, s, data.ids, data.weights)
    assert loss.ndim == 0 and per.shape == (5,) and torch.isfinite(per).all()
    assert D.kl_divergence(torch.zeros(2, 6), torch.zeros(2, 6)).item() == pytest.approx(0.0)
    net = D.LatentDenoiser(6, hidden=16, layers=1)
    assert net(torch.randn(7, 6), torch.rand(7) + 0.1).shape == (7, 6)
    assert D.sample_latents(net, 9, 6, steps=4, seed=1).shape == (9, 6)
    assert all(not p.requires_grad for p in dec.model.parameters())  # the decoder is frozen


def test_untrained_soft_prompt_starts_as_real_token_embeddings(pair):
    dec = D.FrozenDecoder(*pair)
    init = D.prefix_embeddings(dec, "Palmer penguin as JSON:", 4)
    soft = D.SoftPrompt(4, 16, 4, dec.d_model, init)
    out = soft(torch.zeros(1, 4))[0]
    # with z = 0 the prompt is the bias (the text's embeddings) plus a small z-independent term
    assert torch.nn.functional.cosine_similarity(out, init, dim=-1).min() > 0.9


def test_soft_prompt_injection_changes_next_token_distribution(pair):
    dec = D.FrozenDecoder(*pair)
    soft = D.SoftPrompt(4, 32, 2, dec.d_model, D.prefix_embeddings(dec, "record:", 2))
    z = torch.stack([torch.zeros(4), torch.full((4,), 3.0)])
    with torch.no_grad():
        s = soft(z)
        first = dec.model(inputs_embeds=s).logits[:, -1]  # the distribution of the record's first token
        again = dec.model(inputs_embeds=soft(z[:1])).logits[:, -1]
    p = torch.softmax(first, -1)
    assert torch.allclose(again[0], first[0], atol=1e-5)  # same z, same distribution
    assert (p[0] - p[1]).abs().sum() > 1e-3  # different z, different distribution
    assert not torch.allclose(first[0], first[1], atol=1e-4)


def test_vae_reconstruction_loss_decreases_on_a_tiny_dataset(pair):
    dec = D.FrozenDecoder(*pair)
    data = D.tokenize_records(
        SEEDS[:16], dec.tokenizer, SCHEMA.raw, eos_id=dec.eos_id, structure_weight=1.0, max_tokens=200
    )
    torch.manual_seed(0)
    enc = D.RecordEncoder(dec.d_model, 16, 1, 2, 4, 200)
    soft = D.SoftPrompt(4, 32, 2, dec.d_model, D.prefix_embeddings(dec, "record:", 2))
    idx = torch.arange(16)
    before = D.evaluate_recon(dec, enc, soft, data, idx, 8)
    report = D.train_vae(
        dec,
        enc,
        soft,
        data,
        steps=40,
        batch_size=8,
        lr=5e-3,
        schedule=D.BetaSchedule(),
        window=4,
        val_fraction=0.0,
        eval_every=10,
        stop_patience=2,
        seed=0,
    )
    after = D.evaluate_recon(dec, enc, soft, data, idx, 8)
    assert after < 0.9 * before, (before, after)
    assert report.steps == 40 and report.recon_last < report.recon_first
    assert len(report.history) == 40 and report.val_recon_best is None  # 16 seeds: no validation split
    assert all(p.grad is None for p in dec.model.parameters())  # only the encoder and the injector train


def test_vae_stops_early_once_beta_is_down_and_validation_stalls(pair):
    dec = D.FrozenDecoder(*pair)
    data = D.tokenize_records(
        SEEDS[:24], dec.tokenizer, SCHEMA.raw, eos_id=dec.eos_id, structure_weight=0.1, max_tokens=200
    )
    enc = D.RecordEncoder(dec.d_model, 16, 1, 2, 4, 200)
    soft = D.SoftPrompt(4, 32, 2, dec.d_model, D.prefix_embeddings(dec, "record:", 2))
    # lr 0: nothing improves, so beta falls window after window, then validation stalls and training stops
    report = D.train_vae(
        dec,
        enc,
        soft,
        data,
        steps=200,
        batch_size=8,
        lr=0.0,
        schedule=D.BetaSchedule(),
        window=2,
        val_fraction=0.2,
        eval_every=2,
        stop_patience=2,
        seed=0,
    )
    assert report.stopped_early and report.steps < 200
    assert report.final_beta == pytest.approx(0.001) and report.beta_decays == 4
    assert report.best_step == 2 and report.val_recon_best is not None


def test_beta_schedule_decreases_on_plateaus_and_never_below_min():
    s = D.BetaSchedule(beta_max=0.1, beta_min=0.001, factor=0.3, patience=2, tol=0.01)
    assert s.beta == 0.1
    for loss in (3.0, 2.5, 2.0, 1.5):  # improving: beta stays
        assert s.update(loss) == 0.1
    assert s.update(1.5) == 0.1  # one flat window is not a plateau yet (patience 2)
    assert s.update(1.499) == pytest.approx(0.03)  # less than 1% better twice: beta drops
    betas = [s.update(1.5) for _ in range(30)]
    assert all(a >= b for a, b in zip([0.03] + betas, betas))  # never increases
    assert min(betas) == 0.001 and s.at_min  # reaches the floor and stays there
    assert s.update(0.5) == 0.001  # improving again does not raise it
    with pytest.raises(ValueError):
        D.BetaSchedule(beta_max=0.001, beta_min=0.1)


def test_latent_diffusion_learns_two_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 2.0], [-2.0, -2.0]])
    data = centres[torch.randint(2, (200,))] + 0.1 * torch.randn(200, 2)
    z, mean, std = D.standardise(data)
    net = D.LatentDenoiser(2, hidden=64, layers=2)
    losses = D.train_latent_diffusion(net, z, steps=800, lr=2e-3, batch_size=128, seed=0)
    assert np.mean(losses[-100:]) < np.mean(losses[:100])
    out = D.sample_latents(net, 200, 2, steps=30, seed=3) * std + mean
    nearest = torch.cdist(out, centres).min(1).values
    assert (nearest < 0.75).float().mean() > 0.8  # pure noise would land near a centre rarely
    share = (torch.cdist(out, centres).argmin(1) == 0).float().mean()
    assert 0.2 < share < 0.8  # both clusters, not one mode


# -- the generator -------------------------------------------------------------------------------------


def test_generator_fits_samples_and_reuses_its_cache(pair, tmp_path):
    events = []
    gen = DiffLMGenerator(SCHEMA, SEEDS[:24], config=tiny(), decoder=pair, cache_dir=tmp_path / "c")
    report = gen.fit(on_progress=events.append)
    stages = {e.info.get("stage") for e in events if e.stage == "fit"}
    assert {"VAE", "latent diffusion"} <= stages
    assert [e.done for e in events if e.info.get("stage") == "VAE"] == list(range(1, report["steps"] + 1))
    assert report["cached"] is False and report["grammar"] is True and report["steps"] <= 12
    assert report["vae"]["final_beta"] <= 0.1 and report["vae"]["val_recon_best"] is not None  # 24 seeds: 2 held out
    assert gen.fit() is report  # idempotent

    cands = gen.sample(Prompt(), 10, seed=1)
    assert len(cands) == 10 and all(isinstance(c, Candidate) for c in cands)
    # grammar-constrained: every finished record starts like the schema's first property
    assert all(c.text.startswith('{"species":"') for c in cands if c.text)
    rep = gen.last_sample_report
    assert rep["n"] == 10 and rep["drawn"] >= 10 and 0 <= rep["first_pass_valid"] <= rep["returned_valid"] <= 10
    again = gen.sample(Prompt(), 10, seed=1)
    assert [c.text for c in again] == [c.text for c in cands]  # same seed, same records
    greedy = gen.sample(Prompt(sampling=Sampling(temperature=0.0)), 4, seed=2)
    assert len(greedy) == 4

    # A second generator on the same data and settings loads the trained parts from disk.
    events2 = []
    gen2 = DiffLMGenerator(SCHEMA, SEEDS[:24], config=tiny(), decoder=pair, cache_dir=tmp_path / "c")
    report2 = gen2.fit(on_progress=events2.append)
    assert report2["cached"] is True and not any(e.info.get("stage") for e in events2)
    assert torch.equal(gen2.latents, gen.latents)
    assert [c.text for c in gen2.sample(Prompt(), 10, seed=1)] == [c.text for c in cands]
    assert len(list((tmp_path / "c").glob("difflm-*.pt"))) == 1
    # Sampling-only settings share the entry; training settings and data do not.
    assert (
        DiffLMGenerator(
            SCHEMA, SEEDS[:24], config=tiny(retries=0, sample_batch=4), decoder=pair, cache_dir=tmp_path / "c"
        ).cache_key()
        == gen.cache_key()
    )
    assert (
        DiffLMGenerator(
            SCHEMA, SEEDS[:24], config=tiny(latent_dim=5), decoder=pair, cache_dir=tmp_path / "c"
        ).cache_key()
        != gen.cache_key()
    )
    assert (
        DiffLMGenerator(SCHEMA, SEEDS[1:25], config=tiny(), decoder=pair, cache_dir=tmp_path / "c").cache_key()
        != gen.cache_key()
    )


def test_latent_view_and_its_chart(pair, tmp_path):
    gen = DiffLMGenerator(SCHEMA, SEEDS[:12], config=tiny(train_steps=2), decoder=pair, cache_dir=tmp_path)
    view = gen.latent_view(n=15, seed=4)
    assert view.seeds.shape == (12, 4) and view.sampled.shape == (15, 4) and len(view.seed_records) == 12
    assert np.allclose(gen.latent_view(n=15, seed=4).sampled, view.sampled)  # the latents sample(15, seed=4) decodes
    fig, caption = charts.latent_projection(view.seeds, view.sampled, seed_records=view.seed_records)
    assert [len(t.x) for t in fig.data] == [12, 15]
    assert "12 seed latents" in caption and "15 latents" in caption
    fig, _ = charts.latent_projection(view.seeds, view.sampled, labels=["valid"] * 10 + ["invalid"] * 5)
    assert [t.name for t in fig.data] == ["seed latents (12)", "valid latents (10)", "invalid latents (5)"]
    fig, caption = charts.latent_projection(view.seeds[:1], view.sampled)
    assert "fewer than 2" in caption


def test_refuses_scaffold_edits_and_too_few_seeds(pair):
    gen = DiffLMGenerator(SCHEMA, SEEDS[:8], config=tiny(), decoder=pair)
    for prompt in (
        Prompt(pins={"$.island": "Dream"}),
        Prompt(forbid={"$.sex": [None]}),
        Prompt(ranges={"$.year": [2007, 2008]}),
        Prompt(bias={"$.island": {'"Dream"': 1.0}}),
    ):
        with pytest.raises(InputError, match="not scaffold edits"):
            gen.check_prompt(prompt)
    with pytest.raises(InputError, match="temperature"):
        gen.check_prompt(Prompt(sampling=Sampling(temperature=-1)))
    gen.check_prompt(Prompt(text="anything"))  # text is accepted (and not read: DiffLM is unconditional)
    with pytest.raises(InputError, match="at least 8 seed records"):
        DiffLMGenerator(SCHEMA, SEEDS[:7], config=tiny(), decoder=pair)
    with pytest.raises(InputError, match="encoder_dim"):
        DiffLMGenerator(SCHEMA, SEEDS[:8], config=tiny(encoder_dim=15), decoder=pair)
    assert not gen.fitted  # checking the prompt fitted nothing


def test_load_generator_builds_difflm_and_checks_options(folder, tmp_path):
    gen = load_generator("difflm", SCHEMA, SEEDS)
    assert isinstance(gen, DiffLMGenerator) and gen.spec == "difflm" and gen.decoder is None  # nothing loaded yet
    assert asdict(gen.config) == asdict(DiffLMConfig())
    with pytest.raises(InputError, match="unknown setting"):
        load_generator("difflm", SCHEMA, SEEDS, options={"d_model": 3})
    with pytest.raises(InputError, match="needs a causal LM folder"):
        load_generator("difflm:", SCHEMA, SEEDS)
    with pytest.raises(InputError, match="not found"):
        load_generator(f"difflm:{tmp_path / 'nowhere'}", SCHEMA, SEEDS)
    with pytest.raises(InputError, match="at least 8"):
        load_generator("difflm", SCHEMA, SEEDS[:3])
    gen = load_generator(
        f"difflm:{folder}",
        SCHEMA,
        SEEDS[:16],
        options=dict(TINY, train_steps=3),
        device="cpu",
        cache_dir=tmp_path / "c",
    )
    assert gen.spec == f"difflm:{folder}"
    cands = gen.sample(Prompt(), 3, seed=0)
    assert len(cands) == 3 and gen.fit_report["steps"] == 3


def test_bench_difflm_method_matches_static_budget(folder, tmp_path):
    from test_loop import respond

    from aod_core.chat.scripted import ScriptedChatModel
    from aod_core.runs.bench import DEFAULT_METHODS, METHODS, Bench, BenchConfig

    assert "difflm" in METHODS and "difflm" not in DEFAULT_METHODS
    data = tmp_path / "data"
    data.mkdir()
    (data / "schema.json").write_text((PENGUINS / "schema.json").read_text())
    (data / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SEEDS[:20]))
    (data / "holdout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HOLDOUT[:10]))
    from aod_core.agents.judge import JudgeSettings

    config = BenchConfig(
        methods=("difflm",),
        iterations=2,
        batch=3,
        difflm=f"difflm:{folder}",
        difflm_config=dict(TINY, train_steps=3),
        judge_settings=JudgeSettings(mode="llm"),
    )
    results = Bench(data, tmp_path / "out", config, chat_cache={"embedded": ScriptedChatModel(respond)}).run()
    m = results["methods"]["difflm"]
    assert m["n_candidates"] == 6
    assert 0.0 <= m["prefilter_schema_valid_rate"] <= 1.0 and m["draws"] >= 6 and m["fit_cached"] is False
    for key in ("task_success_rate", "schema_valid_rate", "field_overlap", "distinct_2", "dcr_median", "seconds"):
        assert key in m
    assert "| difflm |" in (tmp_path / "out" / "results.md").read_text()


def test_dcr_distances_match_the_audit():
    recs = SEEDS[:5] + HOLDOUT[:20]
    dcr, hold = dcr_distances(recs, SEEDS, HOLDOUT)
    assert dcr.shape == (25,) and hold.shape == (len(HOLDOUT),)
    assert (dcr[:5] == 0).all() and (dcr[5:] > 0).any()  # seed copies are at distance 0
    a = audit(recs, SEEDS, holdout=HOLDOUT)
    assert a["dcr_median"] == pytest.approx(float(np.median(dcr)))
    assert a["dcr_holdout_p05"] == pytest.approx(float(np.percentile(hold, 5)))
    empty, none = dcr_distances([], SEEDS)
    assert empty.shape == (0,) and none is None


def test_sample_page_shows_the_latent_space_for_difflm(folder, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    from test_app import APP, pick_demo, texts

    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    pick_demo(app, "penguins")
    app.session_state["set_generator"] = f"difflm:{folder}"
    app.session_state["set_gen_options"] = ", ".join(f"{k}={v}" for k, v in TINY.items())
    app.switch_page("pages/sample.py").run()
    assert not app.exception
    assert any("DiffLM" in t for t in texts(app.caption))
    keys = {w.key for w in app.number_input}
    assert "sample_steps" not in keys and "sample_difflm_train_steps" in keys  # diffusion-canvas settings hidden
    app.number_input(key="sample_difflm_train_steps").set_value(2)
    app.number_input(key="sample_n").set_value(4)
    app.button(key="sample_go").click().run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    assert "Latent space" in texts(app.subheader)
    assert any("seed latents" in t for t in texts(app.caption))
    result = app.session_state["sample_result"]
    assert result.n == 4 and result.latent is not None and result.settings["generator"] == f"difflm:{folder}"


def test_cli_sample_with_difflm(folder, tmp_path, capsys):
    from aod_core.cli import main

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in SEEDS[:16]))
    out = tmp_path / "out.jsonl"
    opts = [a for k, v in dict(TINY, train_steps=2).items() for a in ("--gen-opt", f"{k}={v}")]
    code = main(
        [
            "sample",
            "--schema",
            str(PENGUINS / "schema.json"),
            "--seeds",
            str(seeds),
            "--generator",
            f"difflm:{folder}",
            "--n",
            "3",
            "--out",
            str(out),
            *opts,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "fit VAE" in err and "wrote" in err
    assert len(out.read_text().splitlines()) <= 3
    code = main(
        [
            "sample",
            "--schema",
            str(PENGUINS / "schema.json"),
            "--seeds",
            str(seeds),
            "--generator",
            f"difflm:{folder}",
            "--n",
            "3",
            "--out",
            str(out),
            "--pin",
            "island=Dream",
            *opts,
        ]
    )
    assert code == 2 and "not scaffold edits" in capsys.readouterr().err


def test_progress_labels_name_the_training_phase():
    from aod_core.generators.base import Progress
    from aod_core.studio import sampling

    assert sampling.fit_progress(Progress("fit", 1, 2, {"stage": "VAE", "loss": 3.0})) == (
        0.5,
        "Fitting (VAE): step 1/2 · loss 3.000",
    )
    assert sampling.fit_progress(Progress("load", 0, 1, {"model": "difflm"})) == (0.0, "Loading the generator model")
    assert (
        sampling.is_difflm("difflm") and sampling.is_difflm(" difflm:/models/x") and not sampling.is_difflm("embedded")
    )
    assert sampling.default_train_steps("difflm") == DiffLMConfig().train_steps != sampling.default_train_steps()
