"""Judge: exact checks, then plausibility fitted on the seeds, then (when one is configured) an LLM.

The composition rule, in order:

1. **Exact checks** in code: parses, schema errors with paths, duplicate in the batch or of a record
   accepted earlier, exact seed copy, and **near copy**: token-shingle Jaccard similarity >=
   ``near_copy`` (default 0.8, MinHash LSH candidates, the audit's definition) to a seed or to an
   earlier accepted record. A record that fails any of them is rejected, source ``checks``.
2. **Plausibility** (``plausibility.py``): evidence fitted and calibrated on the seeds gives every
   record a score (the share of real records at least as unusual) and findings in words.
3. The verdict, by ``mode``:

   * ``plausibility`` (the default for ``--judge embedded``): the plausibility model decides, at the
     threshold calibrated to accept ``accept_share`` of real records. A 135M chat model showed no
     signal as a judge (it rejected real records as readily as broken ones), so none is asked.
   * ``combined`` (the default for ``hf:``, ``gguf:`` and ``openai:`` judges): the LLM reads the
     record *with* the plausibility score and findings and gives the semantic verdict; a record whose
     plausibility score is below ``veto`` (default 0.01: rarer than 99% of real records) is rejected
     whatever the LLM says. Score = mean of the LLM's score and the plausibility score.
   * ``llm``: the LLM alone with the exact checks as evidence (the judge before plausibility
     existed; kept for comparison and for users who trust their model).

   An unusable LLM answer is recorded as a failure ("no verdict"), never replaced by an invented one;
   such a record is not accepted.

The batch feedback combines facts computed in code (recurring schema errors, duplicates, category
shares and value combinations that drift from the seeds) with the rejections' findings grouped into
what a prompt edit can fix ("14/32 records: body_mass_g above every seed with species = Adelie"),
and, in the LLM modes, the LLM's summary of its reasons.

The package, by concept:

==================  ===================================================================
``checks.py``       the exact checks in code, near copies included (step 1)
``agent.py``        ``Judge`` and ``JudgeSettings``: the composition rule by mode (steps 2-3)
``prompts.py``      what an LLM judge is shown: rubric, answer schemas, record messages
``feedback.py``     the batch feedback: facts computed in code, the rejections' findings grouped
``verdicts.py``     a verdict, a batch's judgement, and a verdict as stored in the run
==================  ===================================================================
"""

from aod_core.agents.judge.agent import MODES, Judge, JudgeSettings
from aod_core.agents.judge.checks import Checks, NearCopies, check_batch, passed_checks
from aod_core.agents.judge.feedback import batch_facts, finding_facts
from aod_core.agents.judge.prompts import (
    DATA_NOT_INSTRUCTIONS,
    DEFAULT_RUBRIC,
    FEEDBACK_SCHEMA,
    VERDICT_SCHEMA,
    implausible_example,
)
from aod_core.agents.judge.verdicts import Judgement, Verdict, verdict_row

__all__ = [
    "DATA_NOT_INSTRUCTIONS",
    "DEFAULT_RUBRIC",
    "FEEDBACK_SCHEMA",
    "MODES",
    "VERDICT_SCHEMA",
    "Checks",
    "Judge",
    "JudgeSettings",
    "Judgement",
    "NearCopies",
    "Verdict",
    "batch_facts",
    "check_batch",
    "finding_facts",
    "implausible_example",
    "passed_checks",
    "verdict_row",
]
