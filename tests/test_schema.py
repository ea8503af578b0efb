"""The one schema of result.json (analysis/schema.py, analysis/report.py): the JSON Schema published
at docs/result.schema.json is the one the dataclasses give, every mode's result.json (the golden
files of tests/golden/) is valid under it and reads back into the same dataclasses, and a result
that drifts from the dataclasses is not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from emotion_app.analysis import schema
from emotion_app.analysis.report import (
    ClipReport,
    Escalation,
    RecordingReport,
    Segment,
    report_from_json,
    result_schema,
)

ROOT = Path(__file__).parent.parent
GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.json"))
# what tests/golden/make_golden.py replaces with "<varies>", given values of their type again
RESTORED = {"timestamp": "2026-12-06T20:00:00", "output_dir": "outputs_20261206_200000"}


def restored(result: dict) -> dict:
    out = {**result, **{k: v for k, v in RESTORED.items() if k in result}}
    out["timings"] = dict.fromkeys(result["timings"], 0.5)
    return out


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(result_schema())
    return Draft202012Validator(result_schema())


def test_the_published_schema_is_the_generated_one():
    committed = (ROOT / "docs" / "result.schema.json").read_text(encoding="utf-8")
    generated = json.dumps(result_schema(), ensure_ascii=False, indent=2) + "\n"
    assert committed == generated, (
        "docs/result.schema.json differs from the dataclasses; write it again with: PYTHONPATH=$PWD python -c "
        '"import json; from emotion_app.analysis.report import result_schema; '
        "open('docs/result.schema.json', 'w').write(json.dumps(result_schema(), ensure_ascii=False, indent=2) + '\\n')\""
    )


def test_there_are_golden_files_of_both_kinds():
    kinds = {json.loads(p.read_text(encoding="utf-8"))["granularity"] for p in GOLDEN}
    assert kinds == {"utterance", "frame", "segments"} and len(GOLDEN) >= 12


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_every_mode_is_valid_and_reads_back_into_the_dataclasses(validator, path):
    result = restored(json.loads(path.read_text(encoding="utf-8")))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(result)]
    assert errors == []
    assert result["schema_version"] == schema.SCHEMA_VERSION
    report = report_from_json(result)
    assert isinstance(report, RecordingReport if result["granularity"] == "segments" else ClipReport)
    assert json.dumps(report.to_json(), ensure_ascii=False) == json.dumps(result, ensure_ascii=False)  # same keys, order, values


def test_a_result_that_drifts_from_the_dataclasses_is_invalid(validator):
    result = restored(json.loads((ROOT / "tests" / "golden" / "conversation_turns.json").read_text(encoding="utf-8")))
    assert validator.is_valid(result)
    for broken in (
        {**result, "moods": {}},  # a key no dataclass has
        {k: v for k, v in result.items() if k != "summary"},  # a key a recording always has
        {**result, "segments": [{**result["segments"][0], "confidence": "high"}]},  # a wrong type
        {**result, "segments": [{**result["segments"][0], "scores": None}]},  # left out, never null
        {**result, "speakers": [{**result["speakers"][0], "turns": 1.5}]},
        {**result, "granularity": "frame"},  # a recording's keys under a clip's granularity
    ):
        assert not validator.is_valid(broken)


def test_to_json_follows_the_fields():
    """Field order, renamed keys, keys left out when None (or by their rule), tuples as arrays,
    datetimes to the second, internal fields never written."""
    seg = Segment(1.0, 2.5, "sad", 0.5, speaker=None, conversation=True)
    assert schema.to_json(seg) == {"start": 1.0, "end": 2.5, "emotion": "sad", "confidence": 0.5, "speaker": None}
    assert "speaker" not in schema.to_json(Segment(1.0, 2.5, "sad", 0.5))
    assert schema.to_json(Escalation("Ann", 0.4, 0.6, 3.0)) == {"speaker": "Ann", "from": 0.4, "to": 0.6, "at": 3.0}
    assert schema.from_json(Escalation, {"speaker": "Ann", "from": 0.4, "to": 0.6, "at": 3.0}).before == 0.4
    when = datetime(2026, 12, 6, 20, 1, 2, 345)
    assert schema.to_json({"when": when, "t": (1, 2)}) == {"when": "2026-12-06T20:01:02", "t": [1, 2]}
    with pytest.raises(ValueError, match="'end' is missing"):
        schema.from_json(Segment, {"start": 0.0, "emotion": "sad", "confidence": 0.5})


def test_a_field_without_a_json_type_is_refused():
    @dataclass
    class Odd:
        value: complex

    with pytest.raises(TypeError, match="no JSON Schema for <class 'complex'>"):
        schema.json_schema(Odd, {})
