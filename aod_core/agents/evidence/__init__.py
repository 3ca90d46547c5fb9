"""Evidence rules: what the plausibility model checks in a record, each fitted on the seeds.

A record is split into *tables* of rows (the root object, and one row per array item with its
parent's fields as context), and each column gets a kind from the seeds: number, date, category or
text (``tables.py``). Each rule gives every row a *statistic* (0 = as usual as it gets, larger =
more unusual; NaN where the rule does not apply) and explains a row in words with numbers
(``rule.py``). A record's statistic for a rule is the largest over its rows. The rules, by family
(each module's docstring defines its statistics):

==================  =========================================================================
``fields.py``       one field at a time: ``range``, ``density``, ``null``, ``category``, ``spelling``,
                    ``words``, ``pieces``, ``meaning``
``relations.py``    how fields go together: ``conditional``, ``dependency``, ``pair``, ``determines``,
                    ``text-category``, ``equal``
``whole.py``        the whole row at once: ``combination`` (a random-forest two-sample test against
                    the seeds with every field shuffled) and ``neighbourhood`` (distance to the
                    nearest seeds)
``planning.py``     ``plan_rules``: which rules apply to a dataset
==================  =========================================================================

The model that fits, calibrates and combines them is ``aod_core/agents/plausibility.py``. The
names its users import (the plausibility model, the benchmarks) are re-exported here; the rule
classes are reached through ``plan_rules``.
"""

from aod_core.agents.evidence.fields import (
    CategoryRule,
    DensityRule,
    MeaningRule,
    NullRule,
    PiecesRule,
    RangeRule,
    SpellingRule,
    WordsRule,
)
from aod_core.agents.evidence.planning import best_grouping, plan_rules
from aod_core.agents.evidence.relations import (
    ConditionalRule,
    DependencyRule,
    DeterminesRule,
    EqualRule,
    PairRule,
    TextCategoryRule,
)
from aod_core.agents.evidence.rule import Finding, FitContext, Rule
from aod_core.agents.evidence.tables import ColumnInfo, Columns, build_tables, column_kinds, record_tables
from aod_core.agents.evidence.whole import CombinationRule, FeatureSpace, NeighbourhoodRule

__all__ = [
    "CategoryRule",
    "ColumnInfo",
    "Columns",
    "CombinationRule",
    "ConditionalRule",
    "DensityRule",
    "DependencyRule",
    "DeterminesRule",
    "EqualRule",
    "FeatureSpace",
    "Finding",
    "FitContext",
    "MeaningRule",
    "NeighbourhoodRule",
    "NullRule",
    "PairRule",
    "PiecesRule",
    "RangeRule",
    "Rule",
    "SpellingRule",
    "TextCategoryRule",
    "WordsRule",
    "best_grouping",
    "build_tables",
    "column_kinds",
    "plan_rules",
    "record_tables",
]
