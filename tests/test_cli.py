"""The command-line tool, run as a user runs it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from audio_files import speechlike, write_audio

from emotion_app.constants import LABEL_KEYS

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "emotion_app", *args], capture_output=True, text=True, cwd=ROOT)


def in_process(*args) -> subprocess.CompletedProcess:
    """`run` in this process: the command line's `main` with its stdout and stderr captured (a process
    per call cost 2 s of imports). This module runs the real process; others compare what it writes."""
    from emotion_app.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["emotion-app", *args], code, out.getvalue(), err.getvalue())


def test_predict_json_lines_and_failures(tiny_dir, tiny_engine, tmp_path):
    good = write_audio(tmp_path / "good.wav", speechlike(2.0), 16000, "wav")
    other = write_audio(tmp_path / "other.mp3", speechlike(3.0, 44100, seed=1), 44100, "mp3")
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    proc = run("predict", str(good), str(bad), str(other), "--model", str(tiny_dir), "--json", "--granularity", "frame")
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["file"] for d in lines] == [str(good), str(other)]
    for d in lines:
        assert list(d["scores"]) == list(LABEL_KEYS) and set(d["probabilities"]) == set(LABEL_KEYS)
        assert d["granularity"] == "frame" and d["frames"] and d["emotion"] in LABEL_KEYS
    assert lines[0]["duration_s"] == 2.0 and lines[1]["audio"]["sample_rate"] == 44100
    expected = tiny_engine.predict(good)
    got = [lines[0]["probabilities"][k] for k in expected.labels]
    np.testing.assert_allclose(got, expected.probabilities, rtol=0, atol=1e-6)
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}") and "not an audio or video file" in errors[0]


def test_predict_human_output(tiny_dir, tmp_path):
    good = write_audio(tmp_path / "a.flac", speechlike(0.6), 16000, "flac")
    proc = run("predict", str(good), "--model", str(tiny_dir))
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"{good}: ") and "%" in proc.stdout and "very short" in proc.stdout


def test_model_that_cannot_be_loaded_exits_2(tmp_path):
    proc = run("predict", "x.wav", "--model", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    wrong = in_process("predict", "x.wav", "--threads", "-1")
    assert wrong.returncode == 2 and "threads must be a whole number, 0 for one per physical core, not -1" in wrong.stderr
    env = {**os.environ, "EMOTION_APP_THREADS": "two"}
    serve = [sys.executable, "-m", "emotion_app", "serve", "--no-such-flag"]  # it never starts: a usage error either way
    served = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=60)
    assert served.returncode == 2 and "argument --threads: invalid int value: 'two'" in served.stderr


def test_help_does_not_import_torch():
    code = "import sys, emotion_app.cli.main as c; c.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.strip() == "False"
    proc = run("predict", "--help")
    assert proc.returncode == 0 and "--granularity" in proc.stdout


def test_make_checkpoint_tool(tmp_path):
    proc = run("make-checkpoint", str(tmp_path / "ck"), "--preset", "tiny")
    assert proc.returncode == 0
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.yaml", "configuration.json", "model.pt", "tokens.txt"]
    ref = Path(__file__).resolve().parents[2] / "shared" / "reference" / "emotion2vec_plus_large"
    if ref.is_dir():  # the hub's small files, byte for byte
        assert (tmp_path / "ck" / "tokens.txt").read_bytes() == (ref / "tokens.txt").read_bytes()
        assert (tmp_path / "ck" / "configuration.json").read_bytes() == (ref / "configuration.json").read_bytes()


def test_predict_frame_analysis_flags(tiny_dir, tmp_path):
    good = write_audio(tmp_path / "good.wav", speechlike(3.0), 16000, "wav")
    args = ("predict", str(good), "--model", str(tiny_dir), "--json", "--granularity", "frame")
    proc = run(*args, "--smoothing", "ewma", "--alpha", "0.5", "--causal", "--min-duration", "0")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["smoothing"] == {"method": "ewma", "window": 11, "alpha": 0.5, "zero_phase": False, "min_duration_s": 0.0}
    assert d["segments"][-1]["end"] == d["frames"][-1]["end"] and d["summary"]["num_segments"] == len(d["segments"])
    assert "mixed" in d and "smoothed_emotion" in d["frames"][0]
    bad = run(*args, "--smoothing", "majority", "--window", "8")
    assert bad.returncode == 2 and "odd number of frames from 3 to 51" in bad.stderr


def test_the_human_line_counts_in_words():
    """'1 turn', '3 turns', '1 segment': the line a person reads (a golden conversation, one speaker's
    turns set to one)."""
    from emotion_app.analysis.report import report_from_json
    from emotion_app.cli.predict import human

    data = json.loads((Path(__file__).parent / "golden" / "conversation_turns.json").read_text(encoding="utf-8"))
    data.update(timestamp="2026-12-06T12:00:00", output_dir="20261206_120000")  # the golden's "<varies>"
    data["timings"]["total"] = 1.0
    data["speakers"][0]["turns"], data["speakers"][1]["turns"] = 1, 3
    data["segments"] = data["segments"][:1]
    line = human(report_from_json(data))
    assert ", 1 segment" in line and ", 1 segments" not in line
    assert "of the talk, 1 turn\n" in line + "\n" and "1 turns" not in line
    assert line.endswith("of the talk, 3 turns")
