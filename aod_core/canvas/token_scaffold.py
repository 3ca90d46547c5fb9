"""The schema scaffold at the token level of a real diffusion LM (``hf:`` generators).

The character-level ``Scaffold`` decides the record's shape: keys in schema order, which leaves are
values and which are enum choices, numeric ranges and decimals, string lengths, patterns. Here that
shape is laid out in the model's own tokens, after the chat-formatted prompt:

* fixed text (braces, quoted keys, colons, commas) is tokenized with the model's tokenizer and stays
  fixed; each leaf becomes a **run of mask tokens** whose length comes from how many tokens the seeds'
  values need (plus slack), so the model never decides where a value starts or stops;
* each run has a **language**: the JSON text of its value (quotes included for strings, so ``null``
  fits too) as a regular expression, compiled with ``interegular`` and lifted from characters to the
  vocabulary: for every automaton state, which tokens keep the text completable and where they lead.
  Numbers get digits/sign/point tokens, enums the spellings of their members, strings only tokens
  without quotes, backslashes or control characters. Runs end early with EOS, then EOS padding;
* structural choices (array lengths, optional keys) are drawn per record from the seeds'
  frequencies before decoding, so each row of a batch has its own concrete skeleton.

Decoding reads each run's tokens back as text, parses it as JSON and rebuilds the record through the
scaffold's tree; the record is then validated against the schema like any other candidate.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from interegular.fsm import anything_else

from aod_core.canvas.automaton import compile_fsm
from aod_core.canvas.nodes import ArrayNode, ChoiceNode, ConstNode, Node, ObjectNode, UnionNode, ValueNode
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import Slot, canonical
from aod_core.errors import InputError

MAX_TOKEN_CHARS = 16  # longer vocabulary entries never fit a value slot usefully
SLACK_TOKENS = 2  # extra run length over the longest seed value, so new values are not cut short
SAFE_STRING = r'"[^"\\\x00-\x1f]*"'  # JSON string text the canvas can hold without escapes


# ---- the vocabulary as text --------------------------------------------------------------------


@dataclass
class TokenTable:
    """Surface text of every vocabulary entry, as char-index codes for vectorised automaton walks."""

    strings: list[str | None]  # None: special or partial-UTF-8 tokens, never placed in a value
    codes: np.ndarray  # [V, MAX_TOKEN_CHARS] index into ``chars``; -1 past the end
    lengths: np.ndarray  # [V]
    chars: list[str]
    compiled: dict[tuple, SlotLanguage] = field(default_factory=dict, repr=False)  # languages, per regex

    @property
    def size(self) -> int:
        return len(self.strings)

    def text(self, ids: list[int]) -> str:
        return "".join(self.strings[i] or "" for i in ids)


def token_strings(tokenizer: Any, vocab_size: int) -> list[str | None]:
    """What each token id spells when it follows other text (leading spaces kept, bytes merged).

    xgrammar knows every tokenizer family's quirks (byte-level BPE, SentencePiece's ▁, byte
    fallback), so its decoded vocabulary is used when it is installed.
    """
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    try:
        import xgrammar

        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        raw = list(info.decoded_vocab)
        out: list[str | None] = []
        for i, b in enumerate(raw[:vocab_size]):
            try:
                out.append(None if i in special else b.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(None)
        return out + [None] * (vocab_size - len(out))
    except Exception:  # no xgrammar, or a tokenizer it cannot read: per-token conversion
        out = []
        for i in range(vocab_size):
            if i in special:
                out.append(None)
                continue
            try:
                tok = tokenizer.convert_ids_to_tokens(i)
                out.append(None if tok is None else tokenizer.convert_tokens_to_string([tok]))
            except Exception:
                out.append(None)
        return out


def build_token_table(tokenizer: Any, vocab_size: int) -> TokenTable:
    strings = [
        s if s and "\ufffd" not in s and len(s) <= MAX_TOKEN_CHARS else None
        for s in token_strings(tokenizer, vocab_size)
    ]
    chars = sorted({ch for s in strings if s for ch in s})
    index = {ch: i for i, ch in enumerate(chars)}
    codes = np.full((vocab_size, MAX_TOKEN_CHARS), -1, dtype=np.int32)
    lengths = np.zeros(vocab_size, dtype=np.int32)
    for i, s in enumerate(strings):
        if s:
            codes[i, : len(s)] = [index[ch] for ch in s]
            lengths[i] = len(s)
    return TokenTable(strings, codes, lengths, chars)


# ---- value languages over tokens ---------------------------------------------------------------


@dataclass
class SlotLanguage:
    """A value's JSON text as an automaton over token ids.

    ``next[s, c]`` is the state after candidate token ``cands[c]`` from state ``s`` (-1: rejected);
    ``dist[s]`` the fewest tokens that complete an accepted text from ``s``. A token is allowed at a
    run position with ``r`` positions after it when it leads to a state with ``dist <= r``; EOS is
    allowed once the text so far is accepted.
    """

    cands: torch.Tensor  # [C] token ids
    next: torch.Tensor  # [S, C]
    accept: torch.Tensor  # [S] bool
    dist: torch.Tensor  # [S]
    start: int

    def allowed(self, states: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
        """[E, C] candidates allowed for E runs in ``states`` with ``remaining`` positions after this one."""
        nxt = self.next[states]  # [E, C]
        ok = nxt >= 0
        return ok & (self.dist[nxt.clamp(min=0)] <= remaining.unsqueeze(1))

    def step(self, state: int, token: int) -> int:
        hit = (self.cands == token).nonzero()
        return -1 if len(hit) == 0 else int(self.next[state, int(hit[0])])

    def to(self, device: torch.device) -> SlotLanguage:
        return SlotLanguage(
            self.cands.to(device), self.next.to(device), self.accept.to(device), self.dist.to(device), self.start
        )


def compile_language(
    table: TokenTable, regex: str, extra: tuple[str, ...] = (), forbid: tuple[str, ...] = ()
) -> SlotLanguage:
    """Lift a character regex (∩ ``extra``, minus ``forbid`` literals) to the token vocabulary."""
    key = (regex, extra, forbid)
    if key not in table.compiled:
        table.compiled[key] = _compile(table, regex, extra, forbid)
    return table.compiled[key]


def _compile(table: TokenTable, regex: str, extra: tuple[str, ...], forbid: tuple[str, ...]) -> SlotLanguage:
    fsm = compile_fsm(regex, extra, forbid)
    states = sorted(fsm.states, key=str)
    sid = {s: i for i, s in enumerate(states)}
    S = len(states)
    dead = S  # an extra absorbing row
    alphabet = fsm.alphabet
    other = alphabet[anything_else] if anything_else in alphabet else None
    classes = sorted({cls for row in fsm.map.values() for cls in row}, key=str)
    cid = {c: i for i, c in enumerate(classes)}
    n_cls = len(classes) + 1  # last: a character the automaton never accepts
    none_cls = n_cls - 1
    char_cls = np.array(
        [cid.get(alphabet[ch] if ch in alphabet else other, none_cls) for ch in table.chars] + [none_cls],
        dtype=np.int64,
    )
    trans = np.full((S + 1, n_cls), dead, dtype=np.int64)
    for s in states:
        for cls, target in fsm.map.get(s, {}).items():
            if cls in cid:
                trans[sid[s], cid[cls]] = sid[target]
    usable = table.lengths > 0
    codes = table.codes[usable]  # [U, MAX]
    ids = np.nonzero(usable)[0]
    cls_codes = np.where(codes >= 0, char_cls[np.where(codes >= 0, codes, len(table.chars))], -1)
    nxt = np.empty((S, len(ids)), dtype=np.int64)
    for s in range(S):
        cur = np.full(len(ids), s, dtype=np.int64)
        for pos in range(cls_codes.shape[1]):
            col = cls_codes[:, pos]
            live = col >= 0
            cur[live] = trans[cur[live], col[live]]
        nxt[s] = cur
    keep = (nxt != dead).any(0)
    nxt, ids = nxt[:, keep], ids[keep]
    nxt[nxt == dead] = -1
    accept = np.array([s in fsm.finals for s in states], dtype=bool)
    big = 1 << 20
    dist = np.where(accept, 0, big).astype(np.int64)
    for _ in range(S + 1):  # Bellman-Ford over token steps; S+1 rounds reach every fixpoint
        reach = np.where(nxt >= 0, dist[np.clip(nxt, 0, None)], big)
        best = reach.min(1) + 1 if reach.shape[1] else np.full(S, big)
        new = np.minimum(dist, best)
        if (new == dist).all():
            break
        dist = new
    return SlotLanguage(
        torch.from_numpy(ids).long(),
        torch.from_numpy(nxt),
        torch.from_numpy(accept),
        torch.from_numpy(dist),
        sid[fsm.initial],
    )


def slot_regex(slot: Slot, prompt: Prompt) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(regex, extra regexes, forbidden literals) of a leaf's JSON text under the prompt's edits."""
    forbid = tuple(canonical(v) for v in _for_path(prompt.forbid, slot) or [])
    if slot.kind == "choice":
        choices = [c for c in slot.choices if canonical(c) not in forbid]
        if not choices:
            raise InputError(f"every value of {slot.path} is forbidden by the prompt")
        return "(" + "|".join(re.escape(canonical(c)) for c in choices) + ")", (), ()
    null = "|null" if slot.nullable else ""
    if slot.vtype in ("integer", "number"):
        lo, hi = slot.lo, slot.hi
        rng = _for_path(prompt.ranges, slot)
        if rng:
            lo = rng[0] if lo is None else max(lo, rng[0])
            hi = rng[1] if hi is None else min(hi, rng[1])
            if lo > hi:
                raise InputError(f"range {rng} for {slot.path} lies outside the field's [{slot.lo}, {slot.hi}]")
        try:
            body = slot.number.regex(lo, hi) if rng else slot.regex
        except ValueError as e:
            raise InputError(f"{slot.path}: {e}") from None
        return f"({body}{null})", (), forbid
    extra = (f"({SAFE_STRING}{null})",) + tuple(f'("({e})"{null})' for e in slot.extra)
    return f'("({slot.regex})"{null})', extra, forbid


def _for_path(edits: dict[str, Any], slot: Slot) -> Any:
    return edits.get(slot.path, edits.get(slot.key))


# ---- one record's canvas -----------------------------------------------------------------------


@dataclass
class Run:
    """A leaf's mask run in one row: canvas positions ``start .. start+width`` and its language."""

    slot: Slot
    language: SlotLanguage
    start: int
    width: int


@dataclass
class RowPlan:
    ids: list[int]  # the whole canvas: prompt, skeleton with mask runs, EOS
    runs: list[Run]
    fixed: dict[int, Any] = field(default_factory=dict)  # slot.start -> value (structure, pins)


class TokenScaffold:
    """Lays records out as token canvases for one model's tokenizer, and reads them back."""

    def __init__(
        self, scaffold: Scaffold, seeds: list[dict], tokenizer: Any, table: TokenTable, *, mask_id: int, end_id: int
    ):
        self.scaffold, self.tokenizer, self.table = scaffold, tokenizer, table
        self.mask_id, self.end_id = mask_id, end_id
        self._piece_cache: dict[str, list[int]] = {}
        encoded = [scaffold.encode(s) for s in seeds]
        vocab = scaffold.vocab
        # How often each structural choice was made in the seeds (array lengths, optional keys).
        self.structure: dict[int, Counter] = {}
        for s in scaffold.slots:
            if s.role in ("count", "present", "variant"):
                seen = Counter(vocab.choice_value[t[s.start]] for t in encoded if t[s.start] in s.tokens)
                self.structure[s.start] = seen or Counter({s.choices[0]: 1})
        # Run widths: the most tokens a seed value needs, plus slack.
        need: dict[str, int] = {}
        for rec in seeds:
            for slot, value in _leaf_values(scaffold.root, rec):
                n = len(self.encode_text(canonical(value)))
                need[slot.key] = max(need.get(slot.key, 1), n)
        self.widths = {s.key: need.get(s.key, 1) + SLACK_TOKENS for s in scaffold.slots if s.role in ("enum", "")}

    def encode_text(self, text: str) -> list[int]:
        if text not in self._piece_cache:
            self._piece_cache[text] = list(self.tokenizer.encode(text, add_special_tokens=False))
        return self._piece_cache[text]

    def languages(self, prompt: Prompt) -> dict[int, SlotLanguage]:
        """Every leaf's language under the prompt (slot.start -> language); InputError if one is empty."""
        out = {}
        for s in self.scaffold.slots:
            if s.role in ("enum", "") and not _pinned(prompt, s):
                regex, extra, forbid = slot_regex(s, prompt)
                lang = compile_language(self.table, regex, extra, forbid)
                if int(lang.dist[lang.start]) >= 1 << 20:
                    raise InputError(
                        f"no value of {s.path} can be written with this model's tokens under the prompt's edits"
                    )
                out[s.start] = lang
        return out

    def plan(
        self, prompt_ids: list[int], prompt: Prompt, languages: dict[int, SlotLanguage], rng: random.Random
    ) -> RowPlan:
        ids = list(prompt_ids)
        plan = RowPlan(ids, [])
        self._lay(self.scaffold.root, prompt, languages, rng, plan)
        ids.append(self.end_id)  # the answer ends with the record
        return plan

    def _lay(
        self, node: Node, prompt: Prompt, langs: dict[int, SlotLanguage], rng: random.Random, plan: RowPlan
    ) -> None:
        if isinstance(node, ConstNode):
            self._text(canonical(node.value), plan)
        elif isinstance(node, (ValueNode, ChoiceNode)):
            s = node.slot
            pinned = _pinned(prompt, s)
            if pinned is not None:
                plan.fixed[s.start] = pinned[0]
                self._text(canonical(pinned[0]), plan)
                return
            lang = langs[s.start]
            width = max(self.widths[s.key], int(lang.dist[lang.start]))
            plan.runs.append(Run(s, lang, len(plan.ids), width))
            plan.ids.extend([self.mask_id] * width)
        elif isinstance(node, ObjectNode):
            self._text("{", plan)
            first = True
            for name, child, presence in node.fields:
                if presence is not None:
                    on = _draw(self.structure[presence.start], rng)
                    plan.fixed[presence.start] = on
                    if on is not True:
                        continue
                self._text(("" if first else ",") + json.dumps(name, ensure_ascii=False) + ":", plan)
                first = False
                self._lay(child, prompt, langs, rng, plan)
            self._text("}", plan)
        elif isinstance(node, UnionNode):
            i = _draw(self.structure[node.slot.start], rng)
            plan.fixed[node.slot.start] = i
            self._lay(node.alternatives[i], prompt, langs, rng, plan)
        elif isinstance(node, ArrayNode):
            n = len(node.items)
            if node.count is not None:
                n = _draw(self.structure[node.count.start], rng)
                plan.fixed[node.count.start] = n
            self._text("[", plan)
            for i, item in enumerate(node.items[:n]):
                if i:
                    self._text(",", plan)
                self._lay(item, prompt, langs, rng, plan)
            self._text("]", plan)

    def _text(self, text: str, plan: RowPlan) -> None:
        plan.ids.extend(self.encode_text(text))

    def read(self, plan: RowPlan, row: list[int]) -> tuple[str | None, Any, str | None]:
        """(JSON text, record, error) of a filled canvas row."""
        values = dict(plan.fixed)
        for run in plan.runs:
            toks = row[run.start : run.start + run.width]
            n = toks.index(self.end_id) if self.end_id in toks else len(toks)
            text = self.table.text(toks[:n])
            try:
                values[run.slot.start] = json.loads(text)
            except ValueError:
                return None, None, f"{run.slot.path}: {text!r} is not a JSON value"
        record = _render(self.scaffold.root, values)
        return json.dumps(record, ensure_ascii=False), record, None


def _pinned(prompt: Prompt, slot: Slot) -> tuple[Any] | None:
    for key in (slot.path, slot.key):
        if key in prompt.pins:
            return (prompt.pins[key],)
    return None


def _draw(counts: Counter, rng: random.Random) -> Any:
    values = list(counts)
    return rng.choices(values, weights=[counts[v] for v in values])[0]


def _render(node: Node, values: dict[int, Any]) -> Any:
    if isinstance(node, ConstNode):
        return node.value
    if isinstance(node, (ValueNode, ChoiceNode)):
        return values[node.slot.start]
    if isinstance(node, UnionNode):
        return _render(node.alternatives[values[node.slot.start]], values)
    if isinstance(node, ObjectNode):
        return {
            name: _render(child, values)
            for name, child, presence in node.fields
            if presence is None or values.get(presence.start) is True
        }
    n = len(node.items) if node.count is None else values[node.count.start]
    return [_render(item, values) for item in node.items[:n]]


def _leaf_values(node: Node, value: Any) -> Iterator[tuple[Slot, Any]]:
    if isinstance(node, (ValueNode, ChoiceNode)):
        yield node.slot, value
    elif isinstance(node, UnionNode):
        i = node.classify(value)
        if i in node.alternatives:
            yield from _leaf_values(node.alternatives[i], value)
    elif isinstance(node, ObjectNode) and isinstance(value, dict):
        for name, child, _ in node.fields:
            if name in value:
                yield from _leaf_values(child, value[name])
    elif isinstance(node, ArrayNode) and isinstance(value, list):
        for item, v in zip(node.items, value):
            yield from _leaf_values(item, v)
