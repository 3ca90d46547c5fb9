"""Sample: fit the generator on the seeds and draw a batch with a fixed prompt.

The embedded diffusion model by default; the Models page's generator when it is a pretrained DLM
(``hf:``) or DiffLM (``difflm``, with a view of its latent space)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from aod_core.agents.compiler import compile_note, should_compile
from aod_core.canvas.prompt import DEFAULT_TEMPERATURE
from aod_core.errors import InputError
from aod_core.studio import cells, design, prompt_forms, sampling
from aod_core.studio.markup import md, md_code
from ui.compiled import compiled_editor
from ui.copying import show_copying
from ui.state import compiler_chat, require_dataset, settings

st.title("Sample")

dataset = require_dataset()

label = st.session_state.get("dataset_label") or "dataset"
prompt_text = st.session_state.get("prompt_text") or ""
gen_spec = str(settings()["generator"] or "").strip()
kind = sampling.sample_kind(gen_spec)  # what is sampled here, and which controls it honours
controls = kind.controls
st.caption(sampling.sample_caption(gen_spec, label, len(dataset.seeds.records)))

string_modes = dict(settings()["string_modes"] or {})
dep_text = json.dumps(settings()["dependencies"] or {}, sort_keys=True)
try:
    field_keys = design.scaffold_preview(dataset, string_modes).field_keys
except InputError as e:
    st.error(md(e))
    field_keys = []


@st.cache_resource(show_spinner="Preparing the model…", max_entries=8)
def get_generator(schema_text: str, seeds_text: str, scaffold: bool, train_steps: int, cache_dir: str,
                  string_modes: tuple = (), options: str = "", dependencies: str = ""):
    """One generator per (inputs, scaffold flag, training steps, string modes, Models-page settings), shared by sessions (it
    is thread-safe); fitted weights are cached on disk by content hash as well."""
    return sampling.build_generator(schema_text, seeds_text, scaffold=scaffold, train_steps=train_steps,
                                    cache_dir=cache_dir, string_modes=dict(string_modes), options=options,
                                    dependencies=dependencies)


@st.cache_resource(show_spinner="Preparing the model…", max_entries=4)
def get_spec_generator(schema_text: str, seeds_text: str, spec: str, options: str, train_steps: int, cache_dir: str,
                       dependencies: str = ""):
    """One DiffLM or pretrained-DLM generator per (inputs, spec, settings), shared by sessions (it is
    thread-safe)."""
    return sampling.build_spec_generator(
        schema_text, seeds_text, spec=spec, options=options, train_steps=train_steps, cache_dir=cache_dir,
        dependencies=dependencies,
    )


# ---- settings: only the controls this generator kind honours (the registry says which) ---------------
c1, c2, c3 = st.columns(3)
with c1:
    n = st.number_input("Records", min_value=1, max_value=1000, value=100, step=10, key="sample_n", persist_state="session")
    seed = st.number_input("Random seed", min_value=0, value=0, step=1, key="sample_seed", persist_state="session")
    use_scaffold = not kind.scaffold_optional or st.toggle(
        "Use scaffold", value=True, key="sample_scaffold", persist_state="session",
        help="Off: the same network learns raw JSON text with no structure constraints "
             "(the ablation that shows what the scaffold buys).")
with c2:
    steps = None if "steps" not in controls else st.number_input(
        "Steps", min_value=1, value=None, step=1, key="sample_steps", persist_state="session",
        placeholder="auto: one per masked position",
        help="Denoising steps (forward passes). Empty: one per masked position.")
    temperature = st.number_input("Temperature", min_value=0.0, max_value=5.0, value=DEFAULT_TEMPERATURE, step=0.1,
                                  key="sample_temperature", persist_state="session",
                                  help="0 is greedy; higher is more varied. For DiffLM it is the decoder's token "
                                       "temperature: at 0, variety comes from the sampled latents alone.")
    blocks = 1 if "blocks" not in controls else st.number_input(
        "Blocks", min_value=1, max_value=64, value=1, step=1, key="sample_blocks", persist_state="session",
        help="Semi-autoregressive blocks decoded left to right over the masked positions.")
with c3:
    remasking = "random" if "remasking" not in controls else st.radio(
        "Remasking", ["random", "low_confidence"], key="sample_remasking", persist_state="session",
        help="Which masked positions are committed each step. random: any-order ancestral sampling "
             "(diverse). low_confidence: the most confident first, which is mode-seeking: cleaner values "
             "but more repeats and seed copies.")
    threshold = None if "threshold" not in controls else st.number_input(
        "Parallel-commit threshold", min_value=0.01, max_value=1.0, value=None, step=0.05, key="sample_threshold",
        persist_state="session", placeholder="off",
        help="Fast-dLLM: commit every position whose confidence reaches this (at least one per step). Empty: off.")

pins = forbids = pd.DataFrame({"path": [], "value": []})
if "pins" in controls:
    st.markdown("**Pins and forbids** — fix a field's value, or rule values out. Values are JSON "
                '(`42`, `null`, `"Dream"`), anything else is taken as text. `[*]` applies to every array item.')
    editor_columns = {
        "path": st.column_config.SelectboxColumn("Field", options=field_keys, required=True),
        "value": st.column_config.TextColumn("Value"),
    }
    empty = pd.DataFrame({"path": pd.Series(dtype="object"), "value": pd.Series(dtype="object")})
    e1, e2 = st.columns(2)
    with e1:
        st.caption("Pins")
        pins = st.data_editor(empty, num_rows="dynamic", column_config=editor_columns, hide_index=True, key="sample_pins")
    with e2:
        st.caption("Forbids")
        forbids = st.data_editor(empty, num_rows="dynamic", column_config=editor_columns, hide_index=True, key="sample_forbids")

# ---- instruction text -> compiled scaffold edits ---------------------------------------------------
st.markdown("**Instruction**")
mode = str(settings()["compile"] or "auto")
st.caption(compile_note(gen_spec, mode))
instruction = st.text_area("Instruction text", value=prompt_text, key="sample_instruction",
                           placeholder="e.g. mostly Torgersen penguins, body mass above 4 kg, no nulls in sex",
                           help="What you want from the records, in words. Starts as the Design page's task "
                                "description.")
compile_on = should_compile(mode, gen_spec)
signature = st.session_state.get("dataset_signature")
held = st.session_state.get("sample_compiled")
compiled = held[1] if held and held[0] == signature else None
if compile_on and st.button("Compile the instruction", key="sample_compile", icon=":material/translate:"):
    try:
        with st.spinner("Compiling the instruction…"):
            compiled = prompt_forms.compile_instruction(dataset, instruction, chat=compiler_chat())
        st.session_state.sample_compiled = (signature, compiled)
    except InputError as e:
        st.error(f"Could not compile the instruction: {md(e)}")
compiled_rows = None
if compile_on and compiled:
    if compiled.get("text") != instruction:
        st.caption("The text changed since it was compiled: it is compiled again when you press **Fit & sample**.")
    else:
        st.caption("Compiled edits (edit, delete or add rows; a changed row counts as yours):")
        ck = cells.content_hash(compiled)
        compiled_rows = compiled_editor(compiled, f"sample_compiled_edits_{ck}",
                                        field_keys + prompt_forms.structure_keys(dataset))
        if not compiled.get("edits"):
            st.caption("No edits: nothing in the text names a field or a value.")
        for line in prompt_forms.compiled_messages(compiled):
            st.warning(md(line), icon=":material/help:")

train_steps = 0
if not kind.trains:
    st.caption("A pretrained model is not trained here; its decoding settings (batch, fast or vanilla decoding, "
               "threshold, block length) are the Models page's generator settings.")
else:
    with st.expander("Advanced"):
        train_steps = st.number_input(
            "Training steps",
            min_value=1,
            value=sampling.default_train_steps(kind.name),
            step=10,
            key="sample_train_steps" if kind.name == "embedded" else f"sample_{kind.name}_train_steps",
            persist_state="session",
            help="Optimizer steps when the model is fitted. A fitted model is cached on disk, so the same data and "
                 "settings are fitted only once.",
        )

# ---- run -----------------------------------------------------------------------------------------
if st.button("Fit & sample", type="primary", key="sample_go"):
    fit_slot, sample_slot = st.empty(), st.empty()
    try:
        prompt = prompt_forms.build_prompt(
            instruction,
            sampling={
                "steps": steps,
                "temperature": float(temperature),
                "remasking": remasking,
                "num_blocks": int(blocks),
                "threshold": threshold,
            },
            pins=pins.to_dict("records"),
            forbids=forbids.to_dict("records"),
        )
        if kind.name != "embedded":
            gen_opts = sampling.spec_options_text(settings(), kind)
            gen = get_spec_generator(
                *sampling.generator_inputs(dataset), gen_spec, gen_opts, int(train_steps), sampling.model_cache_dir(),
                dep_text,
            )
        else:
            gen = get_generator(*sampling.generator_inputs(dataset), bool(use_scaffold), int(train_steps),
                                sampling.model_cache_dir(), tuple(sorted(string_modes.items())),
                                sampling.spec_options_text(settings(), kind), dep_text)
        if compile_on and instruction.strip():
            if not compiled or compiled.get("text") != instruction:
                with st.spinner("Compiling the instruction…"):
                    compiled = prompt_forms.compile_instruction(dataset, instruction, chat=compiler_chat())
                st.session_state.sample_compiled = (signature, compiled)
                compiled_rows = None
            if compiled_rows is not None:
                compiled = prompt_forms.compiled_from_rows(compiled, compiled_rows.to_dict("records"))
            prompt = prompt_forms.prompt_with_compiled(prompt, compiled, gen.check_prompt)
        fit_bar = fit_slot.progress(0.0, text="Fitting…")
        sample_bar = sample_slot.progress(0.0, text="Sampling: waiting for the model")
        result = sampling.fit_and_sample(gen, prompt, int(n), seed=int(seed),
                                         on_fit=lambda frac, text: fit_bar.progress(frac, text=text),
                                         on_step=lambda frac, text: sample_bar.progress(frac, text=text))
    except InputError as e:
        fit_slot.empty()
        sample_slot.empty()
        st.error(md(e))
    else:
        result.dataset_label = label
        result.settings = {
            "train_steps": int(train_steps),
            "generator": gen_spec if kind.name != "embedded" else "embedded",
        }
        result.summary = sampling.sample_summary(
            result.candidates, dataset.schema, dataset.seeds.records,
            holdout=dataset.holdout.records if dataset.holdout else None,
            dependencies=design.dataset_dependencies(dataset, json.loads(dep_text)),
        )
        if kind.sample_view == "difflm":
            result.latent = sampling.latent_figure(gen, int(n), int(seed))
        st.session_state.sample_result = result

# ---- last result ---------------------------------------------------------------------------------
result = st.session_state.get("sample_result")
if result is None or result.summary is None:
    st.caption("No samples yet: choose settings and press **Fit & sample**.")
    st.stop()

st.subheader("Last batch")
batch = result.summary.batch
r1, r2, r3, r4, r5 = st.columns(5)
r1.metric("Valid JSON", f"{batch['valid_json_rate']:.0%}")
r2.metric("Schema-valid", f"{batch['schema_valid_rate']:.0%}")
r3.metric("Seed copies", f"{batch['exact_copy_rate']:.0%}", help="Exact copies of a seed record (lower is better).")
r4.metric("Duplicates", f"{batch['duplicate_rate']:.0%}", help="Repeats of an earlier record in the batch.")
r5.metric("Seconds", f"{result.sample_seconds:.1f}", help=f"Sampling time; fitting took {result.fit_seconds:.1f} s.")
show_copying(result.summary.copying, batch.get("dependency_violation_rate"))
fit = result.fit_report
how = "loaded from cache" if fit.get("cached") else f"ready in {fit.get('seconds', result.fit_seconds)} s"
used = result.settings.get("generator", "embedded")
what = f"generator {md_code(used)}" if used != "embedded" else f"scaffold {'on' if result.scaffold else 'off'}"
trained = f", {result.settings['train_steps']} training steps" if result.settings.get("train_steps") else ""
st.caption(f"{result.n} candidates, seed {result.seed}, {what}{trained}; model {how}"
           + (f", final loss {fit['final_loss']}" if "final_loss" in fit else "") + f" · {md(result.dataset_label)}")

applied = result.prompt.compiled
if applied:
    st.markdown(f"**Compiled from** *{md(applied.get('text', ''))}*")
    if applied.get("edits"):
        st.dataframe(pd.DataFrame(prompt_forms.compiled_result_rows(applied)), hide_index=True, key="sample_compiled_used")
    for line in prompt_forms.compiled_messages(applied):
        st.warning(md(line), icon=":material/help:")
only_problems = st.toggle("Only records with problems", key="sample_only_problems")
rows = sampling.problem_rows(result.summary) if only_problems else result.summary.rows
st.dataframe(
    rows,
    hide_index=True,
    key="sample_records",
    column_config={
        "json": st.column_config.TextColumn("JSON", width="large"),
        "schema_valid": st.column_config.CheckboxColumn("schema-valid"),
        "seed_copy": st.column_config.CheckboxColumn("seed copy"),
        "dependency": st.column_config.TextColumn("broken dependency"),
    },
)
d1, d2 = st.columns(2)
d1.download_button("Download JSONL (all parsed records)", sampling.records_jsonl(result.candidates),
                   file_name="samples.jsonl", mime="application/jsonl", on_click="ignore", key="sample_dl_all")
d2.download_button("Download JSONL (schema-valid only)",
                   sampling.records_jsonl(result.candidates, only_valid_for=dataset.schema),
                   file_name="samples-valid.jsonl", mime="application/jsonl", on_click="ignore", key="sample_dl_valid")

if result.latent is not None:
    st.subheader("Latent space")
    latent_fig, latent_caption = result.latent
    st.plotly_chart(latent_fig, key="sample_latent_chart")
    st.caption(md(latent_caption))
