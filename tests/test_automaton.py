import datetime
import re
from decimal import Decimal

import pytest

from aod_core.canvas.automaton import (
    DATE_REGEX,
    build_slot_dfa,
    compile_fsm,
    int_range_regex,
    number_regex,
    pattern_regex,
    string_regex,
)

# A small vocabulary shaped like the scaffold's: specials first, then characters.
MASK, END, NULL, ABSENT = 0, 1, 2, 3
CHARS = "-.0123456789abc"
VOCAB = {ch: 4 + i for i, ch in enumerate(CHARS)}
V = 4 + len(CHARS)


def both_accept(regex: str, text: str) -> tuple[bool, bool]:
    return compile_fsm(regex).accepts(text), re.fullmatch(regex, text) is not None


# ---- integer ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lo, hi",
    [
        (0, 0),
        (0, 9),
        (3, 3),
        (5, 123),
        (7, 1000),
        (99, 101),
        (10, 99),
        (19, 20),
        (2007, 2009),
        (0, 4321),
        (100, 999),
        (1, 10000),
    ],
)
def test_int_range_regex_matches_exactly_the_range(lo, hi):
    regex = int_range_regex(lo, hi)
    for i in range(0, max(hi * 2, 50) + 20):
        inside = lo <= i <= hi
        assert both_accept(regex, str(i)) == (inside, inside), (lo, hi, i)
    for text in ("", "-1", f"0{lo}", "00", "+1", " 1", "1.0"):
        assert both_accept(regex, text) == (False, False), (lo, hi, text)


@pytest.mark.parametrize("lo, hi", [(-1, 5), (5, 4)])
def test_int_range_regex_rejects_bad_ranges(lo, hi):
    with pytest.raises(ValueError):
        int_range_regex(lo, hi)


# ---- number ranges ----------------------------------------------------------------------------


def _brute_force(lo, hi, decimals, xlo, xhi):
    """(spelling, inside) for every value on the decimals grid around [lo, hi]."""
    unit = 10**decimals
    lo_d, hi_d = Decimal(str(lo)), Decimal(str(hi))
    for k in range(int(lo_d * unit) - 150, int(hi_d * unit) + 150):
        v = Decimal(k) / unit
        inside = (v > lo_d if xlo else v >= lo_d) and (v < hi_d if xhi else v <= hi_d)
        yield f"{v:.{decimals}f}", inside


@pytest.mark.parametrize(
    "lo, hi, decimals, xlo, xhi",
    [
        (-5, 40, 1, False, False),  # seattle temp_max
        (-10, 25, 1, False, False),
        (30, 62, 1, False, False),
        (-10, -2, 0, False, False),  # all negative
        (-3, 3, 0, True, True),  # exclusive integers
        (0, 1, 1, True, True),  # exclusive decimals
        (-1.5, 2.25, 2, False, False),
        (0.05, 0.95, 1, False, False),  # bounds off the grid
        (-100, -0.5, 1, False, True),
        (-0.3, 0.3, 1, True, False),
        (2500, 6500, 0, False, False),
    ],
)
def test_number_regex_matches_exactly_the_range(lo, hi, decimals, xlo, xhi):
    regex = number_regex(lo, hi, decimals, exclusive_lo=xlo, exclusive_hi=xhi)
    seen_inside = 0
    for text, inside in _brute_force(lo, hi, decimals, xlo, xhi):
        assert both_accept(regex, text) == (inside, inside), (lo, hi, decimals, text)
        seen_inside += inside
    assert seen_inside > 0
    # only the canonical spelling: exactly `decimals` digits, no sign/leading zero tricks
    # negative zero is never a spelling: 0 is spelled once
    for text in ("+1", "01", "1.", ".5", "1.00000000", "", "-", "--1", "-0", "-0.0", "-0.00"):
        assert both_accept(regex, text) == (False, False), text


def test_number_regex_exclusive_bounds_drop_exactly_the_end_values():
    closed = compile_fsm(number_regex(0, 1, 1))
    open_ = compile_fsm(number_regex(0, 1, 1, exclusive_lo=True, exclusive_hi=True))
    assert closed.accepts("0.0") and closed.accepts("1.0")
    assert not open_.accepts("0.0") and not open_.accepts("1.0")
    assert open_.accepts("0.1") and open_.accepts("0.9")


def test_number_regex_empty_range_raises():
    with pytest.raises(ValueError, match="no number"):
        number_regex(0.01, 0.09, 1)
    with pytest.raises(ValueError):
        number_regex(3, 3, 0, exclusive_lo=True)


# ---- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [1900, 2000, 2012, 2013, 2015, 2100, 2400, 1])
def test_date_regex_accepts_exactly_valid_iso_dates(year):
    fsm = compile_fsm(DATE_REGEX)
    accepted = 0
    for month in range(0, 14):
        for day in range(0, 33):
            text = f"{year:04d}-{month:02d}-{day:02d}"
            try:
                datetime.date(year, month, day)
                valid = True
            except ValueError:
                valid = False
            assert fsm.accepts(text) == valid, text
            assert (re.fullmatch(DATE_REGEX, text) is not None) == valid, text
            accepted += valid
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    assert accepted == (366 if leap else 365)


def test_date_regex_leap_days():
    fsm = compile_fsm(DATE_REGEX)
    assert fsm.accepts("2000-02-29") and fsm.accepts("2012-02-29")
    assert not fsm.accepts("1900-02-29") and not fsm.accepts("2100-02-29")
    assert not fsm.accepts("2013-02-29")
    for bad in ("2012-1-01", "2012-01-1", "12-01-01", "2012/01/01", "2012-01-01 ", "20120101"):
        assert not fsm.accepts(bad), bad


# ---- strings and patterns ---------------------------------------------------------------------


def test_string_regex_length_bounds():
    fsm = compile_fsm(string_regex(2, 4))
    assert [fsm.accepts("x" * n) for n in range(6)] == [False, False, True, True, True, False]
    unbounded = compile_fsm(string_regex(0, None))
    assert unbounded.accepts("") and unbounded.accepts("y" * 50)
    assert not unbounded.accepts("a\nb")  # control characters are left out


@pytest.mark.parametrize(
    "pattern, yes, no",
    [
        ("abc", ["abc", "xabc", "abcx", "xxabcxx"], ["ab", "acb", ""]),  # search anywhere
        ("^abc", ["abc", "abcxx"], ["xabc"]),
        ("abc$", ["abc", "xxabc"], ["abcx"]),
        ("^abc$", ["abc"], ["xabc", "abcx", "abcabc"]),
        ("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", ["2014-09-05"], ["2014-9-05", "x2014-09-05"]),
        ("^(ab)*$", ["", "ab", "abab"], ["aba"]),
        ("^x\\$", ["x$", "x$yy"], ["x", "yx$"]),  # an escaped dollar is not an anchor
    ],
)
def test_pattern_regex_has_json_schema_search_semantics(pattern, yes, no):
    regex = pattern_regex(pattern)
    fsm = compile_fsm(regex)
    for text in yes + no:
        expected = re.search(pattern, text) is not None
        assert expected == (text in yes), (pattern, text)  # the table itself is right
        assert fsm.accepts(text) == expected, (pattern, text)
        assert (re.fullmatch(regex, text) is not None) == expected, (pattern, text)


def test_pattern_regex_alternation_with_anchors_keeps_search_semantics():
    fsm = compile_fsm(pattern_regex("^a|b$"))
    for text in ("a", "b", "axx", "xxb"):
        assert re.search("^a|b$", text)
        assert fsm.accepts(text), text


def test_pattern_regex_compiles_anchored_alternatives():
    fsm = compile_fsm(pattern_regex("^$|^[A-Z]{2}$"))
    assert fsm.accepts("") and fsm.accepts("AB") and not fsm.accepts("ABC")


# ---- compile_fsm ------------------------------------------------------------------------------


def test_compile_fsm_forbid_removes_exactly_the_literals():
    base = compile_fsm(int_range_regex(1, 30))
    cut = compile_fsm(int_range_regex(1, 30), forbid=("7", "30", "99"))
    for i in range(0, 40):
        assert cut.accepts(str(i)) == (base.accepts(str(i)) and i not in (7, 30)), i
    # a forbidden literal with regex metacharacters is taken literally
    dots = compile_fsm(r"\d\.\d", forbid=("1.5",))
    assert not dots.accepts("1.5") and dots.accepts("1.6") and dots.accepts("2.5")


def test_compile_fsm_extra_intersects():
    fsm = compile_fsm(int_range_regex(0, 99), extra=(pattern_regex("^[5-9]"),))
    assert [i for i in range(100) if fsm.accepts(str(i))] == [5, 6, 7, 8, 9] + list(range(50, 100))


# ---- the dense slot DFA -----------------------------------------------------------------------


def toks(text: str) -> list[int]:
    return [VOCAB[ch] for ch in text]


def dfa(regex: str, nullable: bool = False):
    return build_slot_dfa(compile_fsm(regex), VOCAB, V, end_id=END, null_id=NULL if nullable else None)


def test_slot_dfa_end_padding():
    d = dfa(int_range_regex(5, 123))  # width 3
    assert d.accepts(toks("5") + [END, END])
    assert d.accepts(toks("12") + [END])
    assert d.accepts(toks("123"))  # exactly filling the width
    assert not d.accepts(toks("124"))
    assert not d.accepts(toks("4") + [END, END])
    assert not d.accepts([END, END, END])  # empty is not an integer
    assert not d.accepts(toks("1") + [END] + toks("2"))  # no character after END
    assert not d.accepts(toks("1") + [END, NULL])
    assert not d.accepts(toks("0") + [END, END])  # no leading zero, so no zero below 5 either
    assert not d.accepts(toks("012"))


def test_slot_dfa_null_only_at_start_and_only_when_nullable():
    d = dfa(int_range_regex(0, 99), nullable=True)
    assert d.accepts([NULL, END])
    assert d.accepts([NULL])
    assert not d.accepts(toks("1") + [NULL])
    assert not d.accepts([NULL] + toks("1"))
    assert not d.accepts([END, NULL])
    strict = dfa(int_range_regex(0, 99), nullable=False)
    assert not strict.accepts([NULL, END])
    assert strict.accepts(toks("42"))


def test_slot_dfa_states_dead_and_end():
    d = dfa(int_range_regex(0, 9))
    s = d.table[d.start, VOCAB["3"]]
    assert d.table[s, END] == d.end and d.accept[d.end]
    assert d.table[d.end, END] == d.end
    assert (d.table[d.end, [t for t in range(V) if t != END]] == d.dead).all()
    assert (d.table[d.dead] == d.dead).all() and not d.accept[d.dead]
    for special in (MASK, ABSENT):
        assert (d.table[:, special] == d.dead).all()
    assert d.table[d.start, VOCAB["a"]] == d.dead


def test_slot_dfa_characters_outside_the_regex_alphabet():
    # "anything else" classes: a string slot accepts vocabulary characters the regex never names
    d = dfa(string_regex(1, 2))
    assert d.accepts(toks("ab")) and d.accepts(toks("c") + [END]) and d.accepts(toks("-."))
    assert not d.accepts([END, END])
    assert not d.accepts(toks("abc"))


def test_wide_integer_ranges_stay_small_regexes():
    # An open 64-bit range once produced a 27 MB regex (exponential in the digit count) and a
    # scaffold that ran for minutes; a run of full digit ranges is one \d{n}.
    from aod_core.canvas.automaton import int_range_regex

    regex = int_range_regex(0, 10**19 - 1)
    assert len(regex) < 1000
    fsm = compile_fsm(regex)
    assert fsm.accepts("9223372036854775807") and not fsm.accepts("10000000000000000000")
    big = number_regex(-(2**63), 2**64 - 1, 0)
    assert len(big) < 5000 and compile_fsm(big).accepts("18446744073709551615")
