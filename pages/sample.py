"""Sample: fit the generator on the seeds and draw a batch with a fixed prompt.

The embedded diffusion model by default; the Models page's generator when it is a pretrained DLM
(``hf:``) or DiffLM (``difflm``, with a view of its latent space)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from aod_core.studio import workspace as ws
from aod_core.agents.compiler import compile_note, should_compile
from aod_core.errors import InputError
from aod_core.canvas.prompt import DEFAULT_TEMPERATURE
from ui.state import compiler_chat, settings

st.title("Sample")

dataset = st.session_state.get("dataset")
if dataset is None:
    st.info("No dataset yet: choose a demo dataset or upload a schema and seeds on the Design page first.")
    st.page_link("pages/design.py", label="Go to Design", icon=":material/arrow_back:")
    st.stop()

label = st.session_state.get("dataset_label") or "dataset"
prompt_text = st.session_state.get("prompt_text") or ""
gen_spec = str(settings()["generator"] or "").strip()
kind = ws.generator_kind(gen_spec)
difflm = kind == "difflm"
if difflm:
    st.caption(f"Dataset: **{label}** · {len(dataset.seeds.records)} seeds · generator `{gen_spec}` (from Models & "
               "settings): DiffLM, a VAE over the seeds decoded by a frozen language model, sampled from its "
               "latent diffusion model. It reads no prompt text and no pins or forbids; temperature applies.")
elif kind == "hf":
    st.caption(f"Dataset: **{label}** · {len(dataset.seeds.records)} seeds · generator `{gen_spec}` (from Models & "
               "settings): a pretrained diffusion LM infilling the token-level scaffold, with a fixed prompt.")
else:
    st.caption(f"Dataset: **{label}** · {len(dataset.seeds.records)} seeds · the diffusion model alone with a "
               "fixed prompt (the static-prompt baseline).")

string_modes = dict(settings()["string_modes"] or {})
try:
    field_keys = ws.scaffold_preview(dataset, string_modes).field_keys
except InputError as e:
    st.error(str(e))
    field_keys = []


@st.cache_resource(show_spinner="Preparing the model…", max_entries=8)
def get_generator(schema_text: str, seeds_text: str, scaffold: bool, train_steps: int, cache_dir: str,
                  string_modes: tuple = ()):
    """One generator per (inputs, scaffold flag, training steps, string modes), shared by sessions (it
    is thread-safe); fitted weights are cached on disk by content hash as well."""
    return ws.build_generator(schema_text, seeds_text, scaffold=scaffold, train_steps=train_steps,
                              cache_dir=cache_dir, string_modes=dict(string_modes))


@st.cache_resource(show_spinner="Preparing the model…", max_entries=4)
def get_spec_generator(schema_text: str, seeds_text: str, spec: str, options: str, train_steps: int, cache_dir: str):
    """One DiffLM or pretrained-DLM generator per (inputs, spec, settings), shared by sessions (it is
    thread-safe)."""
    return ws.build_spec_generator(schema_text, seeds_text, spec=spec, options=options, train_steps=train_steps,
                                   cache_dir=cache_dir)


# ---- settings ------------------------------------------------------------------------------------
if difflm:
    c1, c2 = st.columns(2)
    with c1:
        n = st.number_input("Records", min_value=1, max_value=1000, value=100, step=10, key="sample_n",
                            persist_state="session")
        seed = st.number_input("Random seed", min_value=0, value=0, step=1, key="sample_seed",
                               persist_state="session")
    with c2:
        temperature = st.number_input("Temperature", min_value=0.0, max_value=5.0, value=DEFAULT_TEMPERATURE, step=0.1,
                                      key="sample_temperature", persist_state="session",
                                      help="The decoder's token temperature. 0 is greedy: variety then comes "
                                           "from the sampled latents alone.")
    use_scaffold, steps, blocks, remasking, threshold = True, None, 1, "random", None
    pins = forbids = pd.DataFrame({"path": [], "value": []})
else:
    c1, c2, c3 = st.columns(3)
    with c1:
        n = st.number_input("Records", min_value=1, max_value=1000, value=100, step=10, key="sample_n",
                            persist_state="session")
        seed = st.number_input("Random seed", min_value=0, value=0, step=1, key="sample_seed",
                               persist_state="session")
        use_scaffold = kind == "hf" or st.toggle(
            "Use scaffold", value=True, key="sample_scaffold", persist_state="session",
            help="Off: the same network learns raw JSON text with no structure constraints "
                 "(the ablation that shows what the scaffold buys).")
    with c2:
        steps = None if kind == "hf" else st.number_input(
            "Steps", min_value=1, value=None, step=1, key="sample_steps", persist_state="session",
            placeholder="auto: one per masked position",
            help="Denoising steps (forward passes). Empty: one per masked position.")
        temperature = st.number_input("Temperature", min_value=0.0, max_value=5.0, value=DEFAULT_TEMPERATURE, step=0.1,
                                      key="sample_temperature", persist_state="session",
                                      help="0 is greedy; higher is more varied.")
        blocks = st.number_input("Blocks", min_value=1, max_value=64, value=1, step=1, key="sample_blocks",
                                 persist_state="session",
                                 help="Semi-autoregressive blocks decoded left to right over the masked positions.")
    with c3:
        remasking = st.radio(
            "Remasking", ["random", "low_confidence"], key="sample_remasking", persist_state="session",
            help="Which masked positions are committed each step. random: any-order ancestral sampling "
                 "(diverse). low_confidence: the most confident first, which is mode-seeking: cleaner values "
                 "but more repeats and seed copies.",
        )
        threshold = st.number_input("Parallel-commit threshold", min_value=0.01, max_value=1.0, value=None,
                                    step=0.05, key="sample_threshold", persist_state="session", placeholder="off",
                                    help="Fast-dLLM: commit every position whose confidence reaches this "
                                         "(at least one per step). Empty: off.")

    st.markdown("**Pins and forbids** — fix a field's value, or rule values out. Values are JSON "
                "(`42`, `null`, `\"Dream\"`), anything else is taken as text. `[*]` applies to every array item.")
    editor_columns = {
        "path": st.column_config.SelectboxColumn("Field", options=field_keys, required=True),
        "value": st.column_config.TextColumn("Value"),
    }
    empty = pd.DataFrame({"path": pd.Series(dtype="object"), "value": pd.Series(dtype="object")})
    e1, e2 = st.columns(2)
    with e1:
        st.caption("Pins")
        pins = st.data_editor(empty, num_rows="dynamic", column_config=editor_columns, hide_index=True,
                              key="sample_pins")
    with e2:
        st.caption("Forbids")
        forbids = st.data_editor(empty, num_rows="dynamic", column_config=editor_columns, hide_index=True,
                                 key="sample_forbids")

# ---- instruction text -> compiled scaffold edits ---------------------------------------------------
st.markdown("**Instruction**")
mode = str(settings()["compile"] or "auto")
st.caption(compile_note(gen_spec, mode))
instruction = st.text_area("Instruction text", value=prompt_text, key="sample_instruction",
                           placeholder="e.g. mostly Torgersen penguins, body mass above 4 kg, no nulls in sex",
                           help="What you want from the records, in words. Starts as the Design page's task description.")
compile_on = should_compile(mode, gen_spec)
signature = st.session_state.get("dataset_signature")
held = st.session_state.get("sample_compiled")
compiled = held[1] if held and held[0] == signature else None
if compile_on and st.button("Compile the instruction", key="sample_compile", icon=":material/translate:"):
    try:
        with st.spinner("Compiling the instruction…"):
            compiled = ws.compile_instruction(dataset, instruction, chat=compiler_chat())
        st.session_state.sample_compiled = (signature, compiled)
    except InputError as e:
        st.error(f"Could not compile the instruction: {e}")
compiled_rows = None
if compile_on and compiled:
    if compiled.get("text") != instruction:
        st.caption("The text changed since it was compiled: it is compiled again when you press **Fit & sample**.")
    else:
        st.caption("Compiled edits (edit, delete or add rows; a changed row counts as yours):")
        ck = ws.content_hash(compiled)
        compiled_rows = st.data_editor(
            pd.DataFrame(ws.compiled_rows(compiled), columns=ws.COMPILED_COLUMNS), num_rows="dynamic",
            hide_index=True, key=f"sample_compiled_edits_{ck}",
            column_config={"op": st.column_config.SelectboxColumn("op", options=list(ws.COMPILED_OPS), required=True),
                           "path": st.column_config.SelectboxColumn("field", options=field_keys + ws.structure_keys(dataset)),
                           "share": st.column_config.NumberColumn("target share", format="%.2f"),
                           "phrase": st.column_config.TextColumn("from the words", disabled=True),
                           "by": st.column_config.TextColumn("by", disabled=True)})
        if not compiled.get("edits"):
            st.caption("No edits: nothing in the text names a field or a value.")
        for line in ws.compiled_messages(compiled):
            st.warning(line, icon=":material/help:")

train_steps = 0
if kind == "hf":
    st.caption("A pretrained model is not trained here; its decoding settings (batch, fast or vanilla decoding, "
               "threshold, block length) are the Models page's *Generator options*.")
else:
    with st.expander("Advanced"):
        train_steps = st.number_input("Training steps", min_value=1 if difflm else 20,
                                      value=ws.default_train_steps(gen_spec if difflm else "embedded"), step=10,
                                      key="sample_difflm_train_steps" if difflm else "sample_train_steps",
                                      persist_state="session",
                                      help="Optimizer steps when the model is fitted. A fitted model is cached on "
                                           "disk, so the same data and settings are fitted only once.")

# ---- run -----------------------------------------------------------------------------------------
if st.button("Fit & sample", type="primary", key="sample_go"):
    fit_slot, sample_slot = st.empty(), st.empty()
    try:
        prompt = ws.build_prompt(
            instruction,
            sampling={"steps": steps, "temperature": float(temperature), "remasking": remasking,
                      "num_blocks": int(blocks), "threshold": threshold},
            pins=pins.to_dict("records"),
            forbids=forbids.to_dict("records"),
        )
        if kind in ("difflm", "hf"):
            gen_opts = str(settings()["gen_options"] or "")
            if kind == "hf" and settings().get("trust_remote_code"):
                gen_opts = f"{gen_opts}, trust_remote_code=true"  # the Models page checkbox
            gen = get_spec_generator(*ws.generator_inputs(dataset), gen_spec, gen_opts,
                                     int(train_steps), ws.model_cache_dir())
        else:
            gen = get_generator(*ws.generator_inputs(dataset), bool(use_scaffold), int(train_steps),
                                ws.model_cache_dir(), tuple(sorted(string_modes.items())))
        if compile_on and instruction.strip():
            if not compiled or compiled.get("text") != instruction:
                with st.spinner("Compiling the instruction…"):
                    compiled = ws.compile_instruction(dataset, instruction, chat=compiler_chat())
                st.session_state.sample_compiled = (signature, compiled)
                compiled_rows = None
            if compiled_rows is not None:
                compiled = ws.compiled_from_rows(compiled, compiled_rows.to_dict("records"))
            prompt = ws.prompt_with_compiled(prompt, compiled, gen.check_prompt)
        fit_bar = fit_slot.progress(0.0, text="Fitting…")
        sample_bar = sample_slot.progress(0.0, text="Sampling: waiting for the model")
        result = ws.fit_and_sample(
            gen, prompt, int(n), seed=int(seed),
            on_fit=lambda frac, text: fit_bar.progress(frac, text=text),
            on_step=lambda frac, text: sample_bar.progress(frac, text=text),
        )
    except InputError as e:
        fit_slot.empty()
        sample_slot.empty()
        st.error(str(e))
    else:
        result.dataset_label = label
        result.settings = {"train_steps": int(train_steps), "generator": gen_spec if kind != "embedded" else "embedded"}
        result.summary = ws.sample_summary(result.candidates, dataset.schema, dataset.seeds.records)
        if difflm:
            result.latent = ws.latent_figure(gen, int(n), int(seed))
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
fit = result.fit_report
how = "loaded from cache" if fit.get("cached") else f"ready in {fit.get('seconds', result.fit_seconds)} s"
used = result.settings.get("generator", "embedded")
what = f"generator {used}" if used != "embedded" else f"scaffold {'on' if result.scaffold else 'off'}"
trained = f", {result.settings['train_steps']} training steps" if result.settings.get("train_steps") else ""
st.caption(f"{result.n} candidates, seed {result.seed}, {what}{trained}; model {how}"
           + (f", final loss {fit['final_loss']}" if "final_loss" in fit else "") + f" · {result.dataset_label}")

applied = result.prompt.compiled
if applied:
    st.markdown(f"**Compiled from** *{applied.get('text', '')}*")
    if applied.get("edits"):
        st.dataframe(pd.DataFrame(ws.compiled_result_rows(applied)), hide_index=True, key="sample_compiled_used")
    for line in ws.compiled_messages(applied):
        st.warning(line, icon=":material/help:")
only_problems = st.toggle("Only records with problems", key="sample_only_problems")
rows = [r for r in result.summary.rows if r["error"] or r["seed_copy"] or r["duplicate"]] if only_problems \
    else result.summary.rows
st.dataframe(
    rows,
    hide_index=True,
    key="sample_records",
    column_config={
        "json": st.column_config.TextColumn("JSON", width="large"),
        "schema_valid": st.column_config.CheckboxColumn("schema-valid"),
        "seed_copy": st.column_config.CheckboxColumn("seed copy"),
    },
)
d1, d2 = st.columns(2)
d1.download_button("Download JSONL (all parsed records)", ws.records_jsonl(result.candidates),
                   file_name="samples.jsonl", mime="application/jsonl", on_click="ignore", key="sample_dl_all")
d2.download_button("Download JSONL (schema-valid only)",
                   ws.records_jsonl(result.candidates, only_valid_for=dataset.schema),
                   file_name="samples-valid.jsonl", mime="application/jsonl", on_click="ignore",
                   key="sample_dl_valid")

if result.latent is not None:
    st.subheader("Latent space")
    latent_fig, latent_caption = result.latent
    st.plotly_chart(latent_fig, key="sample_latent_chart")
    st.caption(latent_caption)
