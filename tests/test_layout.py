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
    ghosts = sorted(
        m
        for m in modules - real_modules
        if m
        not in ("app.py", "__init__.py", "__main__.py", "live_client.py", "screenshots.py", "audio_files.py", "test_layout.py")
    )
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
