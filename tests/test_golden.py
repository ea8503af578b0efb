"""result.json stays what it is: every mode's result.json, made again by the current code
(tests/golden/make_golden.py, in a subprocess: one torch thread, seeded checkpoint and audio),
equals the golden file committed beside it, byte for byte but for the values that differ between
runs of the same code (make_golden.VARIABLE, replaced by "<varies>")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))

import make_golden  # noqa: E402


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    root = Path(__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(GOLDEN / "make_golden.py"), "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_variable_fields_are_named():
    """What the comparison ignores, explicitly: nothing else is replaced."""
    assert make_golden.VARIABLE == ("timestamp", "output_dir", "timings", "files")
    result = {"emotion": "happy", "timestamp": "2026-12-06T20:00:00", "timings": {"total": 1.5}, "probabilities": {"a": 0.25}}
    assert make_golden.normalised(result) == {
        "emotion": "happy", "timestamp": "<varies>", "timings": {"total": "<varies>"}, "probabilities": {"a": 0.25},
    }  # fmt: skip


def test_every_case_has_a_golden_file():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(make_golden.CASES)


@pytest.mark.parametrize("case", make_golden.CASES)
def test_result_json_equals_the_golden_file(regenerated, case):
    made = (regenerated / f"{case}.json").read_text(encoding="utf-8")
    golden = (GOLDEN / f"{case}.json").read_text(encoding="utf-8")
    if made != golden:  # name the first key that differs, then fail on the text
        a, b = json.loads(made), json.loads(golden)
        keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
        assert list(a) == list(b) and not keys, f"{case}: key order {list(a)} vs {list(b)}; values differ at {keys}"
    assert made == golden
