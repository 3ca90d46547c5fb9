import random

import pytest
import torch

from aod_core.canvas.constraints import CanvasConstraint, static_allowed
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import ABSENT, END, MASK, NULL
from aod_core.data.schema import parse_schema
from aod_core.diffusion.sampler import generate
from aod_core.errors import InputError

SMALL = parse_schema(
    {
        "type": "object",
        "properties": {
            "v": {"type": ["integer", "null"], "minimum": -15, "maximum": 120},
            "w": {"type": "integer", "minimum": 5, "maximum": 12},
            "year": {"type": "integer", "minimum": 2007, "maximum": 2009},
            "x": {"type": "number", "minimum": 0, "maximum": 10},
            "s": {"type": "string", "maxLength": 3},
            "c": {"enum": ["a", "b", "c"]},
            "ok": {"type": ["boolean", "null"]},
        },
        "required": ["v", "w", "year", "x", "s", "c", "ok"],
    }
)
SMALL_SEEDS = [
    {"v": 3, "w": 7, "year": 2008, "x": 1.5, "s": "ab", "c": "a", "ok": True},
    {"v": None, "w": 12, "year": 2009, "x": 10.0, "s": "bca", "c": "b", "ok": None},
]


@pytest.fixture(scope="module")
def small() -> Scaffold:
    return Scaffold.build(SMALL.resolved, SMALL_SEEDS)


@pytest.fixture(scope="module")
def groups(get_demo) -> Scaffold:
    ds = get_demo("penguin-groups")
    return Scaffold.build(ds.schema.resolved, ds.seeds.records)


@pytest.fixture(scope="module")
def penguins(get_demo) -> Scaffold:
    ds = get_demo("penguins")
    return Scaffold.build(ds.schema.resolved, ds.seeds.records)


def slot(sc, path):
    (s,) = [s for s in sc.slots if s.path == path]
    return s


def tok_set(row: torch.Tensor) -> set[int]:
    return set(row.nonzero().flatten().tolist())


def input_error(sc, **prompt) -> str:
    with pytest.raises(InputError) as info:
        CanvasConstraint(sc, Prompt(**prompt))
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ---- static ----------------------------------------------------------------------------------


def test_static_allowed(groups):
    sc = groups
    chars = set(sc.vocab.char_ids.values())
    plain, gated = static_allowed(sc, with_absent=False), static_allowed(sc, with_absent=True)
    assert plain.shape == (sc.length, len(sc.vocab))
    assert not plain[:, MASK].any() and not plain[:, ABSENT].any()
    for s in sc.slots:
        for p in s.positions:
            row = tok_set(plain[p])
            if s.kind == "choice":
                assert row == set(s.tokens)
            else:
                assert row == chars | {END} | ({NULL} if s.nullable and p == s.start else set())
            assert bool(gated[p, ABSENT]) == (s.gate is not None)
            assert tok_set(gated[p]) - {ABSENT} == row
    assert not plain[:, NULL].any()  # no nullable value slot in penguin-groups (sex is a choice)


# ---- allowed() is exact -----------------------------------------------------------------------


def _fillings(sc, s, values):
    """Every token layout of value slot ``s`` that spells one of ``values`` (plus null if nullable)."""
    ch = sc.vocab.char_ids
    out = [tuple(ch[c] for c in s.spell(v)) + (END,) * (s.width - len(s.spell(v))) for v in values]
    if s.nullable:
        out.append((NULL,) + (END,) * (s.width - 1))
    return out


@pytest.mark.parametrize(
    "path, values",
    [
        ("$.v", range(-15, 121)),
        ("$.w", range(5, 13)),
        ("$.year", range(2007, 2010)),
        ("$.x", [k / 10 for k in range(0, 101)]),
    ],
)
def test_allowed_matches_brute_force_on_partial_slots(small, path, values):
    sc = small
    s = slot(sc, path)
    fills = _fillings(sc, s, values)
    c = CanvasConstraint(sc)
    rng = random.Random(0)
    rows, expected = [], []
    for _ in range(300):
        f = rng.choice(fills)
        shown = [p for p in range(s.width) if rng.random() < 0.4]
        x = [MASK] * sc.length
        for p in shown:
            x[s.start + p] = f[p]
        rows.append(x)
        consistent = [g for g in fills if all(g[p] == f[p] for p in shown)]
        expected.append({p: {g[p] for g in consistent} for p in range(s.width) if p not in shown})
    allowed = c.allowed(torch.tensor(rows))
    for b, exp in enumerate(expected):
        for p, toks in exp.items():
            assert tok_set(allowed[b, s.start + p]) == toks, (path, rows[b][s.start : s.start + s.width], p)


def test_allowed_on_empty_canvas_only_valid_first_symbols(small, penguins):
    c = CanvasConstraint(small)
    a = c.allowed(torch.full((1, small.length), MASK))[0]
    ch = small.vocab.char_ids
    assert tok_set(a[slot(small, "$.year").start]) == {ch["2"]}
    assert tok_set(a[slot(small, "$.w").start]) == {ch[d] for d in "156789"}
    assert tok_set(a[slot(small, "$.v").start]) == {ch[d] for d in "-0123456789"} | {NULL}
    assert tok_set(a[slot(small, "$.c").start]) == set(slot(small, "$.c").tokens)
    p = CanvasConstraint(penguins)
    a = p.allowed(torch.full((1, penguins.length), MASK))[0]
    ch = penguins.vocab.char_ids
    assert tok_set(a[slot(penguins, "$.year").start]) == {ch["2"]}
    assert tok_set(a[slot(penguins, "$.bill_length_mm").start]) == {ch[d] for d in "3456"} | {NULL}
    assert tok_set(a[slot(penguins, "$.flipper_length_mm").start]) == {ch["1"], ch["2"], NULL}


def test_allowed_after_commits_keeps_slot_completable(small):
    sc, ch = small, small.vocab.char_ids
    c = CanvasConstraint(sc)
    y = slot(sc, "$.year").start
    x = torch.full((1, sc.length), MASK)
    x[0, y + 3] = ch["8"]
    a = c.allowed(x)[0]
    assert [tok_set(a[y + i]) for i in range(3)] == [{ch["2"]}, {ch["0"]}, {ch["0"]}]
    w = slot(sc, "$.w").start
    x = torch.full((1, sc.length), MASK)
    x[0, w + 1] = END
    assert tok_set(c.allowed(x)[0, w]) == {ch[d] for d in "56789"}
    x[0, w + 1] = ch["2"]
    assert tok_set(c.allowed(x)[0, w]) == {ch["1"]}


# ---- commit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("first_wins", [True, False])
def test_commit_resolves_clashing_proposals_in_one_slot(small, first_wins):
    sc, ch = small, small.vocab.char_ids
    c = CanvasConstraint(sc)
    w = slot(sc, "$.w").start  # integer 5..12, width 2
    x = torch.full((1, sc.length), MASK)
    a = c.allowed(x)[0]
    assert a[w, ch["7"]] and a[w + 1, ch["2"]]  # each allowed alone; "72" is not a value
    select = torch.zeros(1, sc.length, dtype=torch.bool)
    select[0, [w, w + 1]] = True
    x0 = torch.full((1, sc.length), MASK)
    x0[0, w], x0[0, w + 1] = ch["7"], ch["2"]
    conf = torch.zeros(1, sc.length, dtype=torch.float64)
    conf[0, w], conf[0, w + 1] = (0.9, 0.5) if first_wins else (0.5, 0.9)
    out = c.commit(x, select, x0, conf)[0]
    if first_wins:
        assert (out[w], out[w + 1]) == (ch["7"], MASK)
        assert tok_set(c.allowed(out[None])[0, w + 1]) == {END}
    else:
        assert (out[w], out[w + 1]) == (MASK, ch["2"])
        assert tok_set(c.allowed(out[None])[0, w]) == {ch["1"]}
    # positions not selected are untouched
    assert (out[:w] == MASK).all() and (out[w + 2 :] == MASK).all()


def test_commit_takes_compatible_proposals_together(small):
    sc, ch = small, small.vocab.char_ids
    c = CanvasConstraint(sc)
    y = slot(sc, "$.year").start
    x = torch.full((1, sc.length), MASK)
    select = torch.zeros(1, sc.length, dtype=torch.bool)
    select[0, y : y + 4] = True
    x0 = torch.full((1, sc.length), MASK)
    x0[0, y : y + 4] = torch.tensor([ch[d] for d in "2009"])
    conf = torch.rand(1, sc.length, dtype=torch.float64)
    out = c.commit(x, select, x0, conf)[0]
    assert out[y : y + 4].tolist() == [ch[d] for d in "2009"]


# ---- gates ------------------------------------------------------------------------------------


def _count_token(sc, n):
    return sc.vocab.choice_ids[("$.birds.length", str(n))]


def test_gating_by_array_count(groups):
    sc = groups
    c = CanvasConstraint(sc)
    count = slot(sc, "$.birds.length")
    x = c.initial_canvas(1)
    assert (x == MASK).all()
    ready = c.ready(x)[0]
    for s in sc.slots:
        gated_item = s.path.startswith(("$.birds[1]", "$.birds[2]", "$.birds[3]"))
        for p in s.positions:
            assert bool(ready[p]) == (not gated_item), s.path
    select = torch.zeros(1, sc.length, dtype=torch.bool)
    select[0, count.start] = True
    x0 = torch.full((1, sc.length), MASK)
    x0[0, count.start] = _count_token(sc, 2)
    x = c.commit(x, select, x0, torch.ones(1, sc.length, dtype=torch.float64))
    ready = c.ready(x)[0]
    for s in sc.slots:
        for p in s.positions:
            if s.path.startswith(("$.birds[2]", "$.birds[3]")):
                assert x[0, p] == ABSENT and not ready[p], s.path
            elif s is not count:
                assert x[0, p] == MASK and ready[p], s.path
    assert x[0, count.start] == _count_token(sc, 2)


NESTED = {
    "type": "object",
    "properties": {
        "note": {"type": "string"},
        "birds": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 99}, "ring": {"type": "string"}},
                "required": ["n"],
            },
        },
    },
    "required": ["birds"],
}
NESTED_SEEDS = [
    {"birds": [{"n": 3, "ring": "R1"}]},
    {"note": "windy day", "birds": [{"n": 12}, {"n": 1, "ring": "R22"}, {"n": 99}]},
]


def test_propagate_follows_nested_gates():
    # items beyond minItems with an optional property: two gate levels
    sc = Scaffold.build(NESTED, NESTED_SEEDS)
    assert slot(sc, "$.birds[1].ring").gate == slot(sc, "$.birds[1].ring?").start
    c = CanvasConstraint(sc)
    v = sc.vocab
    x = torch.full((1, sc.length), MASK)
    x[0, slot(sc, "$.birds.length").start] = v.choice_ids[("$.birds.length", "1")]
    x[0, slot(sc, "$.birds[0].ring?").start] = v.choice_ids[("$.birds[*].ring?", "false")]
    x[0, slot(sc, "$.note?").start] = v.choice_ids[("$.note?", "true")]
    out = c.propagate(x)[0]
    for s in sc.slots:
        off = s.path.startswith(("$.birds[1]", "$.birds[2]", "$.birds[0].ring")) and s.path != "$.birds[0].ring?"
        for p in s.positions:
            if off:
                assert out[p] == ABSENT, s.path
            else:
                assert out[p] == x[0, p], s.path
    # an undecided controller switches nothing off, and its dependants are not ready
    y = torch.full((1, sc.length), MASK)
    assert torch.equal(c.propagate(y), y)
    ready = c.ready(y)[0]
    assert not ready[slot(sc, "$.note").start] and ready[slot(sc, "$.note?").start]


# ---- prompt edits -----------------------------------------------------------------------------


def test_pins_value_and_choice(penguins, groups):
    sc = penguins
    c = CanvasConstraint(
        sc, Prompt(pins={"$.island": "Dream", "$.year": 2008, "$.bill_length_mm": None, "$.bill_depth_mm": 18.5})
    )
    x = c.initial_canvas(3)
    ch = sc.vocab.char_ids
    assert (x[:, slot(sc, "$.island").start] == sc.vocab.choice_ids[("$.island", '"Dream"')]).all()
    y = slot(sc, "$.year").start
    assert x[0, y : y + 4].tolist() == [ch[d] for d in "2008"]
    b = slot(sc, "$.bill_length_mm").start
    assert x[0, b : b + 4].tolist() == [NULL, END, END, END]
    d = slot(sc, "$.bill_depth_mm").start
    assert x[1, d : d + 4].tolist() == [ch[k] for k in "18.5"]
    assert (x[:, slot(sc, "$.species").start] == MASK).all()
    # [*] pins every item, gated ones included
    g = CanvasConstraint(groups, Prompt(pins={"$.birds[*].species": "Gentoo"}))
    tok = groups.vocab.choice_ids[("$.birds[*].species", '"Gentoo"')]
    x = g.initial_canvas(1)
    assert [int(x[0, s.start]) for s in groups.slots_for("$.birds[*].species")] == [tok] * 4


def test_forbid_choices(penguins):
    sc = penguins
    c = CanvasConstraint(sc, Prompt(forbid={"$.island": ["Dream", "Biscoe"], "$.sex": [None]}))
    a = c.allowed(c.initial_canvas(1))[0]
    assert tok_set(a[slot(sc, "$.island").start]) == {sc.vocab.choice_ids[("$.island", '"Torgersen"')]}
    sex = tok_set(a[slot(sc, "$.sex").start])
    assert sc.vocab.choice_ids[("$.sex", "null")] not in sex and len(sex) == 2
    msg = input_error(sc, forbid={"$.island": ["Dream", "Biscoe", "Torgersen"]})
    assert "every choice is forbidden" in msg and "$.island" in msg
    msg = input_error(sc, forbid={"$.island": ["Atlantis"]})
    assert "Atlantis" in msg


def test_forbid_values(small):
    sc, ch = small, small.vocab.char_ids
    c = CanvasConstraint(sc, Prompt(forbid={"$.year": [2007, 2008], "$.v": [None, 7]}))
    y = slot(sc, "$.year").start
    x = torch.full((1, sc.length), MASK)
    x[0, y : y + 3] = torch.tensor([ch["2"], ch["0"], ch["0"]])
    assert tok_set(c.allowed(x)[0, y + 3]) == {ch["9"]}
    v = slot(sc, "$.v").start
    x = torch.full((1, sc.length), MASK)
    x[0, v] = ch["7"]
    assert tok_set(c.allowed(x)[0, v + 1]) == {ch[d] for d in "0123456789"}  # 7 alone is gone, 70.. stay
    assert NULL not in tok_set(c.allowed(torch.full((1, sc.length), MASK))[0, v])
    msg = input_error(sc, forbid={"$.year": [2007, 2008, 2009]})
    assert "no value is left for $.year" in msg


def test_ranges_narrow_a_number(penguins):
    sc, ch = penguins, penguins.vocab.char_ids
    c = CanvasConstraint(sc, Prompt(ranges={"$.bill_length_mm": [40, 41.5]}))
    b = slot(sc, "$.bill_length_mm").start
    x = torch.full((1, sc.length), MASK)
    assert tok_set(c.allowed(x)[0, b]) == {ch["4"], NULL}
    x[0, b : b + 3] = torch.tensor([ch["4"], ch["1"], ch["."]])
    assert tok_set(c.allowed(x)[0, b + 3]) == {ch[d] for d in "012345"}
    x[0, b + 1] = MASK
    assert tok_set(c.allowed(x)[0, b + 1]) == {ch["0"], ch["1"]}


def test_range_errors(penguins, small):
    msg = input_error(penguins, ranges={"$.bill_length_mm": [100, 200]})
    assert "$.bill_length_mm" in msg and "does not meet" in msg
    assert "only number and integer" in input_error(penguins, ranges={"$.island": [0, 1]})
    assert "$.x" in input_error(small, ranges={"$.x": [0.01, 0.09]})  # no 1-decimal value inside


def test_bias(penguins):
    sc = penguins
    c = CanvasConstraint(sc, Prompt(bias={"$.sex": {'"male"': 2.5, "null": -1.0, "female": 0.5}}))
    s = slot(sc, "$.sex").start
    ids = sc.vocab.choice_ids
    assert c.bias[s, ids[("$.sex", '"male"')]] == 2.5
    assert c.bias[s, ids[("$.sex", "null")]] == -1.0
    assert c.bias[s, ids[("$.sex", '"female"')]] == 0.5  # a bare word is a string
    assert int((c.bias != 0).sum()) == 3
    assert "only enum and boolean" in input_error(sc, bias={"$.year": {"2008": 1.0}})
    assert "Atlantis" in input_error(sc, bias={"$.island": {"Atlantis": 1.0}})


def test_bias_steers_sampling(penguins):
    sc = penguins
    c = CanvasConstraint(sc, Prompt(bias={"$.island": {"Torgersen": 60.0}}))
    V = len(sc.vocab)
    out = generate(
        lambda x: torch.zeros(x.shape[0], x.shape[1], V),
        c.initial_canvas(16),
        mask_id=MASK,
        constraint=c,
        generator=torch.Generator().manual_seed(0),
    )
    assert {sc.decode(r)["island"] for r in out.tolist()} == {"Torgersen"}


def test_bad_pins(small, penguins):
    assert "$.year" in input_error(small, pins={"$.year": 2010})
    assert "longer than" in input_error(small, pins={"$.year": 20080})
    assert "never use" in input_error(small, pins={"$.s": "xyz"})
    assert "longer than" in input_error(small, pins={"$.s": "abca"})
    assert "$.w" in input_error(small, pins={"$.w": None})  # not nullable
    assert "not one of" in input_error(small, pins={"$.c": "z"})
    assert "$.c" in input_error(small, pins={"$.c": "a"}, forbid={"$.c": ["a"]})  # pinned and forbidden
    assert "$.year" in input_error(small, pins={"$.year": 2008}, ranges={"$.year": [2009, 2009]})
    assert "not one of" in input_error(penguins, pins={"$.sex": "unknown"})


@pytest.mark.parametrize("edit", ["pins", "forbid", "ranges", "bias"])
def test_unknown_paths(small, edit):
    value = {"pins": 1, "forbid": [1], "ranges": [0, 1], "bias": {"1": 1.0}}[edit]
    msg = input_error(small, **{edit: {"$.nope": value}})
    assert "'$.nope'" in msg and "$.year" in msg


@pytest.mark.parametrize("edit", ["pins", "forbid"])
def test_non_number_for_a_number_field_is_an_input_error(small, edit):
    value = "abc" if edit == "pins" else ["abc"]
    with pytest.raises(InputError):
        CanvasConstraint(small, Prompt(**{edit: {"$.year": value}}))


def test_pin_that_is_not_on_the_fields_grid_is_refused(small):
    with pytest.raises(InputError):
        CanvasConstraint(small, Prompt(pins={"$.year": 2008.7}))


# ---- prompt edits hold under sampling ---------------------------------------------------------


def test_edits_hold_for_random_logits(penguins, get_demo):
    sc = penguins
    schema = get_demo("penguins").schema
    prompt = Prompt(
        pins={"$.year": 2008},
        forbid={"$.island": ["Dream"], "$.body_mass_g": [None]},
        ranges={"$.bill_length_mm": [40, 41.5], "$.flipper_length_mm": [180, 189]},
    )
    c = CanvasConstraint(sc, prompt)
    V = len(sc.vocab)
    g = torch.Generator().manual_seed(3)
    out = generate(
        lambda x: torch.randn(x.shape[0], x.shape[1], V, generator=g) * 4,
        c.initial_canvas(48),
        mask_id=MASK,
        settings=Sampling(steps=8),
        constraint=c,
        generator=g,
    )
    for row in out.tolist():
        r = sc.decode(row)
        assert schema.is_valid(r), r
        assert r["year"] == 2008 and r["island"] != "Dream" and r["body_mass_g"] is not None
        assert r["bill_length_mm"] is None or 40 <= r["bill_length_mm"] <= 41.5
        assert r["flipper_length_mm"] is None or 180 <= r["flipper_length_mm"] <= 189


def test_a_word_piece_of_another_field_never_completes_a_slot_it_cannot_be_written_in(get_demo):
    """cars: "80" is a word piece (of car names) that also spells the end of 1980. A year slot can
    never hold it, so after "19" the year's last position must not take END (it would leave the
    third position with no token at all, and the sampler would never finish)."""
    from aod_core.generators.embedded import EmbeddedGenerator

    cars = get_demo("cars")
    sc = EmbeddedGenerator(cars.schema.resolved, cars.seeds.records).scaffold
    year = next(s for s in sc.slots if s.path == "$.year" and s.kind == "value")
    assert "80" in sc.vocab.symbol_ids and "19" not in sc.vocab.symbol_ids
    c = CanvasConstraint(sc, Prompt())
    ids = sc.vocab.symbol_ids
    x = torch.full((1, sc.length), MASK)
    x[0, year.start], x[0, year.start + 1] = ids["1"], ids["9"]
    allowed = c.allowed(x)[0]
    inv = {v: k for k, v in ids.items()}
    assert {inv[t] for t in allowed[year.start + 2].nonzero().flatten().tolist()} == {"7", "8"}
    assert not bool(allowed[year.start + 3, END])  # "19" + one symbol cannot end a year in 1970..1982
    # and sampling the whole canvas always finishes, every record valid
    from aod_core.generators.embedded import EmbeddedGenerator as G
    from tests.conftest import tiny_config

    gen = G(cars.schema.resolved, cars.seeds.records, config=tiny_config(20))
    gen.fit()
    for seed in range(4):
        out = gen.sample(Prompt(), 6, seed=seed)
        assert all(cand.parsed and cars.schema.is_valid(cand.record) for cand in out)


def test_a_step_that_commits_nothing_is_an_error_not_a_hang():
    class Stuck:
        bias = None
        priority = None

        def allowed(self, x):
            return torch.zeros(*x.shape, 5, dtype=torch.bool)

        def ready(self, x):
            return x == MASK

        def commit(self, x, select, x0, conf):
            return x.clone()

    with pytest.raises(RuntimeError, match="sampler stalled: a step committed nothing"):
        generate(lambda x: torch.zeros(*x.shape, 5), torch.full((2, 4), MASK), mask_id=MASK, constraint=Stuck())
