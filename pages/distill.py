"""Distillation page: train a small student from the chosen teacher, live, beside a paired scratch student."""

import streamlit as st

from compression.core import InputError, readable
from compression.distillation import (
    MAX_TEMPERATURE,
    DistillConfig,
    build_student,
    check_student_size,
    distill,
    hint_layers,
    history_run,
    labeled_mask,
    prepare_training,
    soft_targets,
    student_layout,
    teacher_params,
)
from compression.metrics import count_params
from compression.plots import distill as plots_distill
from ui import jobs
from ui.common import current_model
from ui.routing import ensure_routed

JOB, META, REFUSED, RUNS = "kd_job", "kd_meta", "kd_refused", "kd_runs"

ensure_routed()
st.title("Distillation")
with st.expander("Concept: what is distillation, and what is the loss?"):
    st.markdown("A big **teacher** already classifies well. A small **student** is trained to match the teacher's "
                "*softened* class probabilities as well as the true labels (Hinton et al. 2015):")
    st.latex(r"L = \alpha\,\mathrm{CE}(y,\,s) + (1-\alpha)\,T^2\,"
             r"\mathrm{KL}\!\left(\mathrm{softmax}(t/T)\,\middle\|\,\mathrm{softmax}(s/T)\right)")
    st.markdown(
        "*s* and *t* are the student's and teacher's logits, *y* the true label. A temperature **T > 1** flattens "
        "the teacher's distribution so the small probabilities it gives to *wrong* classes (a 3 that looks a bit "
        "like an 8) become visible: that similarity structure is the \"dark knowledge\" the labels lack.\n\n"
        "**Why T².** The gradient of the softened KL with respect to the student's logits shrinks like 1/T² "
        "(for large T it is about (sᵢ − tᵢ)/(N·T²)). Multiplying by T² keeps the soft term's pull on the same "
        "scale for every T, so changing T changes *what* is taught, not how hard: α keeps its meaning.\n\n"
        "**A common bug.** The design notes this project started from write the soft term as "
        "`CrossEntropyLoss()(teacher_logits/T, student_logits/T)`. `CrossEntropyLoss(input, target)` treats its "
        "*second* argument as the target, so that swaps input and target: the loss becomes "
        "Σᵢ (sᵢ/T)·(−log softmax(t/T)ᵢ), which is **linear** in the student's logits. Its gradient never vanishes, "
        "it has **no minimum** (it falls forever as the logits run to −∞), so training with it drives accuracy "
        "towards chance. This page uses the KL form above, tested against `F.kl_div`.\n\n"
        "**Honest baseline.** Every run trains a **scratch** twin: the same student, the same initial weights, the "
        "same batches and the same number of steps, on labels alone. With all labels on digits the teacher is "
        "almost certain on the training images, so its soft targets add little: distillation need *not* beat "
        "scratch there (try it: the result below says by how much). It shines when labels are scarce: with the "
        "**labeled fraction** at 5%, the students see one true label in twenty, and the distilled one also sees "
        "the teacher's soft targets on every training image (the caption under the sliders counts them).")

picked = current_model()
if picked is None:
    st.stop()
teacher, facts = picked
if teacher.module is None:
    st.warning("Distillation needs a PyTorch teacher: ONNX models run without gradients or training data here. "
               "Pick a zoo model, or upload weights for a zoo architecture.")
    st.stop()
if not teacher.dataset.has_train:
    st.warning(f"The teacher's data ({teacher.dataset.name}) has no training split, and distillation trains on one.")
    st.stop()

prepare_training()
st.caption(f"Teacher: **{teacher.name}** · {facts.params:,} parameters · {facts.accuracy:.2%} held-out accuracy "
           f"· the student is an MLP trained on {teacher.dataset.name}")
left, mid, right = st.columns(3)
alpha = left.slider("α (weight of the true labels)", 0.0, 1.0, 0.5, 0.05, key="alpha", bind="query-params",
                    help="α = 1: labels only (no teacher); α = 0: teacher only.")
temperature = left.slider("Temperature T", 0.5, 20.0, 4.0, 0.5, key="temperature", bind="query-params",
                          help="T = 1: the teacher's plain probabilities; higher T softens them.")
width = mid.slider("Student hidden units", 4, 256, 32, 4, key="student_width", bind="query-params")
layers = mid.radio("Student hidden layers", [1, 2], horizontal=True, key="student_layers", bind="query-params",
                   help="Two layers: the second has half the units of the first.")
fraction = right.slider("Labeled fraction", 0.01, 1.0, 0.05, 0.01, key="labeled_fraction", bind="query-params",
                        help="Fraction of training images whose true label both students may use; the teacher's "
                             "soft targets cover all of them.")
epochs = right.slider("Epochs", 1, 60, 20, 1, key="epochs", bind="query-params")
with st.expander("More: seed, feature (hint) distillation"):
    a, b = st.columns(2)
    seed = a.number_input("Seed", 0, 10_000, 0, key="kd_seed", bind="query-params")
    hint = b.selectbox("Hint layer of the teacher", ["none", *hint_layers(teacher)], key="hint_layer",
                   bind="query-params",
                       help="The student's last hidden layer, through a learned projection, also learns to predict "
                            "this teacher layer's output (FitNets-style feature distillation).")

hidden = (width,) if layers == 1 else (width, max(1, width // 2))
try:
    config = DistillConfig(alpha=alpha, temperature=min(temperature, MAX_TEMPERATURE), student_hidden=hidden,
                           labeled_fraction=fraction, epochs=epochs, seed=int(seed),
                           hint_layer=None if hint == "none" else hint)
    student = build_student(config, teacher.dataset)
    check_student_size(student, teacher)
    student_size, teacher_size = count_params(student), teacher_params(teacher)
except InputError as exc:
    st.error(str(exc))
    config = None
else:
    st.caption(f"Student {student_layout(config, teacher.dataset)}: {student_size:,} parameters "
               f"({student_size / teacher_size:.1%} of the teacher) · "
               f"{int(labeled_mask(len(teacher.dataset.y_train), fraction, config.seed).sum()):,} of "
               f"{len(teacher.dataset.y_train):,} labels")


def start(config: DistillConfig) -> None:
    """Start a run unless one is already running in this session (refused with a message)."""
    if jobs.busy(JOB, REFUSED, "A distillation"):
        return
    st.session_state[REFUSED] = None
    label = f"student {student_layout(config, teacher.dataset)} α={config.alpha:g} T={config.temperature:g}"
    st.session_state[JOB] = jobs.start(lambda: distill(teacher, config), "distill", teacher.name, label,
                                       config.to_dict(), lambda result, steps: history_run(
                                           result, [s.to_row() for s in steps], label))
    st.session_state[META] = {"teacher": teacher.name, "teacher_accuracy": facts.accuracy, "config": config,
                              "student": student_layout(config, teacher.dataset),
                              "test_images": len(teacher.dataset.y_test), "status": "running"}


job = st.session_state.get(JOB)
running = job is not None and job.running
st.button("Start distillation", type="primary", key="kd_start", on_click=start, args=(config,),
          disabled=config is None)
if running and st.session_state.get(REFUSED):
    st.error(st.session_state[REFUSED])


@st.fragment(run_every=jobs.poll_every(st.session_state.get(JOB)))
def live() -> None:
    """Progress, live curves and results of this session's run; polls only while it runs."""
    job, meta = st.session_state.get(JOB), st.session_state.get(META)
    if job is None:
        st.info("Set α, T, the student and the labeled fraction, then press **Start distillation**.")
        return
    steps = job.steps
    rows = [s.to_row() for s in steps]
    done_fraction = steps[-1].fraction if steps else 0.0
    run_config = meta["config"]
    jobs.progress_bar(job, done_fraction, f"Training student and scratch twin: {done_fraction:.0%}", "kd_cancel")
    st.plotly_chart(plots_distill.distill_curves(rows, meta["teacher_accuracy"], run_config.epochs))

    def finished(result) -> None:
        meta.update(run_id=job.run_id)  # the job recorded the run itself
        keep_run(result, meta)

    jobs.settle(job, meta, finished)
    jobs.ended(job, f"Cancelled at {done_fraction:.0%}. The curves so far stay above; start again any time.")
    if job.status == "done":
        show_result(job.result, meta)


def keep_run(result, meta) -> None:
    """Keep this session's finished runs, newest first, so a new result does not wipe out the old one."""
    c = result.config
    runs = st.session_state.setdefault(RUNS, [])
    runs.insert(0, {"teacher": meta["teacher"], "student": meta["student"], "α": f"{c.alpha:g}",
                    "T": f"{c.temperature:g}", "labels": readable.percent(c.labeled_fraction, 0), "epochs": c.epochs,
                    "seed": c.seed, "distilled": readable.percent(result.student_accuracy, 2),
                    "scratch": readable.percent(result.scratch_accuracy, 2),
                    "gain": f"{readable.points(result.gain)} "
                            f"({round(result.gain * meta['test_images']):+d} images)"})
    del runs[8:]


def runs_table() -> None:
    runs = st.session_state.get(RUNS)
    if runs:
        st.markdown("**Runs in this session** (newest first)")
        st.dataframe(runs, hide_index=True)
        st.caption(f"{readable.one_image(st.session_state[META]['test_images'])} Compare seeds before "
                   "trusting a gain of a point or less.")


def show_result(result, meta) -> None:
    c = result.config
    st.subheader(f"Result: {meta['teacher']} → student {meta['student']}")
    st.caption(f"α = {c.alpha:g} · T = {c.temperature:g} · {c.labeled_fraction:.0%} of the labels · {c.epochs} epochs"
               f" · seed {c.seed}" + (f" · hint from {c.hint_layer}" if c.hint_layer else ""))
    cols = st.columns(5)
    cols[0].metric("Distilled student", readable.percent(result.student_accuracy, 2),
                   f"{readable.points(result.gain)} vs scratch", help=readable.one_image(meta["test_images"]))
    cols[1].metric("Scratch student", readable.percent(result.scratch_accuracy, 2))
    cols[2].metric("Teacher", readable.percent(result.teacher_accuracy, 2))
    cols[3].metric("Agreement with teacher", readable.percent(result.agreement, 2), help="Top-1: same predicted class")
    cols[4].metric("Student parameters", f"{result.student_params:,}",
                   f"{result.student_params / result.teacher_params:.1%} of the teacher's {result.teacher_params:,}",
                   delta_color="off", delta_arrow="off")
    used = f"{result.labeled_images:,} of {result.train_images:,} training labels"
    short = result.config.epochs < 10  # the scratch twin learns from few labels: it needs epochs to catch up
    if result.gain > 0.005 and short:
        st.info(f"Distillation is ahead of the paired scratch student by {100 * result.gain:.1f} points ({used}), "
                f"but after only {result.config.epochs} epochs the scratch student may not have converged: "
                "run 10+ epochs before drawing conclusions.")
    elif result.gain > 0.005:
        st.success(f"Distillation beat the paired scratch student by {100 * result.gain:.1f} points ({used}).")
    else:
        st.warning(f"Distillation did not beat the paired scratch student here ({100 * result.gain:+.1f} points, "
                   f"{used}). With plenty of labels on an easy set the teacher's soft targets add little beyond "
                   "the labels; lower the labeled fraction to see where distillation helps. One test image is "
                   f"{100 / meta['test_images']:.2f} points, so compare a few seeds.")
    st.plotly_chart(plots_distill.size_latency_bars(result.student_size_bytes, result.teacher_size_bytes,
                                                    result.student_latency_ms, result.teacher_latency_ms))
    saved = f" · saved to the run history as {meta['run_id']} (see Compare)" if meta.get("run_id") else ""
    st.caption(f"{result.steps} steps in {result.elapsed_s:.1f} s for both students · sizes are real torch.save "
               f"files · latency is the median of 30 timed runs on one image{saved}")


live()
runs_table()

st.subheader("Soft targets: what the teacher teaches")
n_test = len(teacher.dataset.y_test)
index = st.number_input("Test image", 0, n_test - 1, 0, key="kd_image", help=f"0 to {n_test - 1}",
                        bind="query-params")
view = soft_targets(teacher, int(index), min(temperature, MAX_TEMPERATURE))
pic, bars = st.columns([1, 3])
pic.plotly_chart(plots_distill.digit_image(view.image, f"test image {view.index}: a {view.classes[view.label]}"))
bars.plotly_chart(plots_distill.soft_targets_bars(view.classes, view.probs_t1, view.probs_t, view.temperature,
                                                  view.classes[view.label]))
