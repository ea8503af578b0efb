"""The page's fine-tune job (web/ui/tab_labels.py over finetune/job.py), without a browser: the
upload fine-tuned in a process of its own, one job at a time, its progress read from the file the
job writes, the finished folder served beside the base model and offered in the model list; and a
cancel that kills the job's whole process group."""

from __future__ import annotations

import os
import time

import gradio as gr
import pytest
from audio_files import speechlike, write_audio

from emotion_app.finetune.job import FINAL
from emotion_app.modelset import ModelSet
from emotion_app.outputs import owned_by
from emotion_app.web.ui import tab_labels
from emotion_app.web.ui.tab_labels import JobForm


@pytest.fixture(scope="module")
def upload(tmp_path_factory) -> list[str]:
    """A CSV table and its six clips, as the page uploads them (two labels, three clips each)."""
    root = tmp_path_factory.mktemp("upload")
    rows = []
    for k, label in enumerate(("calm", "tense")):
        for j in range(3):
            name = f"{label}{j}.wav"
            write_audio(root / name, speechlike(0.8 + 0.2 * j, seed=10 * k + j), 16000)
            rows.append(f"{name},{label}\n")
    (root / "set.csv").write_text("path,label\n" + "".join(rows), encoding="utf-8")
    return [str(root / "set.csv"), *(str(root / r.split(",")[0]) for r in rows)]


def until(condition, timeout_s: float = 120.0):
    """Wait for `condition()` to return something true (polling, bounded); return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout_s} s")


def test_a_job_runs_apart_one_at_a_time_and_its_model_is_served(tiny_engine, upload, tmp_path):
    models = ModelSet(tiny_engine)
    jobs = tab_labels.jobs_for(tmp_path, models)
    form = JobForm(lang="en", data=upload, model_name="my calm", epochs=1, top=1)
    shown = tab_labels.start_job(jobs, tiny_engine, tmp_path, None, form)
    assert shown["job_status"] == "Starting the fine-tune…" and shown["timer"].active
    with pytest.raises(gr.Error, match="A fine-tune is running"):  # one at a time
        tab_labels.start_job(jobs, tiny_engine, tmp_path, None, form)
    with pytest.raises(gr.Error, match="已有微调任务在运行"):
        tab_labels.start_job(jobs, tiny_engine, tmp_path, None, JobForm(lang="zh", data=upload))
    seen = set()
    progress = until(lambda: (p := jobs.progress(), seen.add(p["state"]))[0]["state"] in FINAL and p)
    assert progress["state"] == "done", progress
    assert [r["epoch"] for r in progress["curve"]] == [1] and progress["labels"] == ["calm", "tense"]
    assert seen - {"done"}  # the progress was read while the job ran
    polled = tab_labels.poll_job(jobs, models, "en")
    assert polled["job_status"].startswith("Model **my_calm** is ready") and not polled["timer"].active
    assert ("my_calm", "my_calm: calm · tense") in [(n, s) for s, n in polled["model"]["choices"]]
    assert models.engine("my_calm").labels == ("calm", "tense")
    assert (tmp_path / "models" / "my_calm" / "training_card.json").is_file()
    with pytest.raises(gr.Error, match="'my_calm' exists already"):  # never replaced: another's, or served
        tab_labels.start_job(jobs, tiny_engine, tmp_path, None, form, models=models)
    again = ModelSet(tiny_engine)  # a server started again serves the models its page made
    tab_labels.jobs_for(tmp_path, again)
    assert again.names == (again.base_name, "my_calm") and again.labels("my_calm") == ("calm", "tense")


def test_cancel_kills_the_job_and_every_process_it_started(tiny_engine, upload, tmp_path):
    """Its user's only: another logged-in user sees that a job runs, not its progress, and cannot cancel it."""
    jobs = tab_labels.jobs_for(tmp_path, None)
    assert tab_labels.poll_job(jobs, None)["job_status"] == "No fine-tune is running."
    with owned_by("ana"):
        tab_labels.start_job(jobs, tiny_engine, tmp_path, None, JobForm(data=upload, epochs=30, top=1))
    pid = jobs._proc.pid
    until(lambda: jobs.progress()["state"] in ("features", "training"))  # in the middle of its work
    with owned_by("bo"):
        assert tab_labels.poll_job(jobs, None)["job_status"].startswith("Another user's fine-tune is running")
        assert tab_labels.cancel_job(jobs, "zh")["job_status"] == "另一位用户的微调正在运行；它结束后您才能开始。"
    assert jobs.running()
    with owned_by("ana"):
        shown = tab_labels.cancel_job(jobs, "en")
    assert shown["job_status"] == "The fine-tune was cancelled." and not shown["timer"].active
    assert jobs._proc.poll() is not None and not jobs.running()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the process group is gone
    assert not (tmp_path / "models" / "my_model").exists()
    assert not jobs.cancel()  # nothing runs
