"""Models & settings: which generator and agents, on which device, and the loop's budget and reward."""

from __future__ import annotations

import streamlit as st

from aod_core.chat import CHAT_BACKENDS
from aod_core.errors import InputError
from aod_core.generators import GENERATORS, kind_of, option_names
from aod_core.studio.markup import md
from aod_core.studio.models import device_summary
from aod_core.studio.settings import SETTINGS_DEFAULTS, config_from_settings
from ui.specs import option_form, spec_picker
from ui.state import registry, settings

D = SETTINGS_DEFAULTS

st.title("Models & settings")
st.caption("Everything here applies to the next run you start on the Run page. `embedded` models run offline on this "
           "machine.")

st.subheader("Models")
m1, m2, m3 = st.columns(3)
spec_picker(m1, "Generator", GENERATORS, "set_generator", D["generator"],
            help="Where records come from. `embedded` runs offline; the first run fits it on your seeds.")
spec_picker(m2, "Judge", CHAT_BACKENDS, "set_judge", D["judge"],
            help="`embedded`: the plausibility judge, evidence fitted on your seeds (offline, no LLM). Any other "
            "model is an LLM that reads that evidence and gives the semantic verdict.")
spec_picker(m3, "Prompt optimizer", CHAT_BACKENDS, "set_optimizer", D["optimizer"],
            help="The chat model that rewrites the prompt from the judge's feedback.")
st.checkbox("Trust this model folder's code (hf: generators)", value=D["trust_remote_code"],
            key="set_trust_remote_code", persist_state="session",
            help="Some model folders (LLaDA, Dream) ship their own Python files, which run on this machine with "
            "your permissions when the model loads. Tick this only for a folder whose source you trust; "
            "without it such a folder is refused. The embedded models never need it.")
if st.session_state.get("set_trust_remote_code"):
    st.warning("The hf: generator's folder may run its own Python code on this machine when it loads.",
               icon=":material/warning:")
st.text_input("API key for openai: models", type="password", key="set_api_key", persist_state="session",
              help="Kept in this browser session's memory only: never written to the run folder or disk. "
              "Empty: the server's OPENAI_API_KEY environment variable, if any.")
d1, d2 = st.columns(2)
d1.selectbox("Device", ["auto", "cpu", "cuda"], key="set_device", persist_state="session",
             help="auto: the GPU when there is one, else the CPU.")
d2.toggle("Use scaffold", value=D["scaffold"], key="set_scaffold", persist_state="session",
          help="Off: raw-text diffusion without structure constraints (an ablation; expect invalid JSON).")

st.subheader("Judge")
modes = {
    "auto": "auto: plausibility for `embedded`, combined for an LLM",
    "plausibility": "plausibility: evidence fitted on the seeds decides",
    "combined": "combined: the LLM decides with that evidence; implausible records are vetoed",
    "llm": "llm: the LLM alone",
}
j1, j2, j3, j4 = st.columns([2.2, 1, 1, 1])
j1.selectbox("Judge mode", list(modes), format_func=modes.get, key="set_judge_mode", persist_state="session",
             help="How exact checks, the plausibility evidence and an LLM combine. combined and llm need an LLM judge "
             "(`embedded` then means SmolLM2-135M, which showed no signal as a judge).")
j2.number_input(
    "Accept share",
    0.5,
    0.99,
    D["accept_share"],
    0.01,
    key="set_accept_share",
    persist_state="session",
    help="The plausibility threshold is calibrated on held-out seeds so that this share of real records is accepted. "
         "The Design page shows the calibration.",
)
j3.number_input(
    "Near-copy threshold",
    0.05,
    1.5,
    D["near_copy"],
    0.05,
    key="set_near_copy",
    persist_state="session",
    help="Token-shingle Jaccard similarity to a seed (or an accepted record) from which a record is rejected as a "
         "near copy. Above 1 turns the check off.",
)
j4.number_input(
    "Veto",
    0.0,
    0.5,
    D["veto"],
    0.005,
    format="%.3f",
    key="set_veto",
    persist_state="session",
    help="combined mode: a record whose plausibility score is below this is rejected whatever the LLM says. Not used "
         "in the other modes.",
)
st.number_input(
    "Near copy by values",
    -1.0,
    0.5,
    D["near_numbers"],
    0.005,
    format="%.3f",
    key="set_near_numbers",
    persist_state="session",
    help="A record with a seed's key (country and year, a code; without keys, every value that is not a number equal "
         "to one seed's) and every number within this share of the field's seed range is rejected as a near copy. "
         "Negative turns the check off.",
)
mode_now = st.session_state.get("set_judge_mode", D["judge_mode"])
judge_now = (st.session_state.get("set_judge", D["judge"]) or "").strip().lower()
if mode_now in ("auto", "plausibility") and (judge_now == "embedded" or mode_now == "plausibility"):
    st.caption(
        "The plausibility judge reads no rubric and no LLM: the Design page's rubric and the veto apply to LLM "
        "judges only."
    )

st.subheader("Loop")
l1, l2, l3, l4 = st.columns(4)
l1.number_input("Iterations", 1, 100, D["iterations"], key="set_iterations", persist_state="session")
l2.number_input("Batch size", 1, 1000, D["batch"], key="set_batch", persist_state="session",
                help="Candidates generated and judged per iteration.")
l3.number_input("Target accepted", 0, 100_000, 0, key="set_target", persist_state="session",
                help="Stop once this many records are accepted. 0: no target, run every iteration.")
l4.number_input("Random seed", 0, 2**31 - 1, D["seed"], key="set_seed", persist_state="session")
p1, p4, p2, p3 = st.columns(4)
p1.number_input("Proposals per iteration", 0, 8, D["proposals"], key="set_proposals", persist_state="session",
                help="Candidate prompts the optimizer's chat model writes each iteration (0: none).")
p4.number_input("Repairs per iteration", 0, 2, D["repairs"], key="set_repairs", persist_state="session",
                help="More candidate prompts read off the judge's findings: a lower temperature when records were "
                "implausible (a higher one when they repeated), and the most flagged number kept in the seeds' "
                "usual range. Each is probed like a proposal and kept only if it wins. 0: none.")
p2.number_input("Probe batch", 1, 256, D["probe"], key="set_probe", persist_state="session",
                help="Records on which the incumbent and each proposal are compared (same seed for all).")
p3.number_input("Generator training steps", 0, 100_000, 0, key="set_train_steps", persist_state="session",
                help="0: the default. Fewer steps fit faster but learn the seeds less well.")
st.checkbox("Confirm a winning proposal on a second probe batch", value=D["confirm"], key="set_confirm",
            persist_state="session",
            help="The best of several proposals on one probe batch is partly the luckiest. On: it replaces the "
            "incumbent only if it wins again on a second batch of another seed (two more probe batches).")
c1, c2 = st.columns(2)
c1.selectbox("Compile instruction text into scaffold edits", ["auto", "on", "off"], key="set_compile",
             persist_state="session",
             help="auto: for generators that cannot read text (the embedded DLM, DiffLM); on: also for hf: "
             "DLMs, on top of the text they read; off: never (then the embedded DLM ignores the text).")
c2.text_input(
    "Instruction compiler model",
    key="set_compiler",
    persist_state="session",
    placeholder="the optimizer's model",
    help="Chat model asked about the clauses the compiler's rules cannot map; its edits are kept only when grounded "
         "in the clause's words. none: rules only.",
)
gen_kind = kind_of(st.session_state.get("set_generator", D["generator"]))
if gen_kind is not None and gen_kind.options:
    with st.expander(f"{gen_kind.form} settings", expanded=False):
        option_form(st, gen_kind)
else:
    st.session_state["set_gen_fields"] = {}
    if gen_kind is not None:
        st.caption(f"The `{gen_kind.form}` generator takes no settings of its own.")
takes = ", ".join(sorted(option_names(gen_kind))) or "nothing"
st.text_input("Generator options", key="set_gen_options", persist_state="session", placeholder="batch=16, decode=fast",
              help="The generator's own settings as KEY=VALUE, comma-separated; they win over the widgets above. "
              f"{gen_kind.form if gen_kind else 'This generator'} takes: {takes}.")

st.subheader("Reward")
st.caption("reward = w₁·task success + w₂·mean judge score + w₃·(1 − field overlap) + w₄·distinct-2, "
           "with the weights normalised to sum to 1. The optimizer's proposals compete on it.")
w1, w2, w3, w4 = st.columns(4)
w1.number_input("Task success", 0.0, 10.0, D["w_tsr"], 0.05, key="set_w_tsr", persist_state="session")
w2.number_input("Judge score", 0.0, 10.0, D["w_judge"], 0.05, key="set_w_judge", persist_state="session")
w3.number_input("Novelty", 0.0, 10.0, D["w_novelty"], 0.05, key="set_w_novelty", persist_state="session")
w4.number_input("Diversity", 0.0, 10.0, D["w_diversity"], 0.05, key="set_w_diversity", persist_state="session")

try:
    config_from_settings(settings())
except InputError as e:
    st.error(f"These settings cannot start a run: {md(e)}")
else:
    st.success("Settings are usable.", icon=":material/check:")

st.subheader("Loaded in this app")
st.caption(device_summary())
loaded = registry().models.describe()
if loaded:
    st.dataframe(loaded, hide_index=True, key="models_loaded")
else:
    st.caption(
        "No chat model loaded yet: the first run loads them (the embedded judge takes a few seconds once its "
        "converted copy is cached)."
    )
