"""Sampling from a fitted DiffLM: latents from the diffusion model, records from the decoder.

* ``sample_latents``: Heun's second-order solver of the probability-flow ODE from ``SIGMA_MAX`` to
  ``SIGMA_MIN`` (Karras spacing, rho = 7), standardised latents out;
* ``decode_records``: ancestral sampling from the frozen decoder given soft prompts, optionally
  constrained to the record's JSON Schema by an xgrammar token mask (``compile_grammar``, as
  ``chat/local.py`` does for the agents). Draws come from a CPU generator, so a seed gives the same
  records on any device.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from aod_core.generators.difflm.model import FrozenDecoder, LatentDenoiser

log = logging.getLogger(__name__)

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0  # EDM's range for unit-variance data
RHO = 7.0  # EDM step spacing


@torch.no_grad()
def sample_latents(net: LatentDenoiser, n: int, dim: int, *, steps: int = 50, seed: int = 0) -> torch.Tensor:
    """n standardised latents: Heun's method on dz/dsigma = (z - D(z; sigma)) / sigma from SIGMA_MAX
    to SIGMA_MIN (Karras spacing, rho = 7), then one last Euler step to sigma = 0."""
    dev = next(net.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    i = torch.arange(steps, dtype=torch.float64)
    sig = (SIGMA_MAX ** (1 / RHO) + i / max(1, steps - 1) * (SIGMA_MIN ** (1 / RHO) - SIGMA_MAX ** (1 / RHO))) ** RHO
    sig = torch.cat([sig, torch.zeros(1, dtype=torch.float64)]).float().tolist()
    z = (torch.randn(n, dim, generator=gen) * sig[0]).to(dev)
    for s_cur, s_next in zip(sig[:-1], sig[1:]):
        d_cur = (z - net(z, torch.full((n,), s_cur, device=dev))) / s_cur
        z_next = z + (s_next - s_cur) * d_cur
        if s_next > 0:
            d_next = (z_next - net(z_next, torch.full((n,), s_next, device=dev))) / s_next
            z_next = z + (s_next - s_cur) * 0.5 * (d_cur + d_next)
        z = z_next
    return z.cpu()


def compile_grammar(decoder: FrozenDecoder, json_schema: dict) -> Any:
    """The schema as an xgrammar token mask for this decoder, compact separators; None (with a
    warning) when xgrammar is missing or cannot handle the schema."""
    try:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(
            decoder.tokenizer, vocab_size=decoder.vocab_width, stop_token_ids=decoder.stop_ids
        )
        compiler = xgr.GrammarCompiler(info, max_threads=2)
        return compiler.compile_json_schema(json_schema, any_whitespace=False, separators=(",", ":"))
    except ImportError:
        log.warning("xgrammar is not installed: DiffLM decodes without a grammar (validation still applies)")
    except Exception as e:  # a schema feature xgrammar does not support
        log.warning("cannot constrain DiffLM decoding to this schema (%s); validating only", e)
    return None


@torch.no_grad()
def decode_records(
    decoder: FrozenDecoder,
    soft: torch.Tensor,
    *,
    grammar: Any,
    temperature: float,
    max_new_tokens: int,
    generator: torch.Generator,
    on_token: Callable[[int, int], None] | None = None,
) -> list[tuple[str, bool]]:
    """Sample one record per soft prompt [B, k, d]: (text, finished) per row. ``finished`` is False
    when the row hit ``max_new_tokens`` before its end token. Sampling draws from the CPU
    ``generator``, so the same seed gives the same records on any device."""
    b = soft.shape[0]
    model = decoder.model
    matchers, bitmask = None, None
    if grammar is not None:
        import xgrammar as xgr

        matchers = [xgr.GrammarMatcher(grammar) for _ in range(b)]
        bitmask = xgr.allocate_token_bitmask(b, decoder.vocab_width)
    out = model(inputs_embeds=soft.to(decoder.dtype), use_cache=True)
    past = out.past_key_values
    logits = out.logits[:, -1, :].float()
    tokens: list[list[int]] = [[] for _ in range(b)]
    done = [False] * b
    finished = [False] * b
    stops = set(decoder.stop_ids)
    for step in range(max_new_tokens):
        logits = logits.cpu()
        if matchers is not None:
            import xgrammar as xgr

            for i, m in enumerate(matchers):
                if not done[i]:
                    m.fill_next_token_bitmask(bitmask, i)
            xgr.apply_token_bitmask_inplace(logits, bitmask)
            logits[torch.tensor(done)] = 0.0  # finished rows keep a stale mask; their draw is discarded
        if temperature > 0:
            # Inverse-CDF draw, one uniform per row: exact, and several times faster than
            # torch.multinomial over a 49k vocabulary on a CPU.
            cdf = torch.softmax(logits / temperature, -1).cumsum(-1)
            u = torch.rand(b, 1, generator=generator) * cdf[:, -1:]
            nxt = torch.searchsorted(cdf, u).squeeze(1).clamp_max(logits.shape[1] - 1)
        else:
            nxt = logits.argmax(-1)
        for i in range(b):
            if done[i]:
                nxt[i] = decoder.eos_id
                continue
            t = int(nxt[i])
            if matchers is not None:
                matchers[i].accept_token(t)
            if t in stops or (matchers is not None and matchers[i].is_terminated()):
                done[i] = finished[i] = True
            else:
                tokens[i].append(t)
        if on_token:
            on_token(step + 1, b - sum(done))
        if all(done):
            break
        out = model(input_ids=nxt[:, None].to(decoder.device), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1, :].float()
    return [(decoder.tokenizer.decode(t, skip_special_tokens=True), f) for t, f in zip(tokens, finished)]
