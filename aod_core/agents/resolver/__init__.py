"""The instruction resolver: instruction text -> the scaffold edits its words name, clause by clause.

The first, rule-based stage of the instruction compiler (``compiler.py``). Precision comes first: a
clause becomes an edit only when its words name a field or a value of the scaffold (see
``wording.py``) *and* a wish the resolver knows; everything else is reported, with the reason,
never guessed.

1. **Clauses.** The text is cut at ``, ; . ! ?``, "but", "while", and at "and" / "with" /
   "without" unless they join two values of one field ("Gentoo and Adelie only") or two numbers
   ("between 3 and 4 kg").
2. **Mentions.** In each clause: values (any form ``wording.value_forms`` knows), fields (name and
   description words, with their units), numbers with units ("4.5 kg", "75°F", "40mm", "the 70s"),
   and cue words.
3. **Wishes** (the phrase classes; README "Instruction text" lists them with examples):

   ====================================  =====================================================
   value, bare or with only/just/all     pin it; several values of one field: forbid the rest
   no / not / never / without / except   forbid the value(s)
   mostly / mainly / most / majority     a bias measured to reach a 70% share (``MOSTLY``)
   N% value                              a bias measured to reach N%
   more / fewer value                    a bias to a share a third of the way up / to half
   above / over / more than / after      a range above the number (exclusive)
   at least / min / from / since         a range from the number (inclusive)
   below / under / less than / before    a range below it; at most / up to / until: inclusive
   between A and B, A-B, A to B          a range [A, B]; around / about A: A ± 5%
   field N (unit), exactly N             pin the number
   heavier / longer / warmer / newer...  a range above the seeds' median (lighter...: below);
                                         heaviest / longest...: above the upper quartile
   no nulls / missing / always known     forbid null (in the named fields, else every one)
   N birds / at least N birds            the array's length (pin, or forbid the other lengths)
   with / without an optional key        pin its presence
   more varied / more typical            sampling temperature 1.3 / 0.5
   ====================================  =====================================================

   The adjective decides the field through the unit's dimension (heavier: a mass; warmer: a
   temperature) when the clause names no field; two candidate fields is an ambiguity, reported.
   A number's field is the one the clause names, else the one whose unit measures the same thing,
   else the one whose seed range holds the number.

The resolver returns edits, what it could not map (with why), and the clauses with words left
over that a chat model may still map (``Pending``).

The package, by concept:

====================  ===================================================================
``edits.py``          what the resolver returns: ``Edit``, ``Unmapped``, ``Pending``, ``Resolution``
``vocabulary.py``     the cue words, comparators, size and time adjectives, number words
``tokens.py``         a clause's tokens (numbers with their units, decades) and field mentions
``clauses.py``        ``Resolver``: the text cut into clauses, each clause read and reported
``numbers.py``        the number wishes: comparisons, ranges, exact numbers, array lengths,
                      heavier / lighter
``values.py``         the value wishes: pins, forbids, shares; nulls, optional keys, temperature
====================  ===================================================================
"""

from aod_core.agents.resolver.clauses import Resolver
from aod_core.agents.resolver.edits import Edit, Pending, Resolution, Unmapped
from aod_core.agents.resolver.tokens import Tok, tokenize
from aod_core.agents.resolver.vocabulary import AROUND, MOSTLY, TYPICAL, TYPICAL_WORDS, VARIED, VARIED_WORDS

__all__ = [
    "AROUND",
    "MOSTLY",
    "TYPICAL",
    "TYPICAL_WORDS",
    "VARIED",
    "VARIED_WORDS",
    "Edit",
    "Pending",
    "Resolution",
    "Resolver",
    "Tok",
    "Unmapped",
    "tokenize",
]
