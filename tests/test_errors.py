"""The code registry (errors.ERRORS, errors.WARNINGS): every code the package raises is in it, with
its HTTP status, its close code and both languages.

The codes are found by reading the source, not by running it: a string literal given as the code
of an EmotionAppError (or ErrorText) subclass, or to a function or dataclass that takes a `code`
and passes it on (fields.parse_choice, the guard's _Reply, the stream's _fail...), a `code = "..."`
class attribute, and a `{"code": "..."}` answer. Codes given to AudioWarning are warnings.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import emotion_app
from emotion_app.errors import ERRORS, WARNINGS, error_code

PACKAGE = Path(emotion_app.__file__).parent
ROOTS = ("EmotionAppError", "ErrorText")  # the classes whose second argument is the code
WARNING_TAKERS = ("AudioWarning",)
CJK = re.compile(r"[\u4e00-\u9fff]")


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _is_dataclass(cls: ast.ClassDef) -> bool:
    return any(_name(d.func if isinstance(d, ast.Call) else d) == "dataclass" for d in cls.decorator_list)


def _code_takers(trees: list[ast.Module]) -> dict[str, int]:
    """Callable name -> the position of its code argument (after self)."""
    takers: dict[str, int] = {name: 1 for name in ROOTS}
    classes = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    changed = True
    while changed:  # subclasses, however deep
        changed = False
        for cls in classes:
            if cls.name not in takers and any(_name(b) in takers for b in cls.bases):
                takers[cls.name] = 1
                changed = True
    for tree in trees:  # then the functions and dataclasses that take a code (no base classes)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("__"):
                params = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                if "code" in params:
                    takers[node.name] = params.index("code")
            elif isinstance(node, ast.ClassDef) and _is_dataclass(node):
                fields = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
                if "code" in fields:
                    takers[node.name] = fields.index("code")
    return takers


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _codes_in(tree: ast.Module, takers: dict[str, int]):
    """(code, table, node) for each code literal of one module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and any(_name(t) == "code" for t in stmt.targets) and _text(stmt.value):
                    yield _text(stmt.value), "errors", stmt
        elif isinstance(node, ast.Call) and _name(node.func) in takers:
            index = takers[_name(node.func)]
            given = [kw.value for kw in node.keywords if kw.arg == "code"] + node.args[index : index + 1]
            table = "warnings" if _name(node.func) in WARNING_TAKERS else "errors"
            yield from ((_text(g), table, node) for g in given if _text(g))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if key is not None and _text(key) == "code" and _text(value):
                    yield _text(value), "errors", node


def raised_codes(root: Path) -> list[tuple[str, str, str]]:
    """(code, "errors" or "warnings", "file:line") for each code literal under `root`."""
    files = sorted(root.rglob("*.py"))
    trees = [ast.parse(f.read_text(encoding="utf-8"), str(f)) for f in files]
    takers = _code_takers(trees)
    return [
        (code, table, f"{path.relative_to(root)}:{node.lineno}")
        for path, tree in zip(files, trees)
        for code, table, node in _codes_in(tree, takers)
    ]


def missing_codes(root: Path) -> list[str]:
    """Each code under `root` that its table lacks, as "code (file:line)"."""
    tables = {"errors": ERRORS, "warnings": WARNINGS}
    return [f"{code} ({at})" for code, table, at in raised_codes(root) if code not in tables[table]]


def test_every_code_raised_in_the_package_is_in_the_registry():
    found = raised_codes(PACKAGE)
    codes = {code for code, _, _ in found}
    # the scan sees every way a code is given: class attributes, positional and keyword arguments,
    # helpers that pass a code on, dataclass fields and JSON answers
    assert {"busy", "slow_consumer", "bad_option", "error"} <= codes  # class attributes
    assert {"corrupt", "bad_settings", "url_not_allowed", "too_short"} <= codes  # AudioError(msg, code), code=...
    assert {"bad_granularity", "internal", "bad_host", "unauthorized"} <= codes  # parse_choice, _fail, _Reply, {"code": ...}
    assert {code for code, table, _ in found if table == "warnings"} == {"short", "silent", "no_speech"}
    assert len(codes) >= 45, sorted(codes)
    assert missing_codes(PACKAGE) == []


def test_a_made_up_code_fails_the_scan(tmp_path):
    (tmp_path / "errors.py").write_text(
        textwrap.dedent(
            """
            class EmotionAppError(Exception):
                code = "error"
            class AudioError(EmotionAppError):
                code = "bad_audio"
            """
        )
    )
    (tmp_path / "new.py").write_text(
        textwrap.dedent(
            """
            from .errors import AudioError, EmotionAppError
            class Quota(EmotionAppError):
                code = "over_quota"
            class DeepQuota(Quota):
                pass
            def check(value, name, code=None):
                raise AudioError(f"{name}: {value}", code)
            def f(x):
                if x == 1:
                    raise AudioError("x", "made_up")
                if x == 2:
                    raise DeepQuota("y", code="made_up_too")
                check(x, "x", "made_up_by_helper")
                return {"error": "no", "code": "made_up_answer"}
            """
        )
    )
    missing = dict(m[:-1].split(" (") for m in missing_codes(tmp_path))
    assert missing == {
        "over_quota": "new.py:4",
        "made_up": "new.py:11",
        "made_up_too": "new.py:13",
        "made_up_by_helper": "new.py:14",
        "made_up_answer": "new.py:15",
    }


def test_every_registry_entry_has_both_languages_a_status_and_a_close_code():
    for code, entry in ERRORS.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code), code
        assert entry.en.strip() and not CJK.search(entry.en), code
        assert CJK.search(entry.zh), code
        assert 400 <= entry.status < 600, code
        assert entry.close in (1008, 1009, 1011, 1013), code
    for code, entry in WARNINGS.items():
        assert entry.en.strip() and not CJK.search(entry.en) and CJK.search(entry.zh), code
    assert error_code("no_such_code") is error_code(None) is ERRORS["error"]


def test_the_registry_holds_no_code_that_nothing_gives():
    from emotion_app.web.api.rest import HTTP_CODES

    given = {code for code, _, _ in raised_codes(PACKAGE)} | set(HTTP_CODES.values()) | {"http_error"}
    assert set(ERRORS) - given == set()
    assert set(HTTP_CODES.values()) <= set(ERRORS)


def test_the_boundaries_read_the_registry():
    from emotion_app.web.i18n import error_message, short_error, warning_message

    exc = emotion_app.AudioError("x.wav: the file is empty (0 bytes).", "empty")
    assert error_message(exc, "zh") == f"{ERRORS['empty'].zh}（x.wav: the file is empty (0 bytes).）"
    assert error_message(exc, "en") == exc.message
    assert short_error("x", "bad_zip", "zh") == ERRORS["bad_zip"].zh and short_error("x", "bad_zip", "en") == "x"
    assert short_error("x", None, "zh") == short_error("x", "no_such_code", "zh") == ERRORS["error"].zh
    assert warning_message("silent", "quiet", "zh") == WARNINGS["silent"].zh
    assert (error_code("busy").close, error_code("frame_too_large").close, error_code("bad_settings").close) == (1013, 1009, 1008)
    assert (error_code("bad_labels").status, error_code("model_load").status, error_code("no_audio").status) == (422, 503, 400)


def test_a_refusal_for_now_says_when_to_come_back():
    """Busy, full or unavailable: the REST answer carries the error's Retry-After."""
    from emotion_app.memory import MemoryBusy
    from emotion_app.outputs import DiskFull
    from emotion_app.scale.remote import ReplicasUnavailable
    from emotion_app.web.api.rest import _error

    for exc, status, wait in ((ReplicasUnavailable("x"), 503, "5"), (MemoryBusy("x"), 503, "30"), (DiskFull("x"), 507, "60")):
        answer = _error(exc, "zh")
        assert (answer.status_code, answer.headers["retry-after"]) == (status, wait), exc.code
        assert answer.body.decode().count(exc.code) == 1
