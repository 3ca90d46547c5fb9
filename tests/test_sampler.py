import math

import pytest
import torch

from aod_core.canvas.constraints import CanvasConstraint
from aod_core.canvas.prompt import Sampling
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import MASK
from aod_core.diffusion.sampler import StepInfo, add_gumbel_noise, generate

V = 9  # token 0 is the mask


def random_logits(seed: int = 0, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape[0], x.shape[1], V, generator=g) * scale

    return fn


def recording(fn):
    """Wrap a logits fn, keeping a copy of every canvas it is called with."""
    calls: list[torch.Tensor] = []

    def wrapped(x):
        calls.append(x.clone())
        return fn(x)

    return wrapped, calls


def half_fixed_canvas(B=4, L=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    fixed = torch.randint(1, V, (B, L), generator=g)
    holes = torch.rand(B, L, generator=g) < 0.5
    return torch.where(holes, torch.zeros_like(fixed), fixed), holes


SETTINGS = [
    Sampling(remasking="low_confidence"),
    Sampling(remasking="random"),
    Sampling(num_blocks=3, remasking="low_confidence"),
    Sampling(num_blocks=3, remasking="random"),
    Sampling(threshold=0.5),
    Sampling(steps=3, temperature=0.5),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=repr)
def test_fixed_tokens_never_change_and_no_masks_left(settings):
    canvas, holes = half_fixed_canvas()
    out = generate(random_logits(), canvas, mask_id=0, settings=settings, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[~holes], canvas[~holes])
    assert not (out == 0).any()
    assert canvas[holes].eq(0).all()  # the input canvas is not modified in place


# ---- constrained sampling validates -----------------------------------------------------------

CONSTRAINED = [
    Sampling(remasking="low_confidence"),
    Sampling(remasking="random"),
    Sampling(remasking="low_confidence", num_blocks=3),
    Sampling(remasking="random", num_blocks=3),
    Sampling(threshold=0.6, remasking="low_confidence"),
]


@pytest.mark.parametrize("settings", CONSTRAINED, ids=repr)
def test_constrained_samples_validate(demo_dataset, settings):
    ds = demo_dataset
    sc = Scaffold.build(ds.schema.resolved, ds.seeds.records)
    c = CanvasConstraint(sc)
    Vs = len(sc.vocab)
    g = torch.Generator().manual_seed(7)
    fn = lambda x: torch.randn(x.shape[0], x.shape[1], Vs, generator=g) * 4  # noqa: E731
    out = generate(fn, c.initial_canvas(12), mask_id=MASK, settings=settings, constraint=c, generator=g)
    records = [sc.decode(row) for row in out.tolist()]
    for r in records:
        assert ds.schema.validate(r) == [], r
    assert len({json_key(r) for r in records}) > 1  # random logits: not one record repeated


def json_key(r):
    import json

    return json.dumps(r, sort_keys=True)


@pytest.mark.parametrize("constrained", [False, True])
def test_threshold_commits_at_least_one_per_row_per_step(get_demo, constrained):
    if constrained:
        ds = get_demo("penguin-groups")
        sc = Scaffold.build(ds.schema.resolved, ds.seeds.records)
        c = CanvasConstraint(sc)
        Vs, canvas = len(sc.vocab), c.initial_canvas(6)
    else:
        c, Vs, canvas = None, V, torch.zeros(6, 40, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    # near-uniform logits: confidences stay far below the threshold, so only the forced one commits
    fn, calls = recording(lambda x: torch.randn(x.shape[0], x.shape[1], Vs, generator=g) * 0.01)
    out = generate(
        fn,
        canvas,
        mask_id=MASK,
        settings=Sampling(threshold=0.99, remasking="low_confidence"),
        constraint=c,
        generator=g,
    )
    left = [(x == MASK).sum(1) for x in calls] + [(out == MASK).sum(1)]
    for before, after in zip(left, left[1:]):
        assert ((before - after >= 1) | (before == 0)).all()
    if not constrained:  # nothing above the threshold: exactly one per row and step
        assert len(calls) == 40


def test_threshold_commits_all_confident_positions_at_once():
    def confident(x):
        out = torch.full((x.shape[0], x.shape[1], V), -20.0)
        out[..., 3] = 20.0
        return out

    fn, calls = recording(confident)
    out = generate(
        fn,
        torch.zeros(2, 20, dtype=torch.long),
        mask_id=0,
        settings=Sampling(threshold=0.9, remasking="low_confidence"),
    )
    assert len(calls) == 1 and (out == 3).all()


def test_threshold_uses_model_confidence_with_default_remasking():
    def confident(x):
        out = torch.full((x.shape[0], x.shape[1], V), -20.0)
        out[..., 3] = 20.0
        return out

    fn, calls = recording(confident)
    generate(
        fn,
        torch.zeros(2, 20, dtype=torch.long),
        mask_id=0,
        settings=Sampling(threshold=0.9),
        generator=torch.Generator().manual_seed(0),
    )
    assert len(calls) == 1


# ---- steps and blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps, blocks", [(1, 1), (4, 1), (6, 1), (24, 1), (4, 2), (6, 3), (12, 3), (None, 1), (None, 3)]
)
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_forward_passes_equal_steps(steps, blocks, remasking):
    fn, calls = recording(random_logits())
    infos: list[StepInfo] = []
    generate(
        fn,
        torch.zeros(3, 24, dtype=torch.long),
        mask_id=0,
        settings=Sampling(steps=steps, num_blocks=blocks, remasking=remasking),
        generator=torch.Generator().manual_seed(0),
        on_step=infos.append,
    )
    assert len(calls) == (steps or 24)
    assert [i.step for i in infos] == list(range(1, len(calls) + 1))


def test_blocks_are_decoded_left_to_right():
    fn, calls = recording(random_logits())
    out = generate(
        fn,
        torch.zeros(2, 30, dtype=torch.long),
        mask_id=0,
        settings=Sampling(num_blocks=3, remasking="random"),
        generator=torch.Generator().manual_seed(0),
    )
    calls.append(out)
    blocks = [slice(0, 10), slice(10, 20), slice(20, 30)]
    for x in calls:
        for b in range(1, 3):
            if (x[:, blocks[b]] != 0).any():  # a later block started: every earlier one is done
                assert (x[:, blocks[b - 1]] != 0).all()
    started = [next(i for i, x in enumerate(calls) if (x[:, blk] != 0).any()) for blk in blocks]
    assert started == sorted(started) and len(set(started)) == 3


def test_step_info_reports_decreasing_masks(get_demo):
    ds = get_demo("penguin-groups")
    sc = Scaffold.build(ds.schema.resolved, ds.seeds.records)
    c = CanvasConstraint(sc)
    infos: list[StepInfo] = []
    canvas = c.initial_canvas(4)
    Vs = len(sc.vocab)
    generate(
        lambda x: torch.randn(x.shape[0], x.shape[1], Vs),
        canvas,
        mask_id=MASK,
        settings=Sampling(num_blocks=2),
        constraint=c,
        generator=torch.Generator().manual_seed(0),
        on_step=infos.append,
    )
    masked = [i.masked for i in infos]
    assert all(a > b for a, b in zip(masked, masked[1:]))
    assert masked[-1] == 0 and masked[0] < infos[0].total == int((canvas == MASK).sum())
    assert all(i.num_blocks == 2 for i in infos)
    assert [i.block for i in infos] == sorted(i.block for i in infos) and {i.block for i in infos} == {0, 1}


# ---- determinism ------------------------------------------------------------------------------


def x_dependent_logits(seed=0):
    """Logits that depend on what is already committed, so commit order matters."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(20, V, generator=g)
    mix = torch.randn(V, generator=g)

    def fn(x):
        return base[None] + (x.float().sum(1, keepdim=True) * 0.1)[..., None] * mix

    return fn


def test_temperature_zero_is_deterministic():
    s = Sampling(temperature=0.0, remasking="low_confidence")
    runs = [
        generate(x_dependent_logits(), torch.zeros(3, 20, dtype=torch.long), mask_id=0, settings=s) for _ in range(2)
    ]
    assert torch.equal(*runs)
    # with logits independent of the canvas, temperature 0 is the argmax at every position
    fixed = torch.randn(3, 20, V)
    out = generate(lambda x: fixed, torch.zeros(3, 20, dtype=torch.long), mask_id=0, settings=s)
    assert torch.equal(out, fixed[..., 1:].argmax(-1) + 1)


def test_same_seed_same_output_different_seed_different_output():
    def run(seed, settings=Sampling()):
        return generate(
            x_dependent_logits(),
            torch.zeros(8, 20, dtype=torch.long),
            mask_id=0,
            settings=settings,
            generator=torch.Generator().manual_seed(seed),
        )

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    lc = Sampling(remasking="low_confidence", num_blocks=2)
    assert torch.equal(run(5, lc), run(5, lc))


def test_gumbel_sampling_follows_the_distribution():
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    logits = p.log().expand(40000, 1, 4)
    for temperature, target in ((1.0, p), (0.5, p**2 / (p**2).sum())):
        draws = add_gumbel_noise(logits, temperature, torch.Generator().manual_seed(0)).argmax(-1).flatten()
        freq = torch.bincount(draws, minlength=4).double() / len(draws)
        assert torch.allclose(freq, target, atol=0.015), (temperature, freq)


@pytest.mark.parametrize("shift", [-1000.0, 800.0])
def test_gumbel_noise_is_shift_invariant(shift):
    logits = torch.randn(4, 10, 6, dtype=torch.float64)
    logits[..., 0] = -math.inf
    a = add_gumbel_noise(logits, 1.0, torch.Generator().manual_seed(0)).argmax(-1)
    b = add_gumbel_noise(logits + shift, 1.0, torch.Generator().manual_seed(0)).argmax(-1)
    assert (b != 0).all()
    assert torch.equal(a, b)


# ---- classifier-free guidance -----------------------------------------------------------------


def test_cfg_doubles_the_batch_and_masks_the_prompt_in_the_unconditional_half():
    canvas = torch.zeros(3, 12, dtype=torch.long)
    canvas[:, :4] = 5  # the prompt: fixed tokens
    prompt_mask = torch.zeros(12, dtype=torch.bool)
    prompt_mask[:4] = True
    fn, calls = recording(random_logits())
    out = generate(
        fn,
        canvas,
        mask_id=0,
        settings=Sampling(cfg_scale=1.5),
        prompt_mask=prompt_mask,
        generator=torch.Generator().manual_seed(0),
    )
    assert calls and all(x.shape == (6, 12) for x in calls)
    for x in calls:
        assert (x[:3, :4] == 5).all() and (x[3:, :4] == 0).all()  # unconditional half: prompt masked
        assert torch.equal(x[:3, 4:], x[3:, 4:])
    assert (out[:, :4] == 5).all() and not (out == 0).any()
    for settings, mask in (
        (Sampling(cfg_scale=0.0), prompt_mask),
        (Sampling(cfg_scale=1.5), None),
        (Sampling(cfg_scale=1.5), torch.zeros(12, dtype=torch.bool)),
    ):
        fn, calls = recording(random_logits())
        generate(fn, canvas, mask_id=0, settings=settings, prompt_mask=mask)
        assert all(x.shape == (3, 12) for x in calls)


def test_cfg_combines_conditional_and_unconditional_logits():
    # temperature 0: the choice is the argmax of uncond + (s + 1) * (cond - uncond)
    cond, uncond = torch.randn(1, 4, V), torch.randn(1, 4, V)

    def fn(x):
        return torch.cat([cond, uncond], 0) if x.shape[0] == 2 else cond

    canvas = torch.tensor([[7, 0, 0, 0]])
    prompt_mask = torch.tensor([True, False, False, False])
    out = generate(
        fn, canvas, mask_id=0, settings=Sampling(cfg_scale=2.0, temperature=0.0, steps=1), prompt_mask=prompt_mask
    )
    guided = uncond + 3.0 * (cond - uncond)
    assert torch.equal(out[0, 1:], guided[0, 1:, 1:].argmax(-1) + 1)


# ---- misc -------------------------------------------------------------------------------------


def test_stalled_constraint_raises():
    class NothingReady:
        bias = None

        def allowed(self, x):
            return torch.ones(*x.shape, V, dtype=torch.bool)

        def ready(self, x):
            return torch.zeros_like(x, dtype=torch.bool)

        def commit(self, x, select, x0, conf):  # pragma: no cover - never reached
            return x

    with pytest.raises(RuntimeError, match="stalled"):
        generate(random_logits(), torch.zeros(1, 5, dtype=torch.long), mask_id=0, constraint=NothingReady())


def test_nothing_masked_returns_canvas_without_a_forward_pass():
    fn, calls = recording(random_logits())
    canvas = torch.full((2, 5), 4)
    assert torch.equal(generate(fn, canvas, mask_id=0), canvas) and not calls


def test_generate_does_not_mutate_logits_fn_output():
    fixed = torch.randn(2, 6, V, dtype=torch.float64)
    before = fixed.clone()
    generate(lambda x: fixed, torch.zeros(2, 6, dtype=torch.long), mask_id=0, settings=Sampling(temperature=0.0))
    assert torch.equal(fixed, before)
