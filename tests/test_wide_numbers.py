"""Numbers with wide ranges and many decimals stay numbers: written digit by digit inside bins with
round edges, never drawn from the seeds' values, whatever the schema leaves open; and the layout's
budgets are counts, so a slow machine gets the same scaffold as a fast one."""

from __future__ import annotations

import random
import re
import time

import torch

from aod_core.canvas import automaton
from aod_core.canvas.automaton import compile_fsm, marked_union, number_regex
from aod_core.canvas.constraints import CanvasConstraint
from aod_core.canvas.numbers import _decimals, dec, round_number
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import MASK
from aod_core.canvas.values import CanvasOptions
from aod_core.diffusion.sampler import generate

SCHEMA = {
    "type": "object",
    "properties": {
        "gdp": {"type": "number", "minimum": 0},  # open above, six decimals in the seeds
        "tiny": {"type": "number", "minimum": -1, "maximum": 1},
        "pop": {"type": "integer", "minimum": 0},
    },
    "required": ["gdp", "tiny", "pop"],
}


def _seeds(n: int = 300) -> list[dict]:
    rng = random.Random(0)
    return [
        {
            "gdp": round(10 ** rng.uniform(2.3, 5.1), 6),
            "tiny": round(rng.uniform(-1, 1), 5),
            "pop": int(10 ** rng.uniform(4, 9.1)),
        }
        for _ in range(n)
    ]


def test_wide_many_decimal_fields_are_binned_digits_that_round_trip_and_stay_in_range():
    seeds = _seeds()
    sc = Scaffold.build(SCHEMA, seeds, CanvasOptions.realistic())
    assert not any("drawn from the seeds" in n for n in sc.notes), sc.notes
    for path, decimals in (("$.gdp", 6), ("$.tiny", 5), ("$.pop", 0)):
        slot = sc.slots_for(path)[0]
        assert slot.kind == "value" and slot.bins and slot.decimals == decimals, path
        # every bin edge is a round number: a few significant digits, not a seed's long value
        assert all(len(dec(lo).normalize().as_tuple().digits) <= 4 for lo, _hi, _m in slot.bins[1:]), slot.bins
    for r in seeds:
        assert sc.decode(sc.encode(r)) == r
    c = CanvasConstraint(sc, Prompt())
    g = torch.Generator().manual_seed(0)
    V = len(sc.vocab)
    out = generate(
        lambda x: torch.randn(x.shape[0], x.shape[1], V, generator=g) * 3,
        c.initial_canvas(64),
        mask_id=MASK,
        constraint=c,
        generator=g,
    )
    records = [sc.decode(row) for row in out.tolist()]
    seen = {(k, r[k]) for r in seeds for k in r}
    assert all(r["gdp"] >= 0 and -1 <= r["tiny"] <= 1 and r["pop"] >= 0 for r in records)
    assert sum((k, r[k]) in seen for r in records for k in r) <= 3  # new values, not the seeds'


def test_float_noise_is_not_read_as_decimals():
    assert _decimals([dec(1150.9274779999996), dec(0.30000000000000004), dec(43.89)]) == 6
    assert _decimals([dec(72.49000000000001), dec(43.89)]) == 2


def test_round_number_is_the_roundest_in_reach():
    from decimal import Decimal as D

    assert round_number(D("1150.927478"), D("1130"), D("1180"), D("0.000001")) == D("1150")
    assert round_number(D("0.0123"), D("0.011"), D("0.013"), D("0.0001")) == D("0.012")
    assert round_number(D("7"), D("7"), D("7"), D("1")) == D("7")


def test_a_marked_union_compiles_part_by_part_to_the_same_language():
    parts = [
        (chr(0xF0000 + i), number_regex(lo, hi, 3, exclusive_hi=True))
        for i, (lo, hi) in enumerate([(0, 10), (10, 250), (250, 10000)])
    ]
    rx = marked_union(parts)
    fast = compile_fsm(rx)
    extra = marked_union(parts[1:])
    narrowed = compile_fsm(rx, (extra,), (chr(0xF0001) + "12.500",))
    rng = random.Random(1)
    for _ in range(2000):
        mark = chr(0xF0000 + rng.randrange(4))
        text = mark + f"{rng.uniform(-5, 12000):.{rng.choice([2, 3])}f}"
        want = re.fullmatch(rx, text) is not None
        assert fast.accepts(text) == want, text
        assert narrowed.accepts(text) == (
            want and re.fullmatch(extra, text) is not None and text != chr(0xF0001) + "12.500"
        )


def test_the_layout_is_the_same_on_a_slow_clock(monkeypatch):
    """The scaffold's budgets are counts (automaton states, positions): a clock running a hundred
    times slow changes nothing, where a 30 s guard once refused this schema on a busy machine."""
    seeds = _seeds()
    automaton._compile.cache_clear()
    before = Scaffold.build(SCHEMA, seeds, CanvasOptions.realistic())
    spent = automaton.spent()
    automaton._compile.cache_clear()
    real = time.monotonic
    start = real()

    def slow() -> float:
        return start + (real() - start) * 100 + 60.0

    monkeypatch.setattr(time, "monotonic", slow)
    monkeypatch.setattr(time, "perf_counter", slow)
    after = Scaffold.build(SCHEMA, seeds, CanvasOptions.realistic())
    assert after.skeleton() == before.skeleton() and after.describe() == before.describe()
    assert after.vocab.tokens == before.vocab.tokens
    assert automaton.spent() > spent  # the budget is counted in states, and was counted again


def test_a_cached_compile_costs_what_it_cost_the_first_time():
    automaton._compile.cache_clear()
    rx = number_regex(0, 123456, 2)
    a = automaton.spent()
    compile_fsm(rx)
    first = automaton.spent() - a
    b = automaton.spent()
    compile_fsm(rx)
    assert first > 0 and automaton.spent() - b == first
