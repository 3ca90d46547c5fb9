"""How a number slot spells its values: notation, width and language, bounded whatever the input.

Real data holds 64-bit IDs, tiny measurements and scientific notation, and schemas leave ranges
open or set them to 1e308. A slot has a bounded width, so:

* **fixed** notation (``-12.50``): a fixed number of fraction digits (from the seeds, or from a
  ``multipleOf`` such as 0.01), and an open range closed one digit past the seeds' magnitudes but
  never past ``MAX_INT_DIGITS`` integer digits (19 for integers: every 64-bit value fits);
* **exponent** notation (``2.20e-313``), spelled as Python's ``format(v, ".me")``: when the seeds
  mostly use it, or their magnitudes need it (huge or tiny values). Only whole decades of the
  schema's range are used, so every spelling lies inside the range;
* a ``multipleOf`` is enforced by listing its multiples that the validator accepts (jsonschema
  divides floats, so 4.44 is not a multiple of 0.01 to it): all of them when the range holds few,
  else a fixed number spread over the range, with a note.

All arithmetic is on ``Decimal``/``int``: no bound or seed, however large, is ever turned into a float.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aod_core.canvas.automaton import int_range_regex, number_regex

MAX_DECIMALS = 6
SIGNIFICANT = 12  # digits of a seed value that count when reading its decimals (the rest is float noise)
MAX_MANTISSA = 6
MAX_INT_DIGITS = {"integer": 19, "number": 15}
MAX_WIDTH = 32
MAX_EXPONENT = 300  # |exponent| of generated values: finite, normal doubles
MAX_ENUMERATED = 256  # multiples of a multipleOf listed one by one at most


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (isinstance(v, int) or math.isfinite(v))


def dec(v: Any) -> Decimal:
    """Exact decimal of a JSON number (a float by its shortest spelling), never through float
    for ints and Decimals."""
    if isinstance(v, Decimal):
        return v
    return Decimal(v) if isinstance(v, int) else Decimal(repr(float(v)))


@dataclass(frozen=True)
class NumberFormat:
    """The spelling of one number slot."""

    integer: bool
    notation: str = "fixed"  # "fixed" | "exponent"
    digits: int = 0  # fixed: fraction digits; exponent: mantissa fraction digits
    exp_lo: int = 0  # exponent notation: the exponents the seeds span
    exp_hi: int = 0

    @property
    def whole(self) -> bool:
        """Values are spelled without a fraction (read back as int)."""
        return self.notation == "fixed" and self.digits == 0

    def spell(self, value: Any) -> str:
        if self.notation == "exponent":
            return (
                format(float(dec(value)), f".{self.digits}e")
                if abs(dec(value)) < Decimal("1e308")
                else (f"{'-' if value < 0 else ''}9.{'9' * self.digits}e+{MAX_EXPONENT}")
            )
        d = dec(value)
        if self.digits == 0:
            return str(int(d.to_integral_value()))
        return format(d.quantize(Decimal(1).scaleb(-self.digits)), "f")

    def parse(self, text: str) -> Any:
        return int(text) if self.whole else float(text)

    def regex(self, lo: Any, hi: Any, xlo: bool = False, xhi: bool = False) -> str:
        """Spellings of values in [lo, hi] (None: open); ValueError when none exists."""
        if self.notation == "exponent":
            return _exponent_regex(self, lo, hi, xlo, xhi)
        return number_regex(lo, hi, self.digits, exclusive_lo=xlo, exclusive_hi=xhi)


@dataclass
class NumberPlan:
    fmt: NumberFormat
    lo: Any  # effective range (exact: int or Decimal); None only in exponent notation
    hi: Any
    regex: str
    width: int
    note: str = ""


def plan_number(schema: dict, kind: str, values: list[Any]) -> NumberPlan:
    """Notation, range, language and width of a number slot for ``schema`` and the seeds' values."""
    integer = kind == "integer"
    nums = [dec(v) for v in values if is_number(v)]
    lo, hi, xlo, xhi = bounds(schema)
    step_raw = schema.get("multipleOf")
    step = dec(step_raw) if is_number(step_raw) and step_raw > 0 else None
    note = ""
    digits = 0 if integer else _decimals(nums)
    if step is not None and step == step.to_integral_value():
        digits = 0  # multiples of a whole step are whole
    elif step is not None:
        digits = max(0, -step.normalize().as_tuple().exponent)  # the step's own decimals
    if not integer and step is None and _wants_exponent(nums, lo, hi):
        fmt = _exponent_format(nums)
        try:
            regex = fmt.regex(lo, hi, xlo, xhi)
            # sign, mantissa, point and fraction, "e", exponent sign and digits
            width = (
                1
                + 1
                + (1 + fmt.digits if fmt.digits else 0)
                + 2
                + max(2, len(str(abs(fmt.exp_lo))), len(str(abs(fmt.exp_hi))))
            )
            return NumberPlan(fmt, lo, hi, regex, width)
        except ValueError:
            pass  # the range holds no whole decade: fixed notation below
    fmt = NumberFormat(integer, "fixed", digits)
    unit = Decimal(1).scaleb(-digits)
    if lo is None or hi is None:
        # Close an open end one integer digit past what the seeds and the other bound use: the
        # model cannot learn magnitudes it never saw, and a slot needs a width.
        seen = max([abs(n) for n in nums] + [abs(dec(b)) for b in (lo, hi) if b is not None], default=Decimal(0))
        cap = Decimal(10) ** min(len(str(int(seen))) + 1, MAX_INT_DIGITS[kind]) - unit
    else:
        cap = Decimal(10) ** MAX_INT_DIGITS[kind] - unit
    elo = None if lo is None else dec(lo)
    ehi = None if hi is None else dec(hi)
    if elo is None:
        elo, xlo = (-cap if ehi is None or ehi > -cap else ehi - cap), False
    if ehi is None:
        ehi, xhi = (cap if elo < cap else elo + cap), False
    # Keep to the window [-cap, cap] where the range allows; a range entirely outside it keeps
    # its end nearest to zero and a window of the same size from there.
    if elo < -cap < ehi:
        elo, xlo = -cap, False
    if elo < cap < ehi:
        ehi, xhi = cap, False
    if elo >= cap and ehi > elo + cap:
        ehi, xhi = elo + cap, False
    if ehi <= -cap and elo < ehi - cap:
        elo, xlo = ehi - cap, False
    if fmt.whole:  # whole numbers: an exclusive bound is the next whole number, inclusive
        elo = elo.to_integral_value(rounding="ROUND_CEILING") + (1 if xlo and elo == elo.to_integral_value() else 0)
        ehi = ehi.to_integral_value(rounding="ROUND_FLOOR") - (1 if xhi and ehi == ehi.to_integral_value() else 0)
        xlo = xhi = False
        if elo > ehi:
            raise ValueError(f"no whole number lies in the range [{_short(lo)}, {_short(hi)}]")
    width = max(len(fmt.spell(elo)), len(fmt.spell(ehi)))
    if width > MAX_WIDTH:
        raise ValueError(
            f"the range [{_short(lo)}, {_short(hi)}] needs {width} characters per value (budget {MAX_WIDTH})"
        )
    if step is not None:
        regex, note = _multiples(fmt, step_raw, elo, ehi, xlo, xhi, nums)
    else:
        regex = fmt.regex(elo, ehi, xlo, xhi)
    return NumberPlan(fmt, _exact(elo, fmt), _exact(ehi, fmt), regex, width, note)


def bounds(schema: dict) -> tuple[Any, Any, bool, bool]:
    """(lo, hi, lo exclusive, hi exclusive) of a 2020-12 number schema; None where open."""
    lo, hi = schema.get("minimum"), schema.get("maximum")
    lo = lo if is_number(lo) else None
    hi = hi if is_number(hi) else None
    xlo = xhi = False
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if is_number(ex_lo) and (lo is None or dec(ex_lo) >= dec(lo)):
        lo, xlo = ex_lo, True
    if is_number(ex_hi) and (hi is None or dec(ex_hi) <= dec(hi)):
        hi, xhi = ex_hi, True
    return lo, hi, xlo, xhi


def _short(v: Any) -> str:
    text = str(v)
    return text if len(text) <= 24 else f"{text[:8]}...({len(text)} digits)"


def _exact(v: Decimal, fmt: NumberFormat) -> Any:
    return int(v) if fmt.whole and v == v.to_integral_value() else v


def _decimals(nums: list[Decimal]) -> int:
    """Fraction digits the seeds use, read from each value rounded to ``SIGNIFICANT`` digits, so the
    noise of binary floats (1150.9274779999996, 0.30000000000000004) does not count as decimals."""
    d = 0
    for n in nums:
        if not n.is_finite() or n == 0:
            continue
        exp = n.quantize(Decimal(1).scaleb(n.adjusted() - SIGNIFICANT + 1)).normalize().as_tuple().exponent
        if isinstance(exp, int):
            d = max(d, -exp)
    return min(d, MAX_DECIMALS)


def round_number(x: Decimal, lo: Decimal, hi: Decimal, unit: Decimal) -> Decimal:
    """The number in [lo, hi] with the fewest significant digits, nearest ``x`` among those, on the
    grid of ``unit``; ``x`` on that grid when none is rounder. Bin edges use it: an edge like 1100
    costs a number's language a state or two, an edge like 1150.927478 one per digit."""
    lo, hi = min(lo, hi), max(lo, hi)
    top = max(abs(lo), abs(hi))
    e = top.adjusted() + 1 if top else 0
    while Decimal(1).scaleb(e) >= unit:
        q = Decimal(1).scaleb(e)
        near = (x / q).to_integral_value() * q
        for c in sorted({near, near - q, near + q}, key=lambda c: abs(c - x)):
            if lo <= c <= hi:
                return c.quantize(unit)
        e -= 1
    return x.quantize(unit)


def _wants_exponent(nums: list[Decimal], lo: Any, hi: Any) -> bool:
    nonzero = [n for n in nums if n != 0]
    if not nonzero:
        return False
    spelled_e = sum("e" in repr(float(n)) or "E" in str(n) for n in nonzero)
    huge = max(abs(n) for n in nonzero) >= Decimal(10) ** MAX_INT_DIGITS["number"]
    tiny = sum(abs(n) < Decimal(1).scaleb(-MAX_DECIMALS) for n in nonzero)
    return 2 * spelled_e >= len(nonzero) or huge or 2 * tiny >= len(nonzero)


def _exponent_format(nums: list[Decimal]) -> NumberFormat:
    nonzero = [n for n in nums if n != 0]
    exps = [max(-MAX_EXPONENT, min(MAX_EXPONENT, n.adjusted())) for n in nonzero]
    mant = max((len(n.normalize().as_tuple().digits) - 1 for n in nonzero), default=0)
    return NumberFormat(
        False, "exponent", min(mant, MAX_MANTISSA), max(-MAX_EXPONENT, min(exps) - 1), min(MAX_EXPONENT, max(exps) + 1)
    )


def _exp_text(e: int) -> str:
    return f"{'-' if e < 0 else '+'}{abs(e):02d}"


def _exponents_regex(es: list[int]) -> str:
    """Regex for Python's spelling (sign, at least two digits) of a set of exponents."""
    parts = []
    for sign, mags in (("\\+", sorted(e for e in es if e >= 0)), ("-", sorted(-e for e in es if e < 0))):
        for a, b in _runs(mags):
            small = [(x, min(b, 9)) for x in [a] if x <= 9]
            for x, y in small:
                parts.append(f"{sign}0[{x}-{y}]")
            if b >= 10:
                parts.append(f"{sign}{int_range_regex(max(a, 10), b)}")
    return "(" + "|".join(parts) + ")"


def _runs(xs: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x in xs:
        if out and x == out[-1][1] + 1:
            out[-1] = (out[-1][0], x)
        else:
            out.append((x, x))
    return out


def _exponent_regex(fmt: NumberFormat, lo: Any, hi: Any, xlo: bool, xhi: bool) -> str:
    dlo = None if lo is None else dec(lo)
    dhi = None if hi is None else dec(hi)

    def inside(v: Decimal, strict_lo: bool = True, strict_hi: bool = True) -> bool:
        ok_lo = dlo is None or (v > dlo if (xlo and strict_lo) else v >= dlo)
        ok_hi = dhi is None or (v < dhi if (xhi and strict_hi) else v <= dhi)
        return ok_lo and ok_hi

    exps = range(fmt.exp_lo, fmt.exp_hi + 1)
    # every mantissa of a decade 10^e .. 10^(e+1) (exclusive) must lie in the range
    pos = [e for e in exps if inside(Decimal(1).scaleb(e)) and inside(Decimal(1).scaleb(e + 1), strict_hi=False)]
    neg = [e for e in exps if inside(-Decimal(1).scaleb(e)) and inside(-Decimal(1).scaleb(e + 1), strict_lo=False)]
    frac = f"(\\.\\d{{{fmt.digits}}})" if fmt.digits else ""
    mantissa = f"[1-9]{frac}e"
    parts = []
    if pos:
        parts.append(f"{mantissa}{_exponents_regex(pos)}")
    if neg:
        parts.append(f"-{mantissa}{_exponents_regex(neg)}")
    if inside(Decimal(0)):
        parts.append(re.escape(format(0.0, f".{fmt.digits}e")))
    if not parts:
        raise ValueError(f"no number in exponent notation lies in the range [{lo}, {hi}]")
    return "(" + "|".join(parts) + ")"


def _multiples(
    fmt: NumberFormat, step_raw: Any, lo: Decimal, hi: Decimal, xlo: bool, xhi: bool, seen: list[Decimal]
) -> tuple[str, str]:
    """Regex of the multiples of ``step`` in the range that the validator accepts, listed one by one:
    all of them when there are few, else ``MAX_ENUMERATED`` spread over the range (and the seeds')."""
    step = dec(step_raw)
    try:
        first = (lo / step).to_integral_value(rounding="ROUND_CEILING")
        last = (hi / step).to_integral_value(rounding="ROUND_FLOOR")
    except InvalidOperation:
        first, last = Decimal(1), Decimal(0)
    if xlo and first * step == lo:
        first += 1
    if xhi and last * step == hi:
        last -= 1
    count = int(last - first + 1) if last >= first else 0
    if count <= 0:
        raise ValueError(f"no multiple of {step} lies in the range [{lo}, {hi}]")
    stride = max(1, count // (4 * MAX_ENUMERATED))
    ks = list(range(int(first), int(last) + 1, stride)) + [
        int(n / step) for n in seen if (n / step) == (n / step).to_integral_value()
    ]
    texts: dict[str, None] = {}
    for k in ks:
        v = step * k
        if not (first * step <= v <= last * step):
            continue
        text = fmt.spell(v)
        if dec(fmt.parse(text)) == v and _validator_accepts(fmt.parse(text), step_raw):
            texts[text] = None
    spelled = list(texts)
    if not spelled:
        raise ValueError(f"no multiple of {step} in the range can be spelled with {fmt.digits} decimals")
    note = ""
    if len(spelled) > MAX_ENUMERATED:
        pick = len(spelled) / MAX_ENUMERATED
        spelled = [spelled[int(i * pick)] for i in range(MAX_ENUMERATED)]
        note = f"multipleOf {step}: values are drawn from {MAX_ENUMERATED} multiples spread over the range (of {count})"
    return "(" + "|".join(re.escape(t) for t in spelled) + ")", note


def _validator_accepts(x: Any, step: Any) -> bool:
    """jsonschema's own multipleOf test (float division for a float step), so generated values pass it."""
    if isinstance(step, float):
        try:
            q = x / step
            return int(q) == q
        except (OverflowError, ValueError):
            return False
    return not (x % step)
