"""The page's "Your labels" tab: a labelled set -> counts -> a trained head (cross-validated WA/UA/F1,
confusion matrix) saved under `<outputs>/heads/<name>/` and used at once by this session's Analyze
tab; the model's 9-class head evaluated on the same set; and the model itself fine-tuned on it,
as a job in its own process (finetune/job.py: one at a time, progress polled by a gr.Timer from
the job's progress file, cancel), whose folder `<outputs>/models/<name>/` is then served beside the
base model (modelset.py) and offered in the Analyze tab's model list.

The callbacks are module-level functions (tests call them); the heads a session trained live in the
Analyze tab's gr.State (a list of head folders), never in a global: other users do not see them.
The fine-tuned models are the server's, as `serve --models` folders are: every user can choose them.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from ...errors import EmotionAppError
from ...finetune.export import CARD_FILE
from ...finetune.job import FINAL, JobRunner, JobSpec
from ...heads.dataset import Dataset, read_uploads
from ...heads.evaluate import evaluate_dataset, left_out_lines
from ...heads.store import HEADS_DIR, head_folder_name, train_and_store
from ...outputs import OWNER, write_output_folder
from ..i18n import error_message, t
from .boundary import Form, View
from .common import PRIVATE, Texts, guarded, model_list

logger = logging.getLogger(__name__)

KIND_CHOICES = [("kind_logreg", "logreg"), ("kind_mlp", "mlp")]
UPLOAD_TYPES = [".zip", ".csv", ".tsv", ".jsonl", "audio", "video"]
MODELS_DIR = "models"  # fine-tuned models, under the outputs folder
JOBS_DIR = "finetune_jobs"  # the jobs' folders (spec, progress, log, a copy of the upload)
POLL_S = 1.0


def read_data(paths, lang: str = "en") -> Dataset:
    """The uploaded labelled set (a zip, or a table with its audio files), or gr.Error."""
    if not paths:
        raise gr.Error(t("labels_need", lang))
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return read_uploads(paths, [Path(p).name for p in paths])


def counts_table(dataset: Dataset, lang: str = "en") -> pd.DataFrame:
    return pd.DataFrame(list(dataset.counts().items()), columns=[t("col_label", lang), t("col_files", lang)])


def check_data(paths, lang: str = "en"):
    """(counts table, status line) of the upload; bad input is a gr.Error saying what to fix."""
    lang = lang or "en"
    try:
        data = read_data(paths, lang)
    except EmotionAppError as exc:
        raise gr.Error(error_message(exc, lang)) from None
    speakers = t("labels_speakers", lang, n=len(data.speakers)) if data.has_speakers else ""
    status = t("labels_checked", lang, files=len(data.items), labels=len(data.labels), speakers=speakers)
    return counts_table(data, lang), status


def embedding_progress(progress, lang: str, done: int, total: int) -> None:
    progress((done, max(total, 1)), desc=t("progress_embeddings", lang), unit="files")


def scores_html(metrics: dict, lang: str = "en") -> str:
    """Per-class precision, recall, F1 and files as a table."""
    head = "".join(f"<th>{t(k, lang)}</th>" for k in ("col_label", "col_precision", "col_recall"))
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td>"
        f"<td>{v['f1']:.3f}</td><td>{v['support']}</td></tr>"
        for k, v in metrics["per_class"].items()
    )
    return f'<table class="ea-summary"><tr>{head}<th>F1</th><th>{t("col_files", lang)}</th></tr>{rows}</table>'


def cv_html(metrics: dict, lang: str = "en") -> str:
    """The cross-validation of a training run: WA, UA, macro F1 (mean ± std over folds), per class,
    and the files left out."""
    cv = metrics["cv"]
    how = t("cv_speaker" if cv["grouping"] == "speaker" else "cv_stratified", lang)
    rows = "".join(
        f"<tr><th>{name}</th><td>{cv[k]['mean']:.3f} ± {cv[k]['std']:.3f}</td></tr>"
        for name, k in (("WA", "wa"), ("UA", "ua"), ("macro F1", "macro_f1"))
    )
    notes = [*cv["notes"], *left_out_lines({**metrics["data"], "unmapped": metrics["data"]["left_out"]})]
    return (
        f"<h4>{t('cv_title', lang, folds=cv['folds'], how=how)}</h4>"
        f'<table class="ea-summary"><tr><th>{t("metric", lang)}</th><th>{t("metric_mean", lang)}</th></tr>{rows}</table>'
        f"{scores_html(cv['pooled'], lang)}{notes_html(notes, lang)}"
    )


def evaluation_html(report: dict, lang: str = "en") -> str:
    names = (("WA", "wa"), ("UA", "ua"), ("macro F1", "macro_f1"))
    rows = "".join(f"<tr><th>{n}</th><td>{report[k]:.3f}</td></tr>" for n, k in names)
    return f'<table class="ea-summary">{rows}</table>{scores_html(report, lang)}{notes_html(left_out_lines(report), lang)}'


def notes_html(lines: list[str], lang: str) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<div class="ea-note">{t("skipped_files", lang)}:<ul>{items}</ul></div>'


@dataclass(frozen=True)
class LabelsForm(Form):
    """The tab's form: the labelled set, the new head's name, kind and label names, the label map
    of the 9-class evaluation, and the heads this session trained (the Analyze tab's gr.State)."""

    data: list | None = None
    name: str = "my_labels"
    kind: str = "logreg"
    names: str = ""
    label_map: str = ""
    session_heads: list | None = None


def train_labels(engine, outputs_dir: Path, load_error, form: LabelsForm, progress=gr.Progress()) -> dict:
    """Train a head on the upload and save it: the status, counts, CV metrics HTML, confusion PNG
    path, downloads, and the session's head folders with the new one added."""
    lang = form.lang
    with guarded(engine, load_error, lang, "training"):
        data = read_data(form.data, lang)
        folder, run = train_and_store(
            engine, data, outputs_dir, form.name, kind=form.kind or "logreg", names=form.names or None,
            progress=partial(embedding_progress, progress, lang),
        )  # fmt: skip
    heads = [*(h for h in form.session_heads or [] if h != str(folder)), str(folder)]
    return {
        **drawn_folder(folder, t("labels_trained", lang, name=folder.name, folder=f"{HEADS_DIR}/{folder.name}")),
        "counts": counts_table(data, lang),
        "metrics": cv_html(run.metrics, lang),
        "session_heads": heads,
    }


def evaluate_labels(engine, outputs_dir: Path, load_error, form: LabelsForm, progress=gr.Progress()) -> dict:
    """The 9-class head on the upload: the status, metrics HTML, confusion PNG path and downloads;
    the files are written to a new output folder."""
    lang = form.lang
    with guarded(engine, load_error, lang, "evaluation"):
        data = read_data(form.data, lang)
        step = partial(embedding_progress, progress, lang)
        ev = evaluate_dataset(engine, data, label_map=form.label_map or None, progress=step)
        folder = write_output_folder(outputs_dir, None, None, None, datetime.now(), ev.files(lang))
    status = t("labels_evaluated", lang, n=ev.report["n"], folder=folder.name)
    return {**drawn_folder(folder, status), "metrics": evaluation_html(ev.report, lang)}


class ModelExists(EmotionAppError):
    """A fine-tune's model name is taken: it would replace a served model, or another user's."""

    code = "model_exists"


@dataclass(frozen=True)
class JobForm(Form):
    """The fine-tune job's form: the labelled set (the tab's upload), the model's name, epochs and
    the number of top blocks that get adapters."""

    data: list | None = None
    model_name: str = "my_model"
    epochs: int = 5
    top: int = 4


def jobs_for(outputs_dir: Path, models) -> JobRunner:
    """The server's fine-tune jobs; a finished job's folder is served at once (`models.add`), and so
    are the models earlier jobs wrote (`<outputs>/models/<name>/`, read when the page is built)."""

    def served(progress: dict) -> None:
        if models is not None:
            folder = Path(progress["folder"])
            models.add(folder.name, folder)

    if models is not None:
        for card in sorted((Path(outputs_dir) / MODELS_DIR).glob(f"*/{CARD_FILE}")):
            try:
                models.add(card.parent.name, card.parent)
            except EmotionAppError as exc:  # a folder this server cannot load (say, --backend onnx)
                logger.warning("not served: %s", exc)
    return JobRunner(Path(outputs_dir) / JOBS_DIR, on_done=served)


def start_job(jobs: JobRunner, engine, outputs_dir: Path, load_error, form: JobForm, *, models=None) -> dict:
    """Start a fine-tune of the served base model on the upload (checked first), in its own process,
    as the page's logged-in user's: the status line and the progress timer switched on. A job that
    runs already, or a model name that is taken (served, or written before), is a gr.Error."""
    lang = form.lang
    with guarded(engine, load_error, lang, "fine-tune"):
        read_data(form.data, lang)  # a bad upload is said now, not by the job
        paths = [form.data] if isinstance(form.data, (str, Path)) else list(form.data)
        name = head_folder_name(form.model_name)
        if (Path(outputs_dir) / MODELS_DIR / name).exists() or (models is not None and name in models.names):
            raise ModelExists(f"A model named {name!r} exists already on this server; choose another name.")
        options = {"epochs": int(form.epochs), "top": int(form.top) or None, "seed": 0}
        spec = JobSpec(data=[str(p) for p in paths], names=[Path(p).name for p in paths],
                       out=str(Path(outputs_dir) / MODELS_DIR / name), model=str(engine.model_dir), options=options,
                       owner=OWNER.get())  # fmt: skip
        jobs.start(spec)
    return {"job_status": t("ft_starting", lang), "timer": gr.Timer(active=True)}


def job_text(progress: dict, lang: str = "en") -> str:
    """A job's progress in words."""
    state = progress.get("state", "none")
    if state == "features":
        return t("ft_features", lang, done=progress["done"], total=progress["total"])
    if state == "training":
        text = t("ft_training", lang, done=progress["done"], total=progress["total"], epochs=progress.get("epochs", "?"))
        curve = progress.get("curve") or []
        return text + ("; " + t("ft_epoch", lang, epoch=curve[-1]["epoch"], ua=f"{curve[-1]['val_ua']:.3f}") if curve else "")
    if state == "done":
        ua = (progress.get("validation") or {}).get("ua")
        return t("ft_done", lang, name=Path(progress["folder"]).name, ua="-" if ua is None else f"{ua:.3f}")
    if state == "failed":
        return t("ft_failed", lang, error=progress.get("error", ""))
    return t({"starting": "ft_starting", "cancelled": "ft_cancelled"}.get(state, "ft_none"), lang)


def poll_job(jobs: JobRunner, models, lang: str = "en") -> dict:
    """The timer's tick: the job's progress; once it has ended, the timer off and the Analyze tab's
    model list with the new model. Another user's job is only said to run."""
    if jobs.owner != OWNER.get():
        return {"job_status": t("ft_other" if jobs.running() else "ft_none", lang), "timer": gr.Timer(active=False)}
    progress = jobs.progress()
    out = {"job_status": job_text(progress, lang)}
    if progress["state"] in (*FINAL, "none"):
        out["timer"] = gr.Timer(active=False)
        if progress["state"] == "done" and models is not None:
            jobs.wait(5.0)  # the model is served once the job's watcher has added it
            out["model"] = model_list(models)
    return out


def cancel_job(jobs: JobRunner, lang: str = "en") -> dict:
    """Stop the running job (its whole process group): the user's own only."""
    if jobs.owner != OWNER.get():
        return {"job_status": t("ft_other" if jobs.running() else "ft_none", lang), "timer": gr.Timer(active=False)}
    jobs.cancel()
    return {"job_status": job_text(jobs.progress(), lang), "timer": gr.Timer(active=False)}


def drawn_folder(folder: Path, status: str) -> dict:
    """The status line, confusion matrix and downloads of a run's folder."""
    files = sorted(str(p) for p in folder.iterdir() if p.is_file())
    return {"status": status, "confusion": str(folder / "confusion.png"), "downloads": files}


def build(
    texts: Texts,
    engine,
    outputs_dir: Path,
    load_error: str | None,
    lang_state: gr.State,
    heads_state: gr.State,
    models=None,
    picker=None,
) -> None:
    """Lay out the tab in the current gr.Tabs and wire its events. `heads_state`: the Analyze tab's
    list of this session's head folders; `models`: the served models and `picker` the Analyze
    tab's list of them (the fine-tune job shows with both, on the torch backend)."""
    v = View(lang=lang_state, session_heads=heads_state)
    with texts(gr.Tab, label_key="tab_labels", id="labels"):
        texts(gr.Markdown, value_key="labels_intro")
        with gr.Row():
            with gr.Column(scale=1):
                v["data"] = texts(
                    gr.File, label_key="labels_data", file_count="multiple", file_types=UPLOAD_TYPES, type="filepath",
                    elem_id="labels-data",
                )  # fmt: skip
                check = texts(gr.Button, value_key="labels_check", size="sm")
                v["counts"] = texts(gr.Dataframe, label_key="labels_counts", interactive=False, elem_id="labels-counts")
            with gr.Column(scale=1):
                v["name"] = texts(gr.Textbox, "my_labels", label_key="head_name", elem_id="head-name")
                v["kind"] = texts(gr.Radio, label_key="head_kind", choice_keys=KIND_CHOICES, value="logreg")
                v["names"] = texts(gr.Textbox, label_key="label_names")
                train = texts(gr.Button, value_key="labels_train", variant="primary", elem_id="labels-train")
                v["label_map"] = texts(gr.Textbox, label_key="label_map")
                evaluate = texts(gr.Button, value_key="labels_evaluate", elem_id="labels-evaluate")
        v["status"] = gr.Markdown(elem_id="labels-status")
        with gr.Row():
            v["metrics"] = gr.HTML(elem_id="labels-metrics")
            v["confusion"] = texts(gr.Image, label_key="labels_confusion", type="filepath", interactive=False)
        v["downloads"] = texts(gr.File, label_key="downloads", file_count="multiple", interactive=False)
        if models is not None and picker is not None and engine.options.backend == "torch" and not engine.remote:
            v["model"] = picker
            _job_section(texts, v, engine, outputs_dir, load_error, models)
    check.click(check_data, v.outputs("data", "lang"), v.outputs("counts", "status"), **PRIVATE)
    drawn = ("status", "metrics", "confusion", "downloads")
    train.click(
        v.handler(train_labels, engine, outputs_dir, load_error, form=LabelsForm), v.inputs(LabelsForm),
        v.outputs(*drawn, "counts", "session_heads"), concurrency_limit=1, **PRIVATE,
    )  # fmt: skip
    evaluate.click(
        v.handler(evaluate_labels, engine, outputs_dir, load_error, form=LabelsForm), v.inputs(LabelsForm), v.outputs(*drawn),
        concurrency_limit=1, **PRIVATE,
    )  # fmt: skip


def _job_section(texts: Texts, v: View, engine, outputs_dir: Path, load_error, models) -> None:
    """The fine-tune job: its options, start and cancel, and the progress the timer polls."""
    jobs = jobs_for(outputs_dir, models)
    with texts(gr.Accordion, label_key="ft_title", open=False, elem_id="finetune"):
        texts(gr.Markdown, value_key="ft_intro")
        with gr.Row():
            v["model_name"] = texts(gr.Textbox, "my_model", label_key="ft_name", elem_id="ft-name")
            v["epochs"] = texts(gr.Slider, 1, 30, value=5, step=1, label_key="ft_epochs", elem_id="ft-epochs")
            blocks = engine.model.num_blocks  # the served model's: at most all of them train
            v["top"] = texts(gr.Slider, 1, blocks, value=min(4, blocks), step=1, label_key="ft_top", elem_id="ft-top")
        with gr.Row():
            start = texts(gr.Button, value_key="ft_start", variant="primary", elem_id="ft-start")
            cancel = texts(gr.Button, value_key="ft_cancel", elem_id="ft-cancel")
        v["job_status"] = gr.Markdown(elem_id="ft-status")
        v["timer"] = gr.Timer(POLL_S, active=False)
    start.click(
        v.handler(start_job, jobs, engine, outputs_dir, load_error, form=JobForm, keywords={"models": models}), v.inputs(JobForm),
        v.outputs("job_status", "timer"), **PRIVATE,
    )  # fmt: skip
    cancel.click(v.handler(cancel_job, jobs), v.outputs("lang"), v.outputs("job_status", "timer"), **PRIVATE)
    v["timer"].tick(v.handler(poll_job, jobs, models), v.outputs("lang"), v.outputs("job_status", "timer", "model"),
                    show_progress="hidden", **PRIVATE)  # fmt: skip
