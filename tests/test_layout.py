"""docs/layout.md draws the package: every package and module it names exists, and every package and
module of emotion_app is named on it (so the drawing cannot fall behind the tree)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PKG = ROOT / "emotion_app"


def named(text: str) -> tuple[set[str], set[str]]:
    """(packages as `path/`, module file names) on the drawing."""
    packages = set(re.findall(r"\b([a-z_0-9]+(?:/[a-z_0-9]+)*)/(?=\s|$)", text))
    modules = set(re.findall(r"\b([a-z_0-9]+\.py)\b", text))
    return packages, modules


def test_every_package_and_module_is_on_the_drawing_and_exists():
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    packages, modules = named(text)
    real_packages = {str(p.parent.relative_to(PKG)) for p in PKG.rglob("__init__.py") if p.parent != PKG}
    shown = {p.split("/")[-1] for p in packages} | packages
    missing = sorted(p for p in real_packages if p not in shown and p.split("/")[-1] not in shown)
    assert not missing, f"packages not on docs/layout.md: {missing}"
    unknown = sorted(
        p for p in packages - {"emotion_app", "tests", "bench", "examples", "scripts", "docs"} if not (PKG / p).is_dir()
    )
    unknown = [p for p in unknown if not any((PKG / q / p).is_dir() for q in real_packages)]
    assert not unknown, f"docs/layout.md names packages that do not exist: {unknown}"
    real_modules = {p.name for p in PKG.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert sorted(real_modules - modules) == [], "modules not on docs/layout.md"
    elsewhere = {p.name for folder in ("", "tests", "examples", "scripts", "bench") for p in (ROOT / folder).glob("*.py")}
    ghosts = sorted(modules - real_modules - elsewhere - {"__init__.py", "__main__.py"})
    assert ghosts == [], f"docs/layout.md names modules that do not exist: {ghosts}"


def test_the_drawing_lists_the_layers_in_the_order_import_linter_holds():
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    positions = []
    for layer in layers:
        first = layer.split("|")[0].strip().removeprefix("emotion_app.")
        match = re.search(rf"^\s+{re.escape(first)}(/|\.py)", text, re.M)
        assert match, f"layer {first} is not drawn"
        positions.append(match.start())
    assert positions == sorted(positions), "docs/layout.md draws the layers in another order than pyproject.toml"


# Other projects' files that our comments cite (the code they mirror or work around): not in our tree.
FOREIGN = ("funasr/", "gradio/", "speakerlab/")
PY_PATH = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*\w+\.py)\b")  # `engine.py`, `web/api/stream.py`; not in URLs


def _prose(path: Path):
    """(line, text) of each comment and docstring of a Python file (any string statement: module,
    class, function and attribute docstrings), or of each `#` comment of a requirements file or script."""
    import ast
    import io
    import tokenize

    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        for number, line in enumerate(text.splitlines(), 1):
            if comment := re.search(r"(?:^|\s)#(.*)", line):
                yield number, comment[1]
        return
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            yield node.lineno, node.value.value


def stale_paths(files: list[Path], tree: list[Path]) -> list[str]:
    """`file:line: name` for each `.py` path named in a comment or docstring of `files` that does not
    exist: a bare name must be the name of some file of `tree`; a path must exist under the package,
    the repository root or the naming file's own folder."""
    names = {p.name for p in tree}
    stale = []
    for path in files:
        for line, text in sorted(_prose(path)):
            for name in PY_PATH.findall(text):
                if name.startswith(FOREIGN):
                    continue
                if "/" in name:
                    found = any((base / name).is_file() for base in (PKG, ROOT, path.parent))
                else:
                    found = name in names
                if not found:
                    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                    stale.append(f"{shown}:{line}: {name}")
    return stale


def test_comments_and_docstrings_name_only_files_that_exist():
    tree = [p for folder in ("emotion_app", "tests", "bench", "scripts", "examples") for p in (ROOT / folder).rglob("*.py")]
    tree += [ROOT / "app.py"]
    files = tree + sorted(ROOT.glob("requirements*.txt")) + [ROOT / "run.sh"]
    stale = stale_paths(files, tree)
    assert not stale, "comments and docstrings name files that do not exist:\n" + "\n".join(stale)


def test_stale_paths_finds_a_moved_file(tmp_path):
    """The check can fail: a docstring naming a module that moved, a comment naming one that is gone."""
    module = tmp_path / "mod.py"
    module.write_text('"""Decoded first (audio.py), then scored (engine.py)."""\nx = 1  # see web/stream.py\n')
    script = tmp_path / "run.sh"
    script.write_text("exec python app.py  # the shim (web/server.py, cli/serve.py)\n")
    assert stale_paths([module, script], [PKG / "engine.py", ROOT / "app.py"]) == [
        f"{module}:1: audio.py",
        f"{module}:2: web/stream.py",
    ]
