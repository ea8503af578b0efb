"""The page's "Your labels" tab: a labelled set -> counts -> a trained head (cross-validated WA/UA/F1,
confusion matrix) saved under `<outputs>/heads/<name>/` and used at once by this session's Analyze
tab; and the model's 9-class head evaluated on the same set.

The callbacks are module-level functions (tests call them); the heads a session trained live in the
Analyze tab's gr.State (a list of head folders), never in a global: other users do not see them.
"""

from __future__ import annotations

import html
from datetime import datetime
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from ...errors import EmotionAppError
from ...heads.dataset import Dataset, read_uploads
from ...heads.evaluate import evaluate_dataset, left_out_lines
from ...heads.store import HEADS_DIR, train_and_store
from ...outputs import write_output_folder
from ..i18n import error_message, t
from .common import Texts, bind, guarded

KIND_CHOICES = [("kind_logreg", "logreg"), ("kind_mlp", "mlp")]
UPLOAD_TYPES = [".zip", ".csv", ".tsv", ".jsonl", "audio", "video"]


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


def train_labels(
    engine, outputs_dir: Path, load_error, paths, name, kind, names, session_heads, lang="en", progress=gr.Progress()
):
    """Train a head on the upload and save it: (status, counts, CV metrics HTML, confusion PNG path,
    downloads, the session's head folders with the new one added)."""
    lang = lang or "en"
    with guarded(engine, load_error, lang, "training"):
        data = read_data(paths, lang)
        folder, run = train_and_store(
            engine, data, outputs_dir, name, kind=kind or "logreg", names=names or None,
            progress=partial(embedding_progress, progress, lang),
        )  # fmt: skip
    files = sorted(str(p) for p in folder.iterdir() if p.is_file())
    heads = [*(h for h in session_heads or [] if h != str(folder)), str(folder)]
    status = t("labels_trained", lang, name=folder.name, folder=f"{HEADS_DIR}/{folder.name}")
    return status, counts_table(data, lang), cv_html(run.metrics, lang), str(folder / "confusion.png"), files, heads


def evaluate_labels(engine, outputs_dir: Path, load_error, paths, label_map, lang="en", progress=gr.Progress()):
    """The 9-class head on the upload: (status, metrics HTML, confusion PNG path, downloads); the
    files are written to a new output folder."""
    lang = lang or "en"
    with guarded(engine, load_error, lang, "evaluation"):
        data = read_data(paths, lang)
        ev = evaluate_dataset(engine, data, label_map=label_map or None, progress=partial(embedding_progress, progress, lang))
        folder = write_output_folder(outputs_dir, None, None, None, datetime.now(), ev.files(lang))
    files = sorted(str(p) for p in folder.iterdir() if p.is_file())
    status = t("labels_evaluated", lang, n=ev.report["n"], folder=folder.name)
    return status, evaluation_html(ev.report, lang), str(folder / "confusion.png"), files


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State, heads_state: gr.State) -> None:
    """Lay out the tab in the current gr.Tabs and wire its events. `heads_state`: the Analyze tab's
    list of this session's head folders."""
    with texts(gr.Tab, label_key="tab_labels", id="labels"):
        texts(gr.Markdown, value_key="labels_intro")
        with gr.Row():
            with gr.Column(scale=1):
                data_in = texts(
                    gr.File, label_key="labels_data", file_count="multiple", file_types=UPLOAD_TYPES, type="filepath",
                    elem_id="labels-data",
                )  # fmt: skip
                check = texts(gr.Button, value_key="labels_check", size="sm")
                counts = texts(gr.Dataframe, label_key="labels_counts", interactive=False, elem_id="labels-counts")
            with gr.Column(scale=1):
                name = texts(gr.Textbox, "my_labels", label_key="head_name", elem_id="head-name")
                kind = texts(gr.Radio, label_key="head_kind", choice_keys=KIND_CHOICES, value="logreg")
                names = texts(gr.Textbox, label_key="label_names")
                train = texts(gr.Button, value_key="labels_train", variant="primary", elem_id="labels-train")
                label_map = texts(gr.Textbox, label_key="label_map")
                evaluate = texts(gr.Button, value_key="labels_evaluate", elem_id="labels-evaluate")
        status = gr.Markdown(elem_id="labels-status")
        with gr.Row():
            metrics = gr.HTML(elem_id="labels-metrics")
            confusion = texts(gr.Image, label_key="labels_confusion", type="filepath", interactive=False)
        downloads = texts(gr.File, label_key="downloads", file_count="multiple", interactive=False)
    check.click(check_data, [data_in, lang_state], [counts, status], api_visibility="private")
    train.click(
        bind(train_labels, engine, outputs_dir, load_error),
        [data_in, name, kind, names, heads_state, lang_state],
        [status, counts, metrics, confusion, downloads, heads_state],
        api_visibility="private",
        concurrency_limit=1,
    )
    evaluate.click(
        bind(evaluate_labels, engine, outputs_dir, load_error),
        [data_in, label_map, lang_state],
        [status, metrics, confusion, downloads],
        api_visibility="private",
        concurrency_limit=1,
    )
