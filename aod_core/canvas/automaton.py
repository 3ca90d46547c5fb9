"""Value languages of scaffold slots, as dense DFAs over the generator's vocabulary.

A value slot holds at most ``width`` symbols: the value's characters, then END padding (a value may
end early). Its language is a regular expression built from the schema (number ranges, dates,
string lengths, ``pattern``) and compiled to a finite automaton with ``interegular``. The sampler
uses the table to keep every partially filled slot completable (see ``constraints.py``).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import interegular
import interegular.fsm
import numpy as np
from interegular.fsm import anything_else

from aod_core.errors import BudgetExceeded

# Budget of one compilation: a regex whose automaton explodes (a pattern like (a|b)*a(a|b){20},
# or a long pattern times a long length bound) is refused instead of running for minutes.
MAX_STATES = 5000

# The date language with real month lengths and leap days, so every accepted string is a valid
# ISO date for jsonschema's "date" format checker (which rejects 2023-02-30).
_LEAP_YEAR = r"(\d\d(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)"
DATE_REGEX = (
    r"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])"
    r"|\d{4}-(0[13-9]|1[0-2])-(29|30)"
    r"|\d{4}-(0[13578]|1[02])-31"
    rf"|{_LEAP_YEAR}-02-29)"
)
# Characters a JSON string may hold unescaped-or-escaped; control characters are left out on
# purpose: seeds almost never contain them and a generated one is far more likely noise.
STRING_CHAR = r"[^\x00-\x1f]"


def _same_length_range(lo: str, hi: str) -> str:
    """Regex for every digit string of len(lo) between lo and hi (inclusive, leading zeros as given)."""
    if lo == hi:
        return lo
    if lo.strip("0") == "" and hi.strip("9") == "":
        return f"\\d{{{len(lo)}}}"  # every digit string of this length: linear, not exponential
    if len(lo) == 1:
        return f"[{lo}-{hi}]"
    rest = len(lo) - 1
    if lo[0] == hi[0]:
        return f"{lo[0]}({_same_length_range(lo[1:], hi[1:])})"
    parts = [f"{lo[0]}({_same_length_range(lo[1:], '9' * rest)})"]
    if int(hi[0]) - int(lo[0]) > 1:
        parts.append(f"[{int(lo[0]) + 1}-{int(hi[0]) - 1}]\\d{{{rest}}}")
    parts.append(f"{hi[0]}({_same_length_range('0' * rest, hi[1:])})")
    return "(" + "|".join(parts) + ")"


def int_range_regex(lo: int, hi: int) -> str:
    """Regex for the decimal spelling (no leading zeros) of every integer in [lo, hi], lo, hi >= 0."""
    if lo < 0 or hi < lo:
        raise ValueError(f"bad range [{lo}, {hi}]")
    parts = []
    for n in range(len(str(lo)), len(str(hi)) + 1):
        a = str(lo) if n == len(str(lo)) else ("0" if n == 1 else "1" + "0" * (n - 1))
        b = str(hi) if n == len(str(hi)) else "9" * n
        parts.append(_same_length_range(a, b))
    return "(" + "|".join(parts) + ")"


def _scaled_nonneg_regex(lo: int, hi: int, decimals: int) -> str:
    """Spellings with exactly ``decimals`` fraction digits of the values lo/10^d .. hi/10^d (lo >= 0)."""
    if decimals == 0:
        return int_range_regex(lo, hi)
    unit = 10**decimals
    (ilo, flo), (ihi, fhi) = divmod(lo, unit), divmod(hi, unit)

    def frac(a: int, b: int) -> str:
        return _same_length_range(str(a).zfill(decimals), str(b).zfill(decimals))

    if ilo == ihi:
        return f"{ilo}\\.({frac(flo, fhi)})"
    parts = [f"{ilo}\\.({frac(flo, unit - 1)})"]
    if ihi - ilo > 1:
        parts.append(f"{int_range_regex(ilo + 1, ihi - 1)}\\.\\d{{{decimals}}}")
    parts.append(f"{ihi}\\.({frac(0, fhi)})")
    return "(" + "|".join(parts) + ")"


def number_regex(lo: float, hi: float, decimals: int, *, exclusive_lo: bool = False, exclusive_hi: bool = False) -> str:
    """Regex for numbers in [lo, hi] written with exactly ``decimals`` fraction digits.

    A fixed number of decimals (taken from the seeds) makes the range an integer range on the
    scaled value, which is regular. Callers close open ends with the largest value the slot fits.
    """
    unit = 10**decimals
    a = Decimal(str(lo)) * unit
    b = Decimal(str(hi)) * unit
    lo_i = math.floor(a) + 1 if exclusive_lo and a == a.to_integral_value() else math.ceil(a)
    hi_i = math.ceil(b) - 1 if exclusive_hi and b == b.to_integral_value() else math.floor(b)
    if lo_i > hi_i:
        raise ValueError(f"no number with {decimals} decimals lies in the range [{lo}, {hi}]")
    parts = []
    if lo_i < 0:
        mag_lo = 1 if hi_i >= 0 else -hi_i
        parts.append("-" + _scaled_nonneg_regex(mag_lo, -lo_i, decimals))
    if hi_i >= 0:
        parts.append(_scaled_nonneg_regex(max(lo_i, 0), hi_i, decimals))
    return "(" + "|".join(parts) + ")"


def string_regex(min_length: int, max_length: int | None) -> str:
    """Regex for a string value's characters (unescaped), with length bounds."""
    upper = "" if max_length is None else str(max_length)
    return f"{STRING_CHAR}{{{min_length},{upper}}}"


def _top_level_alternatives(pattern: str) -> list[str]:
    """Split a regex on the ``|`` that are outside groups and character classes."""
    parts, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def pattern_regex(pattern: str) -> str:
    """A full-match regex for a JSON Schema ``pattern``, which searches anywhere in the string.

    Each top-level alternative is anchored on its own (``^a|b$``: starts with a, or ends with b);
    an alternative left unanchored at an end may have anything there. Anchors inside groups are
    not expressible for the automaton: ``compile_fsm`` then fails and the caller reports the pattern
    as not enforced.
    """
    out = []
    for alt in _top_level_alternatives(pattern):
        start = alt.startswith("^")
        end = alt.endswith("$") and not alt.endswith("\\$")
        body = alt[1 if start else 0 : len(alt) - 1 if end else len(alt)]
        out.append(("" if start else ".*") + f"({body})" + ("" if end else ".*"))
    return "|".join(f"({o})" for o in out)


class _Budget(threading.local):
    active: bool = False
    spent: int = 0  # states' worth of transitions crawled on this thread (``spent()``, the layout's budget)


_budget = _Budget()
_crawl = interegular.fsm.crawl


def spent() -> int:
    """States' worth of transitions this thread's compilations have cost so far: a count, so a
    budget over it (the layout's) answers the same on a busy machine as on an idle one. A
    compilation served from the cache costs what it cost the first time."""
    return _budget.spent


def _state_key(state):
    """A hashable stand-in for a crawl state that is equal exactly when the states are (``==``):
    interegular's states are ints, tuples, frozensets, and sets and dicts of those."""
    if isinstance(state, dict):
        return (dict, frozenset(state.items()))
    if isinstance(state, set):
        return frozenset(state)
    return state


def _indexed_crawl(alphabet, initial, final, follow):
    """interegular's ``crawl`` with its states indexed by a hash instead of found with
    ``list.index``: the same automaton, in time linear in the transitions instead of quadratic in
    the states (a pattern that exhausts the budget took 4.4 s instead of a fraction of one)."""
    states, index = [initial], {}
    try:
        index[_state_key(initial)] = 0
    except TypeError:  # a state that cannot be hashed: interegular's own search
        return _crawl(alphabet, initial, final, follow)
    finals, transitions = set(), {}
    i = 0
    while i < len(states):
        state = states[i]
        if final(state):
            finals.add(i)
        transitions[i] = {}
        for transition in alphabet.by_transition:
            try:
                new = follow(state, transition)
            except interegular.fsm.OblivionError:
                continue  # the dead state is never listed
            key = _state_key(new)
            j = index.get(key)
            if j is None:
                j = index[key] = len(states)
                states.append(new)
            transitions[i][transition] = j
        i += 1
    return interegular.fsm.FSM(
        alphabet=alphabet, states=range(len(states)), initial=0, finals=finals, map=transitions, __no_validation__=True
    )


def _budgeted_crawl(alphabet, initial, final, follow):
    """interegular's state crawl (every FSM operation goes through it), stopped at the budget: at
    most ``MAX_STATES`` states' worth of transitions. A count, not a clock, so the same schema gets
    the same answer on a busy machine as on an idle one."""
    if not _budget.active:
        return _indexed_crawl(alphabet, initial, final, follow)
    seen = [0]
    limit = MAX_STATES * max(1, len(alphabet.by_transition))

    def guarded(state, transition):
        seen[0] += 1
        if seen[0] > limit:
            raise _OverBudget
        return follow(state, transition)

    try:
        return _indexed_crawl(alphabet, initial, final, guarded)
    finally:
        _budget.spent += seen[0]


class _OverBudget(Exception):
    pass


interegular.fsm.crawl = _budgeted_crawl


def compile_fsm(regex: str, extra: tuple[str, ...] = (), forbid: tuple[str, ...] = ()):
    """interegular FSM for ``regex`` ∩ every regex in ``extra``, minus the literal strings in ``forbid``.

    Raises ``BudgetExceeded`` when building it crawls more than ``MAX_STATES`` states' worth of
    transitions or the result has more than ``MAX_STATES`` states. A *marked union* (a number slot
    split into bins: ``(m1(...)|m2(...)|...)``, each alternative a distinct bin mark then a group)
    is compiled bin by bin and joined on its first symbol, which costs the sum of its parts instead
    of the product interegular's generic union would crawl.
    """
    before = _budget.spent
    try:
        fsm, cost = _compile(regex, tuple(extra), tuple(forbid))
    except BudgetExceeded:
        _budget.spent = before + MAX_STATES
        raise
    _budget.spent = before + cost
    return fsm


@lru_cache(maxsize=512)
def _compile(regex: str, extra: tuple[str, ...], forbid: tuple[str, ...]):
    before = _budget.spent
    marked = _marked(regex)
    if marked is not None:
        fsm = _compile_marked(marked, extra, forbid)
        if fsm is not None:
            return fsm, _budget.spent - before
    outer = _budget.active
    _budget.active = True
    try:
        fsm = interegular.parse_pattern(regex).to_fsm()
        for other in extra:
            fsm = fsm.intersection(interegular.parse_pattern(other).to_fsm())
        for literal in forbid:
            fsm = fsm.difference(interegular.parse_pattern(re.escape(literal)).to_fsm())
        fsm = fsm.reduce()
    except _OverBudget:
        raise BudgetExceeded(
            f"the automaton of this value's language grows past the budget ({MAX_STATES} states)"
        ) from None
    finally:
        _budget.active = outer
    if len(fsm.states) > MAX_STATES:
        raise BudgetExceeded(
            f"the automaton of this value's language has {len(fsm.states)} states (budget {MAX_STATES})"
        )
    return fsm, _budget.spent - before


compile_fsm.cache_clear = _compile.cache_clear  # type: ignore[attr-defined]  # lru_cache's, as before


# -- marked unions: number bins ------------------------------------------------------------------

MARKS_FROM = 0xF0000  # bin marks are private-use code points from here on (``values.BIN_MARKS``)


def marked_union(parts: list[tuple[str, str]]) -> str:
    """The regex of a choice among ``(mark, body)`` parts: one mark symbol, then that part's body."""
    return "(" + "|".join(f"{mark}({body})" for mark, body in parts) + ")"


def _marked(regex: str) -> dict[str, str] | None:
    """``{mark: body}`` when ``regex`` is a marked union (``marked_union``), else None."""
    if not (regex.startswith("(") and regex.endswith(")")) or len(regex) < 4 or ord(regex[1]) < MARKS_FROM:
        return None
    alts = _top_level_alternatives(regex[1:-1])
    out: dict[str, str] = {}
    for alt in alts:
        if len(alt) < 3 or ord(alt[0]) < MARKS_FROM or alt[1] != "(" or not alt.endswith(")") or alt[0] in out:
            return None
        body = alt[2:-1]
        if _top_level_alternatives(f"({body})") != [f"({body})"] or not _balanced(body):
            return None
        out[alt[0]] = body
    return out


def _balanced(text: str) -> bool:
    depth, i, in_class = 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def _compile_marked(parts: dict[str, str], extra: tuple[str, ...], forbid: tuple[str, ...]):
    """The marked union ∩ extras − forbids, part by part (None: an extra that is not itself a
    marked union, for the generic path)."""
    extras = []
    for other in extra:
        m = _marked(other)
        if m is None:
            return None
        extras.append(m)
    fsms = []
    for mark, body in parts.items():
        if any(mark not in m for m in extras):
            continue  # an extra leaves this bin out
        mine = tuple(lit[1:] for lit in forbid if lit[:1] == mark)
        fsms.append((mark, compile_fsm(body, tuple(m[mark] for m in extras), mine)))
    return _minimized(_join_marked(fsms))


def _join_marked(parts: list[tuple[str, interegular.FSM]]) -> interegular.FSM:
    """One FSM reading a mark, then the part that mark starts (parts' states kept apart)."""
    marks = interegular.fsm.Alphabet({mark: i for i, (mark, _) in enumerate(parts)})
    alphabet, new_to_old = interegular.fsm.Alphabet.union(marks, *[f.alphabet for _, f in parts])
    initial = ("start",)
    states, finals, table = {initial}, set(), {initial: {}}
    for i, (mark, f) in enumerate(parts):
        table[initial][alphabet[mark]] = (i, f.initial)
        back = new_to_old[i + 1]
        for s in f.states:
            row, src = {}, f.map.get(s, {})
            for t in alphabet.by_transition:
                old = back.get(t)
                if old is not None and old in src:
                    row[t] = (i, src[old])
            states.add((i, s))
            table[(i, s)] = row
            if s in f.finals:
                finals.add((i, s))
    return _fsm(alphabet, states, initial, finals, table)


def _fsm(alphabet, states, initial, finals, table) -> interegular.FSM:
    return interegular.FSM(alphabet, states, initial, finals, table, __no_validation__=True)


def _minimized(fsm: interegular.FSM) -> interegular.FSM:
    """The minimal DFA of ``fsm`` (Moore's partition refinement; a missing transition is the dead
    state), so bins that end alike share their states."""
    keys = sorted(fsm.alphabet.by_transition)
    states = sorted(fsm.states, key=str)
    block = {s: int(s in fsm.finals) for s in states}
    count = len(set(block.values()))
    while True:
        sig = {s: (block[s], *(block.get(fsm.map.get(s, {}).get(k), -1) for k in keys)) for s in states}
        ids: dict[tuple, int] = {}
        new = {s: ids.setdefault(sig[s], len(ids)) for s in states}
        block = new
        if len(ids) == count:
            break
        count = len(ids)
    table: dict[int, dict] = {}
    for s in states:
        row = fsm.map.get(s, {})
        table.setdefault(block[s], {k: block[row[k]] for k in keys if k in row})
    return _fsm(fsm.alphabet, set(table), block[fsm.initial], {block[s] for s in fsm.finals}, table)


@dataclass(frozen=True)
class SlotDFA:
    """Dense DFA over vocabulary ids for one value slot: ``table[state, token] -> state``.

    State ``dead`` rejects forever; ``end`` is reached by END after an accepted value (or by NULL at
    the start of a nullable slot) and only loops on END. ``accept[s]`` says a slot may stop in s.
    """

    table: np.ndarray  # [S, V] int32
    accept: np.ndarray  # [S] bool
    start: int
    dead: int
    end: int

    @property
    def n_states(self) -> int:
        return self.table.shape[0]

    def accepts(self, tokens: list[int]) -> bool:
        s = self.start
        for t in tokens:
            s = int(self.table[s, t])
        return bool(self.accept[s])


def build_slot_dfa(fsm, vocab_chars: dict[str, int], vocab_size: int, *, end_id: int, null_id: int | None) -> SlotDFA:
    """Turn an interegular FSM into a dense table over our token ids, adding END padding and NULL.
    ``vocab_chars`` maps each symbol to its id: a single character, or a word piece of several,
    whose transition is the walk over its characters."""
    states = sorted(fsm.states, key=str)
    index = {s: i for i, s in enumerate(states)}
    n = len(states)
    end, dead = n, n + 1
    table = np.full((n + 2, vocab_size), dead, dtype=np.int32)
    alphabet = fsm.alphabet
    other = alphabet[anything_else] if anything_else in alphabet else None
    singles = [(ch, tok) for ch, tok in vocab_chars.items() if len(ch) == 1]
    multi = [(sym, tok) for sym, tok in vocab_chars.items() if len(sym) > 1]  # word pieces: walk their characters
    for s in states:
        row = fsm.map.get(s, {})
        for ch, tok in singles:
            cls = alphabet[ch] if ch in alphabet else other
            if cls is not None and cls in row:
                table[index[s], tok] = index[row[cls]]
        for sym, tok in multi:
            at = s
            for ch in sym:
                cls = alphabet[ch] if ch in alphabet else other
                at = fsm.map.get(at, {}).get(cls) if cls is not None else None
                if at is None:
                    break
            if at is not None:
                table[index[s], tok] = index[at]
        if s in fsm.finals:
            table[index[s], end_id] = end
    table[end, end_id] = end
    start = index[fsm.initial]
    if null_id is not None:
        table[start, null_id] = end
    accept = np.zeros(n + 2, dtype=bool)
    accept[end] = True
    for s in fsm.finals:
        accept[index[s]] = True
    return SlotDFA(table=table, accept=accept, start=start, dead=dead, end=end)
