"""result.json stays what it is: every mode's result.json, made again by the current code
(tests/golden/make_golden.py, in a subprocess: one torch thread, seeded checkpoint and audio),
equals the golden file committed beside it, but for the values that differ between runs of the
same code (make_golden.VARIABLE, replaced by "<varies>").

The model's fp32 sums run in another order on another CPU (AVX2 against AVX-512: probabilities
2e-8 apart), and a value rounded for the file can land on the other side of its last digit (a
frame's confidence 0.7311 against 0.731). So the text must be the same with its numbers masked
(layout, keys, order, every string), and each number the same as far as its field is written: a
field written with 3-6 decimals (scores, confidences) to one unit of its last one, a field with
more (probabilities, embeddings) to 1e-5 relative, and a field with 2 or fewer (times, counts,
coverage) exactly (`close`, `field_digits`)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from decimal import Decimal
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


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
ROUNDED = 6  # a field written with at most these decimals was rounded for the file


def decimals(x: float) -> int | None:
    """Digits after the point as Python writes `x` (1e-05: 5, 0.0: 1); None for nan and inf."""
    exponent = Decimal(repr(x)).as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else None


def field_digits(value, field: str = "", out: dict | None = None) -> dict[str, int | None]:
    """The most decimals each field is written with in `value` (a field: the keys' path, list
    positions left out, so every frame's `confidence` is one field)."""
    out = {} if out is None else out
    if isinstance(value, float):
        d = decimals(value)
        out[field] = None if d is None or field in out and out[field] is None else max(d, out.get(field, 0))
    elif isinstance(value, dict):
        for k, v in value.items():
            field_digits(v, f"{field}.{k}", out)
    elif isinstance(value, list):
        for v in value:
            field_digits(v, field, out)
    return out


def close(a: float, b: float, digits: int | None) -> bool:
    """The same number as two CPUs give it, for a field written with `digits` decimals."""
    if digits is None or digits <= 2:
        return repr(a) == repr(b)
    if digits <= ROUNDED:
        return abs(a - b) <= 1.0001 * 10.0**-digits
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7)


def differences(made, golden, digits: dict, path: str = "", field: str = "") -> list[str]:
    """Where `made` is not `golden`: keys and their order, lengths, strings and ints exactly; floats by `close`."""
    if isinstance(golden, float) and isinstance(made, float):
        return [] if close(made, golden, digits.get(field)) else [f"{path}: {made!r} vs {golden!r}"]
    if isinstance(golden, dict) and isinstance(made, dict):
        if list(made) != list(golden):
            return [f"{path}: keys {list(made)} vs {list(golden)}"]
        return [d for k in golden for d in differences(made[k], golden[k], digits, f"{path}.{k}", f"{field}.{k}")]
    if isinstance(golden, list) and isinstance(made, list) and len(made) == len(golden):
        return [d for i, (m, g) in enumerate(zip(made, golden)) for d in differences(m, g, digits, f"{path}[{i}]", field)]
    return [] if made == golden and type(made) is type(golden) else [f"{path}: {made!r} vs {golden!r}"]


def test_the_comparison_allows_a_fields_last_rounded_digit_and_nothing_more():
    golden = {"c": [0.731, 0.5004, 0.0], "s": [0.089, 0.1], "p": [0.05661362037062645], "t": [1.0, 0.38], "r": [1e-05]}
    digits = field_digits(golden)
    assert digits == {".c": 4, ".s": 3, ".p": 17, ".t": 2, ".r": 5}
    same = {"c": [0.7311, 0.5005, 0.0], "s": [0.09, 0.1], "p": [0.05661364272236824], "t": [1.0, 0.38], "r": [2e-05]}
    assert differences(same, golden, digits) == []
    for field, value in [("c", [0.7318, 0.5004, 0.0]), ("c", [0.731, 0.5004, 0.1]), ("s", [0.091, 0.1]), ("p", [0.0566146])]:
        assert differences({**golden, field: value}, golden, digits), (field, value)
    assert differences({**golden, "t": [0.9, 0.38]}, golden, digits) == [".t[0]: 0.9 vs 1.0"]  # 2 decimals: exact
    assert differences({**golden, "r": [4e-05]}, golden, digits) == [".r[0]: 4e-05 vs 1e-05"]
    assert differences({"a": [0.5, "y", 3]}, {"a": [0.5, "x", 3]}, {}) == [".a[1]: 'y' vs 'x'"]
    assert differences({"b": 1, "a": 2}, {"a": 2, "b": 1}, {}) == [": keys ['b', 'a'] vs ['a', 'b']"]
    assert differences({"a": 1}, {"a": 1.0}, {}) == [".a: 1 vs 1.0"]
    assert close(float("nan"), float("nan"), None) and not close(float("inf"), 1.0, None)


@pytest.mark.parametrize("case", make_golden.CASES)
def test_result_json_equals_the_golden_file(regenerated, case):
    made = (regenerated / f"{case}.json").read_text(encoding="utf-8")
    golden = (GOLDEN / f"{case}.json").read_text(encoding="utf-8")
    if made != golden:  # another CPU's last bits (module docstring): the same text but for its numbers, each close
        assert NUMBER.sub("#", made) == NUMBER.sub("#", golden), f"{case}: the text differs beyond its numbers"
        expected = json.loads(golden)
        found = differences(json.loads(made), expected, field_digits(expected))
        assert not found, f"{case}: {len(found)} values differ: {found[:5]}"
