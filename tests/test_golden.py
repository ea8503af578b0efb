"""result.json stays what it is: every mode's result.json, made again by the current code
(tests/golden/make_golden.py, in a subprocess: one torch thread, seeded checkpoint and audio),
equals the golden file committed beside it, but for the values that differ between runs of the
same code (make_golden.VARIABLE, replaced by "<varies>").

Byte for byte on a CPU like the one that made the files; on another the model's fp32 sums run in
another order (AVX2 against AVX-512: probabilities 2e-8 apart), and a value rounded for the file
can land on the other side of its last digit (a frame's confidence 0.7311 against 0.731). So the
text must be the same with its numbers masked (layout, keys, order, every string), and each number
the same to its last rounded digit (`close`)."""

from __future__ import annotations

import json
import math
import os
import re
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


NUMBER = re.compile(r"-?\d+(?:\.(\d+))?(?:[eE][-+]?\d+)?")
ROUNDED = 6  # decimals: a float written with at most these was rounded for the file


def close(a: float, b: float) -> bool:
    """The same number as two CPUs give it: rounded values to their last digit (one unit of the
    longer's last decimal), full-precision ones to 1e-5 relative (the FunASR parity of fp32)."""
    digits = max(len(NUMBER.fullmatch(repr(x))[1] or "") if "e" not in repr(x) else 99 for x in (a, b))
    if digits <= ROUNDED:
        return abs(a - b) <= 1.0001 * 10.0**-digits
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7)


def differences(made, golden, path: str = "") -> list[str]:
    """Where `made` is not `golden`: keys and their order, lengths, strings and ints exactly; floats by `close`."""
    if isinstance(golden, float) and isinstance(made, float):
        return [] if close(made, golden) else [f"{path}: {made!r} vs {golden!r}"]
    if isinstance(golden, dict) and isinstance(made, dict):
        if list(made) != list(golden):
            return [f"{path}: keys {list(made)} vs {list(golden)}"]
        return [d for k in golden for d in differences(made[k], golden[k], f"{path}.{k}")]
    if isinstance(golden, list) and isinstance(made, list) and len(made) == len(golden):
        return [d for i, (m, g) in enumerate(zip(made, golden)) for d in differences(m, g, f"{path}[{i}]")]
    return [] if made == golden and type(made) is type(golden) else [f"{path}: {made!r} vs {golden!r}"]


def test_the_comparison_allows_the_last_rounded_digit_and_nothing_more():
    assert close(0.7311, 0.731) and close(0.09, 0.089) and close(0.05661364272236824, 0.05661362037062645)
    assert not close(0.7318, 0.731) and not close(0.091, 0.089) and not close(0.05661364272236824, 0.05661464272236824)
    assert differences({"a": [0.7311, "x", 3]}, {"a": [0.731, "x", 3]}) == []
    assert differences({"a": [0.7311, "y", 3]}, {"a": [0.731, "x", 3]}) == [".a[1]: 'y' vs 'x'"]
    assert differences({"b": 1, "a": 2}, {"a": 2, "b": 1}) == [": keys ['b', 'a'] vs ['a', 'b']"]
    assert differences({"a": 1}, {"a": 1.0}) == [".a: 1 vs 1.0"]


@pytest.mark.parametrize("case", make_golden.CASES)
def test_result_json_equals_the_golden_file(regenerated, case):
    made = (regenerated / f"{case}.json").read_text(encoding="utf-8")
    golden = (GOLDEN / f"{case}.json").read_text(encoding="utf-8")
    if made != golden:  # another CPU's last bits (module docstring): the same text but for its numbers, each close
        assert NUMBER.sub("#", made) == NUMBER.sub("#", golden), f"{case}: the text differs beyond its numbers"
        found = differences(json.loads(made), json.loads(golden))
        assert not found, f"{case}: {len(found)} values differ: {found[:5]}"
