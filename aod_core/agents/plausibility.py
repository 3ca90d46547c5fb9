"""PlausibilityModel: evidence fitted on the seeds that tells real-looking records from implausible ones.

This is the offline judge's verdict. A 135M chat model cannot tell a real penguin from an impossible
one (it rejected real held-out records as readily as broken ones); statistics of the seeds can. The
rules are in the ``evidence`` package; this module fits them, calibrates them and scores records.

Fitting (cached on disk by a hash of the seeds and settings; an entry is sealed with the user's key and
its signature checked before it is read, ``aod_core/secrets.py``):

1. ``plan_rules`` picks the rules that apply to the seeds' shape (numbers, categories, text, arrays).
2. **Cross-validation**: the seeds are split by record into ``folds`` parts; every rule is fitted on
   all parts but one and evaluated on the held-out one, so each seed gets every rule's statistic
   as a record the rules have *not* seen, which is how a new real record looks to the final model.
3. Each rule's held-out statistics become its **rarity scale**: ``T_k(s)`` = share of held-out seeds
   whose statistic is at least ``s`` (``(1 + #>=) / (n + 1)``), decaying exponentially past the
   largest held-out value (scale: the mean excess over the 90th percentile). ``u_k = -log T_k`` is
   the rule's rarity in nats: 4.6 means rarer than 99% of real records. A held-out seed's own
   rarity is measured against the *other* held-out seeds (leave one out), so the largest value is
   extrapolated as a new record's would be, not capped at the top of its own scale.
4. A record's rules are combined by two tests. The **sum** ``sum_k w_k max(0, u_k - c_k)`` (plus
   ``0.05 * mean_k u_k``, which only orders records no rule finds odd) adds up evidence: for the rules
   about one field or one pair of fields ``w = 1`` and ``c = max(0, ln K - 1)`` for K rules (a
   multiple-testing allowance, so the few unusual values every real record has do not add up to a
   false alarm); the two tests of the whole record (``combination``, ``neighbourhood``) have
   ``c = 0``, and the classifier test ``w = 2`` (``OMNIBUS``). The **max** ``max_k u_k`` catches one
   value far beyond anything real (random letters in a name) that a sum over many rules would
   dilute. Each test gets its own rarity scale over the held-out seeds; a record's **surprise** is
   the larger of its two rarities (in nats), and has its rarity scale too.
5. That last scale turns the surprise into the **score**: the share of real records at least as
   unusual as this one (1.0 = as typical as they come). The accept threshold is the split-conformal
   ``accept_share`` quantile (default 0.9) of the held-out seeds' surprises, so about 90% of real
   records are accepted. The held-out accept rate is reported as an honest estimate: the threshold
   from half of the folds applied to the other half, both ways, averaged.
6. New records are scored by the fold models (averaging each rule's rarity over the folds; the two
   whole-record tests, a forest and a neighbour search, by the first fold's model only, for speed),
   since their statistics are on the scale the rarities were measured on; the rules are also fitted
   once on all seeds, and that model words the explanations (its facts are the whole seed set's).

Each score comes with its findings: every rule rarer than ``reason_nats`` (default: 99% of real
records), in words with numbers, most telling first; a rejected record always has at least one.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from aod_core.agents.evidence import Columns, Finding, FitContext, Rule, build_tables, plan_rules
from aod_core.errors import InputError
from aod_core.eval import embedder as embedder_mod
from aod_core.secrets import seal, signing_key, unseal

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: entries are sealed with the user's key (aod_core/secrets.py)
MIN_SEEDS = 8
#: The tests of the whole record at once, and their weights in the surprise. They are not discounted
#: for multiple testing (there is one of each per table), and the classifier test, the only one that
#: sees the joint distribution against the product of the marginals, counts twice.
OMNIBUS = {"combination": 2.0, "neighbourhood": 1.0}


@dataclass
class PlausibilitySettings:
    accept_share: float = 0.9  # share of real records the threshold lets through
    folds: int = 5
    semantic: bool = True  # use the MiniLM text embedder when it is installed
    reason_nats: float = math.log(100)  # a finding is reported when rarer than 99% of real records
    seed: int = 0

    def check(self) -> None:
        if not 0.5 <= self.accept_share < 1.0:
            raise InputError(f"judge accept share must be in [0.5, 1), got {self.accept_share}")
        if self.folds < 2:
            raise InputError(f"judge folds must be >= 2, got {self.folds}")


class Tail:
    """Share of reference values at least ``s``; exponential past the largest (see module docstring)."""

    def __init__(self, values: np.ndarray):
        v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
        self.values = v
        self.n = len(v)
        self.top = float(v[-1]) if self.n else 0.0
        lam = 1.0
        if self.n >= 10:
            q90 = float(np.quantile(v, 0.9))
            excess = v[v > q90] - q90
            if len(excess) >= 3 and float(excess.mean()) > 0:
                lam = float(excess.mean())
        self.scale = lam

    def rarity(self, s: np.ndarray) -> np.ndarray:
        """T(s) in (0, 1]."""
        s = np.asarray(s, dtype=float)
        if self.n == 0:
            return np.ones_like(s)
        at_least = self.n - np.searchsorted(self.values, s, side="left")
        t = (1.0 + at_least) / (self.n + 1.0)
        beyond = s > self.top
        if np.any(beyond):
            t = np.where(beyond, np.exp(-(s - self.top) / self.scale) / (self.n + 1.0), t)
        return t

    def loo_nats(self, s: np.ndarray) -> np.ndarray:
        """``nats`` of each reference value against the *other* reference values (leave one out), so
        that a held-out seed is as surprising to the scale as a new real record would be: the largest
        value is extrapolated past the second largest instead of being counted as the top."""
        s = np.asarray(s, dtype=float)
        out = np.zeros_like(s)
        ok = np.isfinite(s)
        v = s[ok]
        n = len(v)
        if n < 2:
            return out
        order = np.sort(v)
        at_least = n - np.searchsorted(order, v, side="left") - 1  # the others at least as large
        t = (1.0 + at_least) / n
        top, second = order[-1], order[-2]
        beyond = (v == top) & (at_least == 0) & (v > second)
        t = np.where(beyond, np.exp(-(v - second) / self.scale) / n, t)
        out[ok] = -np.log(np.maximum(t, 1e-300))
        return out

    def nats(self, s: np.ndarray) -> np.ndarray:
        """-log T(s); NaN (a rule that does not apply) -> 0."""
        s = np.asarray(s, dtype=float)
        out = np.zeros_like(s)
        ok = np.isfinite(s)
        out[ok] = -np.log(np.maximum(self.rarity(s[ok]), 1e-300))
        return out


@dataclass
class Assessment:
    """The plausibility of one record."""

    score: float  # share of real (held-out) records at least as unusual; 1.0 = fully typical
    accept: bool
    surprise: float
    findings: list[Finding] = field(default_factory=list)

    def reasons(self, limit: int = 4) -> list[str]:
        return [f.text for f in self.findings[:limit]]

    def to_dict(self, limit: int = 6) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "surprise": round(self.surprise, 3),
            "findings": [
                {
                    "rule": f.rule,
                    "kind": f.kind,
                    "fields": f.fields,
                    "key": f.key,
                    "text": f.text,
                    "rarity": float(f"{f.rarity:.3g}"),
                    "nats": round(f.nats, 2),
                }
                for f in self.findings[:limit]
            ],
        }


def conformal_quantile(values: np.ndarray, share: float) -> float:
    """The split-conformal threshold: the ceil((n + 1) * share)-th smallest value, so that a new value
    exchangeable with these is at most it with probability >= share."""
    v = np.sort(np.asarray(values, dtype=float))
    k = min(len(v), max(1, math.ceil((len(v) + 1) * share)))
    return float(v[k - 1])


def _row_stats(rule: Rule | None, cols: Columns | None, ctx: FitContext) -> np.ndarray:
    if rule is None or cols is None or cols.n == 0:
        return np.full(0 if cols is None else cols.n, np.nan)
    return rule.stat(cols, ctx)


def per_record(row_nats: np.ndarray, records: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A record's rarity for one rule from its rows' rarities: the rarest row, less ln(number of rows
    the rule applies to) (a Bonferroni allowance: a group of four birds has four chances to hold an
    unusual one), never below 0; and the index of that row (-1 when no row applies)."""
    out = np.zeros(n)
    arg = np.full(n, -1)
    count = np.zeros(n)
    best = np.full(n, -np.inf)
    for i, (r, u) in enumerate(zip(records, row_nats)):
        if not math.isfinite(u):
            continue
        count[r] += 1
        if u > best[r]:
            best[r], arg[r] = u, i
    has = count > 0
    out[has] = np.maximum(0.0, best[has] - np.log(count[has]))
    return out, arg


def _subset(tables: dict[str, Columns], records: np.ndarray) -> dict[str, Columns]:
    keep = set(int(i) for i in records)
    return {t: c.subset(np.array([r in keep for r in c.record], dtype=bool)) for t, c in tables.items()}


class PlausibilityModel:
    """``PlausibilityModel.fit(seeds)`` then ``assess(records)``; see the module docstring."""

    def __init__(
        self,
        rules: list[Rule],
        tails: list[Tail],
        surprise_tail: Tail,
        threshold: float,
        settings: PlausibilitySettings,
        report: dict[str, Any],
    ):
        self.rules, self.tails, self.surprise_tail = rules, tails, surprise_tail
        self.sum_tail = self.max_tail = Tail(np.zeros(1))
        self.threshold, self.settings, self.report = threshold, settings, report
        self.c = max(0.0, math.log(max(len(rules), 1)) - 1.0)
        self.fold_rules: list[list[Rule | None]] = []
        self._ctx: FitContext | None = None

    # -- fitting --------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        seeds: Sequence[Any],
        settings: PlausibilitySettings | None = None,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> PlausibilityModel:
        s = settings or PlausibilitySettings()
        s.check()
        t0 = time.perf_counter()
        seeds = list(seeds)
        _check_enough(seeds)
        from threadpoolctl import threadpool_limits

        emb = embedder_mod.load() if s.semantic else None
        with threadpool_limits(1):
            return cls._fit(seeds, s, emb, t0, on_progress)

    @classmethod
    def _fit(
        cls,
        seeds: list[Any],
        s: PlausibilitySettings,
        emb: Any,
        t0: float,
        on_progress: Callable[[int, int], None] | None,
    ) -> PlausibilityModel:
        n = len(seeds)
        ctx = FitContext(embedder=emb, seed=s.seed)
        tables = build_tables(seeds)
        plan = plan_rules(tables, semantic=emb is not None, seed=s.seed)
        folds = min(s.folds, n)
        order = np.random.default_rng(s.seed).permutation(n)
        fold_of = np.empty(n, dtype=int)
        fold_of[order] = np.arange(n) % folds
        # Held-out statistics per rule, row by row (a bird is a row of its group's record).
        held: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in plan]
        fold_rules: list[list[Rule | None]] = []
        total = folds + 1
        for f in range(folds):
            if on_progress:
                on_progress(f, total)
            train, test = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
            tr, te = _subset(tables, train), _subset(tables, test)
            fitted_fold: list[Rule | None] = []
            for k, rule in enumerate(plan):
                fitted = rule.fit(tr[rule.table], ctx) if rule.table in tr and tr[rule.table].n else None
                fitted = fitted if fitted is not None and fitted.active else None
                fitted_fold.append(fitted)
                cols = te.get(rule.table)
                if fitted is not None and cols is not None and cols.n:
                    held[k][0].append(_row_stats(fitted, cols, ctx))
                    held[k][1].append(cols.record)
            fold_rules.append(fitted_fold)
        rules = [rule.fit(tables[rule.table], ctx) for rule in plan]
        if on_progress:
            on_progress(total, total)
        rows = [
            (np.concatenate(v) if v else np.zeros(0), np.concatenate(r) if r else np.zeros(0, dtype=int))
            for v, r in held
        ]
        keep = [k for k, r in enumerate(rules) if r.active and np.isfinite(rows[k][0]).any()]
        rules = [rules[k] for k in keep]
        rows = [rows[k] for k in keep]
        tails = [Tail(v) for v, _ in rows]
        model = cls(rules, tails, Tail(np.zeros(1)), 0.0, s, {})
        model.fold_rules = [[fr[k] for k in keep] for fr in fold_rules]
        u = (
            np.column_stack([per_record(t.loo_nats(v), r, n)[0] for t, (v, r) in zip(tails, rows)])
            if rules
            else np.zeros((n, 0))
        )
        total, top = model._tests(u)
        model.sum_tail, model.max_tail = Tail(total), Tail(top)
        surprise = np.maximum(model.sum_tail.loo_nats(total), model.max_tail.loo_nats(top))
        model.surprise_tail = Tail(surprise)
        model.threshold = conformal_quantile(surprise, s.accept_share)
        half = fold_of % 2 == 0
        est = []
        for a, b in ((half, ~half), (~half, half)):
            if a.any() and b.any():
                est.append(float(np.mean(surprise[b] <= conformal_quantile(surprise[a], s.accept_share))))
        kinds: dict[str, int] = {}
        for r in rules:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        model.report = {
            "seeds": n,
            "folds": folds,
            "rules": len(rules),
            "rule_kinds": kinds,
            "accept_share_target": s.accept_share,
            "threshold_surprise": round(model.threshold, 4),
            "threshold_score": round(float(model.surprise_tail.rarity(np.array([model.threshold]))[0]), 4),
            "heldout_accept_rate": round(float(np.mean(est)), 4) if est else None,
            "embedder": emb.name if emb is not None else None,
            "embedder_note": None if emb is not None or not s.semantic else embedder_mod.load_error(),
            "fit_seconds": round(time.perf_counter() - t0, 2),
        }
        model._ctx = ctx
        return model

    # -- scoring --------------------------------------------------------------------------------

    def _tests(self, nats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sum test, max test) per record from its rules' rarities (module docstring, step 4)."""
        if nats.shape[1] == 0:
            return np.zeros(nats.shape[0]), np.zeros(nats.shape[0])
        offsets = np.array([0.0 if r.kind in OMNIBUS else self.c for r in self.rules])
        weights = np.array([OMNIBUS.get(r.kind, 1.0) for r in self.rules])
        total = (weights * np.maximum(0.0, nats - offsets)).sum(axis=1) + 0.05 * nats.mean(axis=1)
        return total, nats.max(axis=1)

    def _surprise(self, nats: np.ndarray) -> np.ndarray:
        total, top = self._tests(nats)
        return np.maximum(self.sum_tail.nats(total), self.max_tail.nats(top))

    @property
    def ctx(self) -> FitContext:
        if self._ctx is None:  # loaded from the cache: the embedder is a process-wide resource
            self._ctx = FitContext(
                embedder=embedder_mod.load() if self.report.get("embedder") else None, seed=self.settings.seed
            )
        return self._ctx

    def assess(self, records: Sequence[Any]) -> list[Assessment]:
        """One Assessment per record (records are parsed JSON values, ideally schema-valid)."""
        from threadpoolctl import threadpool_limits

        # Small matrices: one BLAS/OpenMP thread is as fast, and spare threads spin-wait against any
        # other work on the machine (a 10x slowdown seen with a second process busy).
        with threadpool_limits(1):
            return self._assess(list(records))

    def _assess(self, records: list[Any]) -> list[Assessment]:
        n = len(records)
        if not n:
            return []
        tables = build_tables(records)
        ctx = self.ctx
        nats = np.zeros((n, len(self.rules)))
        rows = np.full((n, len(self.rules)), -1)
        for k, (rule, tail) in enumerate(zip(self.rules, self.tails)):
            # Scored by the fold models, whose statistics the rarity scale was measured on (a model
            # fitted on all seeds counts with more evidence, so its statistics sit on another scale),
            # averaged; the model fitted on all seeds words the explanation.
            cols = tables.get(rule.table)
            if cols is None or cols.n == 0:
                continue
            models = [fr[k] for fr in self.fold_rules if fr[k] is not None]
            if rule.kind in OMNIBUS:  # forests and neighbour searches: one fold model is the cost of five
                models = models[:1]
            per_fold = [tail.nats(_row_stats(m, cols, ctx)) for m in models]
            if per_fold:
                nats[:, k], rows[:, k] = per_record(np.mean(per_fold, axis=0), cols.record, n)
        surprise = self._surprise(nats)
        score = self.surprise_tail.rarity(surprise)
        out = []
        primed: set[int] = set()  # omnibus rules whose full model has scored this batch once
        for i in range(n):
            accept = bool(surprise[i] <= self.threshold)
            order = np.argsort(-nats[i])
            picked = [k for k in order if nats[i, k] >= self.settings.reason_nats]
            if not accept and not picked:
                picked = [k for k in order[:2] if nats[i, k] > 0]
            findings = []
            for k in picked[:6]:
                rule = self.rules[k]
                if rule.kind in OMNIBUS and k not in primed:
                    # one pass over the batch: its explanations then read their row from it
                    # (evidence.whole.WholeRowRule.remembered) instead of one pass per record
                    _row_stats(rule, tables[rule.table], ctx)
                    primed.add(k)
                key, text = rule.explain(tables[rule.table], int(rows[i, k]), ctx)
                findings.append(
                    Finding(
                        rule.id,
                        rule.kind,
                        list(rule.fields),
                        key,
                        text,
                        float(nats[i, k]),
                        float(math.exp(-nats[i, k])),
                    )
                )
            out.append(Assessment(float(score[i]), accept, float(surprise[i]), findings))
        return out

    def accept_rate(self, records: Sequence[Any]) -> float:
        got = self.assess(records)
        return sum(a.accept for a in got) / len(got) if got else 0.0

    def describe(self) -> dict[str, Any]:
        """The calibration as shown to the user."""
        return dict(self.report, settings=asdict(self.settings))

    def rule_rows(self) -> list[dict[str, Any]]:
        return [{"rule": r.id, "kind": r.kind, "table": r.table} for r in self.rules]

    # -- persistence ----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ctx"] = None
        return state


def default_cache_dir() -> Path:
    return Path(os.environ.get("AOD_CACHE_DIR") or Path.home() / ".cache" / "aod-studio")


def _code_files() -> list[Path]:
    """The source files of the classes a pickled model is made of: this module, the character model
    and every module of the evidence package (the rules, their tables and feature space)."""
    here = Path(__file__).resolve().parent
    return [here / "plausibility.py", here / "textmodel.py", *sorted((here / "evidence").glob("*.py"))]


def _code_fingerprint() -> str:
    """A hash of the code a pickled model is made of (each file's name and bytes): a cached model from
    other code is refitted, never unpickled into classes that changed or moved under it."""
    import hashlib

    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in _code_files():
        h.update(path.relative_to(here).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(seeds: Sequence[Any], settings: PlausibilitySettings, semantic_model: str | None) -> str:
    from aod_core.generators.base import content_key

    return content_key(
        {
            "v": CACHE_VERSION,
            "code": _code_fingerprint(),
            "seeds": list(seeds),
            "settings": asdict(settings),
            "embedder": semantic_model,
        }
    )


# What a fitted model is made of; a signed entry naming anything else (os.system, subprocess, eval,
# ...) is refused even if the key was taken: a second wall behind the signature.
_MODULES = ("aod_core.", "numpy", "scipy.", "sklearn.", "collections", "datasketch.", "copyreg", "_codecs")
_BUILTINS = {"set", "frozenset", "slice", "complex", "range", "bytearray", "object", "dict", "list", "tuple"}


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module == "builtins" and name in _BUILTINS) or (module != "builtins" and module.startswith(_MODULES)):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a fitted model")


def _read_sealed(path: Path, key: bytes) -> tuple[PlausibilityModel | None, str | None]:
    """The cached model when this user's key signed the file; else None and why. The signature is
    checked before a byte is unpickled: a planted or tampered file is never deserialised."""
    try:
        data = unseal(path.read_bytes(), key)
    except OSError as e:
        return None, f"could not be read ({e.strerror or e})"
    if data is None:
        return None, "is not signed with your key (planted, damaged, or from another user)"
    try:
        model = _Restricted(io.BytesIO(data)).load()  # signed by this user's key above, and only known modules
    except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return None, "could not be read back"
    return (model, None) if isinstance(model, PlausibilityModel) else (None, "holds something else")


def _check_enough(seeds: Sequence[Any]) -> None:
    if len(seeds) < MIN_SEEDS:
        raise InputError(f"the judge needs at least {MIN_SEEDS} seed records to calibrate on, got {len(seeds)}")


def fit_cached(
    seeds: Sequence[Any],
    settings: PlausibilitySettings | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PlausibilityModel:
    """``PlausibilityModel.fit`` through the on-disk cache (a damaged entry is refitted)."""
    s = settings or PlausibilitySettings()
    s.check()
    _check_enough(seeds)  # before the embedder is looked for: importing it takes seconds
    semantic = embedder_mod.MODEL_NAME if (s.semantic and embedder_mod.available()) else None
    path = Path(cache_dir or default_cache_dir()) / f"plausibility-{cache_key(seeds, s, semantic)}.pkl"
    key = signing_key()
    refused = None
    if key is not None and path.exists():
        model, refused = _read_sealed(path, key)
        if model is not None:
            model.report = dict(model.report, cached=True)
            if on_progress:
                on_progress(1, 1)
            return model
        path.unlink(missing_ok=True)
    if refused:
        log.warning("plausibility cache %s %s: refitted", path.name, refused)
    model = PlausibilityModel.fit(seeds, s, on_progress=on_progress)
    if key is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(seal(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), key))
        os.replace(tmp, path)
    model.report = dict(model.report, cached=False, **({"cache_refused": refused} if refused else {}))
    return model
