"""Every fenced code block of README.md and docs/*.md runs as written, on a random tiny checkpoint.

Each command of a `bash` block and each `python` block runs in a temp folder holding the audio
files and labelled sets the docs name (real audio: audio_files.py). The model is swapped, nothing
else: hub ids resolve to a random tiny checkpoint (and `campplus` to a random CAM++) because the
hub's download is replaced. `127.0.0.1:7860` is a real server started once on a free port (with
--mcp). `emotion-app ...` runs in-process (`cli.main.main`); `serve` runs up to the launch, which is
recorded instead of bound (the one server stands for it, so a doc's `--host 0.0.0.0` is never
bound). curl runs as a process, with --fail-with-body so an HTTP error fails it (its answer is JSON,
or Prometheus text from /metrics); the example scripts run as processes. A `json` block must parse
(a `"key": value` fragment as an object); an output sample must have the shape of the output of the
command it shows (OUTPUTS); a python block that copies a file must equal it (COPIES).

What cannot run here is in SKIP, by name, with the reason; `test_every_block_is_run_or_skipped`
holds each block to one of these, so a new block is run or named, never left out silently.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import logging
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import conversation_audio
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_PORT = "127.0.0.1:7860"  # the address the docs use; replaced by the test server's

NET = "creates .venv and installs the requirements (network), then serves until stopped; the serve blocks run serve"
CLUSTER = "a Ray cluster of several machines"
# block name (the page and its first line, see Block.name) -> why it does not run here
SKIP = {
    "README.md: ./run.sh": NET,
    "README.md: ./run.sh test": "is the suite itself (with ruff and lint-imports)",
    'docs/server.md: curl -H "Authorization: Bearer ea_3f9a1c2e_SECRET" http://127.0.0.1:78': (
        "needs the key `users key` printed, on a server with --users; tests/test_users.py lists results with a key"
    ),
    "docs/cli.md: emotion-app predict clip.webm --model emotion2vec_plus_base --hub hf -": "a GPU and Hugging Face",
    "docs/engine.md: python3 -m venv .venv-onnx && .venv-onnx/bin/pip install -r requiremen": (
        "installs from the network; tests/test_onnx.py runs --backend onnx"
    ),
    "docs/engine.md: .venv-onnx/bin/python app.py --backend onnx --model onnx_model/": (
        "needs the .venv-onnx of the line above and serves until stopped; tests/test_onnx.py runs --backend onnx"
    ),
    'docs/web.md: ```js import { Client } from "@gradio/client";': (
        "JavaScript, and a URL on the network; tests/test_npm_client.py runs the same calls (tests/js/client.mjs)"
    ),
    "docs/layout.md: .venv/bin/lint-imports": "./run.sh test runs it before pytest (and this test cannot rely on .venv)",
    "docs/layout.md: ``` analysis/report.py dataclasses ──schema.to_json──▶ result.json (page,": (
        "a drawing, not code: tests/test_schema.py holds the schema to the dataclasses"
    ),
    "docs/layout.md: ``` app.py                          a shim: `python app.py` is `emotion-ap": (
        "a drawing, not code: tests/test_layout.py holds it to the tree"
    ),
    "docs/live.md: ./run.sh": NET,
    "docs/ray.md: pip install -r requirements-ray.txt": "installs from the network",
    "docs/ray.md: emotion-app batch corpus/ --recursive --out results/ --format jsonl --": (
        "starts a Ray runtime (about 20 s on 2 cores); tests/test_ray_batch.py runs --ray on a local one"
    ),
    "docs/ray.md: emotion-app batch corpus/ --out results/ --ray --actors 2 --gpus-per-a": "a GPU (and Ray)",
    "docs/ray.md: ray get-auth-token --generate": CLUSTER,
    "docs/ray.md: export RAY_AUTH_MODE=token": CLUSTER,
    "docs/ray.md: export RAY_AUTH_TOKEN=TOKEN": CLUSTER,
    "docs/ray.md: ``` [2026-12-06 20:06:58,479 E 8398 8398] core_worker.cc:2465: Actor with": (
        "a log line Ray prints, quoted; tests/test_ray_batch.py runs --ray"
    ),
    "docs/ray.md: ray start --head --port=6379 --node-ip-address=HEAD_IP": CLUSTER,
    "docs/ray.md: ray start --address=HEAD_IP:6379": CLUSTER,
    "docs/ray.md: emotion-app batch /shared/calls/ s3://bucket/calls/ --recursive --out": f"{CLUSTER}, a shared folder, S3",
    "docs/ray.md: ray stop": CLUSTER,
    "docs/web.md: ./run.sh": NET,
    "docs/scale.md: emotion-app serve --ray-serve --replicas 2": (
        "starts a Ray runtime and Serve (about 25 s on 2 cores); tests/test_scale.py runs --ray-serve on a local one"
    ),
    "docs/scale.md: ``` browsers, REST, MCP, /api/stream ──▶ front: emotion-app serve --ray-se": (
        "a drawing, not code: tests/test_scale.py runs the front on two replicas"
    ),
    "docs/scale.md: ray start --head --port=6379 --node-ip-address=HEAD_IP": (
        f"{CLUSTER}; tests/test_cluster_join.py starts a head on 127.0.0.1 and two fronts that join it"
    ),
    "docs/scale.md: serve deploy deploy/serve.yaml --address http://HEAD_IP:8265": CLUSTER,
    "docs/scale.md: emotion-app serve --ray-serve --ray-address HEAD_IP:6379 --host 0.0.0.": CLUSTER,
}
# python block name -> the file it copies (checked equal; the bash blocks run the file)
COPIES = {'docs/live.md: """Stream a WAV file or the microphone to /api/stream and print the li': "examples/live_client.py"}
LABELS = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")
# output sample -> the command whose output it shows: the sample must be a part of that output, the
# numbers and emotions aside (its lines may be wrapped)
OUTPUTS = {
    "README.md: ```text speech.wav: 😊 happy (开心) 81.4%  5.3 s": (
        "README.md: emotion-app predict speech.wav call.mp3 meeting.m4a"
    ),
    "docs/conversations.md: ```text call.wav: 😐 neutral (中立) 58.1%  312.4 s, 96 segments": (
        "docs/conversations.md: emotion-app predict call.wav --speakers channels --names Agent,Custome"
    ),
    "docs/label_sets.md: ```text protocol: 4-class (angry, happy, neutral, sad); data labels mapped: an": (
        'docs/label_sets.md: emotion-app evaluate iemocap.csv --labels iemocap4 --map "ang=angry,ha'
    ),
}
# script -> arguments the docs leave at their default: the test server's address
SCRIPT_ARGS = {"examples/live_client.py": lambda address: ["--url", f"ws://{address}/api/stream"]}


@dataclass(frozen=True)
class Block:
    """One unit that runs: a command of a bash block (continued lines joined), or a whole other block."""

    doc: str
    lang: str
    line: int
    text: str

    @property
    def name(self) -> str:
        """The page and the block's first line (its first 70 characters)."""
        first = self.text.splitlines()[0].removesuffix("\\").strip()[:70].strip()
        return f"{self.doc}: {first}" if self.lang in ("bash", "python") else f"{self.doc}: ```{self.lang} {first}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each bash block split into its commands."""
    doc = str(path.relative_to(ROOT))
    found, lang, start, body = [], None, 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang, start, body = line[3:].strip(), number, []
                continue
            if lang == "bash":
                found += _commands(doc, start, body)
            else:
                found.append(Block(doc, lang, start + 1, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"{doc}: a code block opened at line {start} is never closed"
    return found


def _commands(doc: str, start: int, lines: list[str]) -> list[Block]:
    commands, pending = [], ""
    for offset, line in enumerate(lines, 1):
        line = re.sub(r"(^|\s+)#\s.*$", "", line).rstrip()  # the comment
        if not line and not pending:
            continue
        pending = f"{pending}\n{line}" if pending else line
        if not line.endswith("\\"):
            commands.append(Block(doc, "bash", start + offset, pending))
            pending = ""
    return commands


ALL = [block for path in DOCS for block in blocks(path)]


def test_every_block_is_run_or_skipped():
    """A block either has a runner or is named in SKIP with its reason, and SKIP names no block that is gone."""
    names = {block.name for block in ALL}
    assert sorted(set(SKIP) - names) == [], "SKIP names blocks that are no longer in the docs"
    assert sorted(set(COPIES) - names) == [], "COPIES names blocks that are no longer in the docs"
    assert sorted((set(OUTPUTS) | set(OUTPUTS.values())) - names) == [], "OUTPUTS names blocks that are no longer in the docs"
    unrunnable = [
        f"{block.name} (line {block.line})"
        for block in ALL
        if block.name not in SKIP and block.name not in COPIES and block.name not in OUTPUTS and _runner(block) is None
    ]
    assert unrunnable == [], "blocks with no runner: run them or add them to SKIP with the reason"


def test_the_command_list_names_every_command():
    from emotion_app.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for path in DOCS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("emotion-app --help") and "#" in line:
                listed = line.split("#", 1)[1]
                assert [c for c in commands if c not in listed] == [], f"{path.name}: {line}"


def test_flag_tables_list_every_choice():
    """A table row on one flag that lists two or more of its values (`--dtype` | ... `fp32`, `bf16`) lists them all."""
    import argparse

    from emotion_app.cli.main import build_parser

    choices: dict[str, set[str]] = {}
    parsers = [build_parser()]
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += action.choices.values()
            elif action.choices and action.option_strings:
                for flag in action.option_strings:
                    choices.setdefault(flag, set()).update(action.choices)
    short = []
    for path in DOCS:
        for line in path.read_text(encoding="utf-8").splitlines():
            flags = re.findall(r"`(--[a-z0-9-]+)", line.split("|")[1]) if line.startswith("|") else []
            if len(flags) != 1 or flags[0] not in choices:
                continue
            named = {c for c in choices[flags[0]] if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", line)}
            if len(named) >= 2 and named != choices[flags[0]]:
                short.append(f"{path.name}: {flags[0]} leaves out {sorted(choices[flags[0]] - named)}")
    assert short == []


@pytest.mark.parametrize("name", sorted(COPIES))
def test_copied_blocks_match_their_file(name):
    block = next(b for b in ALL if b.name == name)
    assert block.text + "\n" == (ROOT / COPIES[name]).read_text(encoding="utf-8")


def _runner(block: Block):
    if block.lang == "python":
        return _run_python
    if block.lang == "json":
        return _parse_json
    if block.lang != "bash":
        return None
    first = shlex.split(block.text.replace("\\\n", " "))[0]
    if first == "emotion-app":
        return _run_cli
    if first == "curl":
        return _run_curl
    if first == "python" and shlex.split(block.text)[1] in SCRIPT_ARGS:
        return _run_script
    return None


# ---------------------------------------------------------------- what the docs name


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """The files the docs' commands name: audio in their formats, folders, a zip, labelled sets, turns."""
    root = tmp_path_factory.mktemp("doc_assets")
    rate = 16000

    def clip(name: str, seconds: float = 2.0, seed: int = 0):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, speechlike(seconds, rate, seed), rate, path.suffix[1:])

    for name in ("speech.wav", "call.mp3", "clip.wav", "clip.m4a", "clip.webm", "a.wav", "b.mp3", "c.wav"):
        clip(name, seed=len(name))
    # spoken conversations (espeak-ng), so that VAD finds speech: a stereo call whose customer cuts in once
    write_audio(root / "call.wav", conversation_audio.call(rounds=2, cut_in_s=1.0).stereo().T, rate)
    meeting = conversation_audio.call(rounds=2)
    write_audio(root / "meeting.m4a", meeting.mono(), rate, "m4a")
    (root / "meetings").mkdir()
    shutil.copy(root / "meeting.m4a", root / "meetings" / "standup.m4a")
    write_audio(root / "interview.wav", meeting.mono(), rate)
    (root / "interview.rttm").write_text(meeting.rttm())
    for name in ("calls/monday.wav", "calls/week2/tuesday.mp3"):
        clip(name, seed=7)
    with zipfile.ZipFile(root / "more_calls.zip", "w") as z:
        z.write(root / "a.wav", "wednesday.wav")
    rows = ["path,label,speaker"]
    for k, label in enumerate(("ang", "hap", "neu", "sad")):  # 5 files a label (train-head's minimum), 5 speakers
        for n in range(5):
            clip(f"my_set/{label}/{n}.wav", 1.0, seed=10 * k + n)
            rows.append(f"my_set/{label}/{n}.wav,{label},s{n}")
    (root / "my_set.csv").write_text("\n".join(rows) + "\n")
    for label in ("exc", "fru"):  # IEMOCAP's: one the 4-class protocol merges into happy, one it leaves out
        for n in range(2):
            clip(f"{label}/{n}.wav", 1.0, seed=90 + n + len(label))
            rows.append(f"{label}/{n}.wav,{label},s{n}")
    (root / "iemocap.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The hub's download swapped for a random tiny checkpoint (and a random CAM++ for `campplus`)."""
    from emotion_app.model import hub
    from emotion_app.tools.random_campplus import build_random_campplus
    from emotion_app.tools.random_checkpoint import build_random_checkpoint

    root = tmp_path_factory.mktemp("doc_models")
    tiny = build_random_checkpoint(root / "tiny", preset="tiny")
    campplus = build_random_campplus(root / "campplus", seed=3)
    mp = pytest.MonkeyPatch()
    mp.setattr(hub, "_download", lambda repo, *args: str(campplus if "campplus" in repo else tiny))
    yield tiny
    mp.undo()


@pytest.fixture(scope="module")
def server(hub, tmp_path_factory):
    """The one server the docs' clients reach (page, REST, live WebSocket, MCP) on a free local port."""
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, launch

    settings = AppSettings(port=free_port(), outputs_dir=tmp_path_factory.mktemp("doc_outputs"), mcp=True)
    demo = launch(Engine(model=str(hub)), settings, block=False)
    yield f"127.0.0.1:{settings.port}"
    demo.close()


# ---------------------------------------------------------------- the runners


def _run_cli(block: Block, address: str, monkeypatch) -> str:
    """`emotion-app ...` in-process, the shell's globs expanded; serve is recorded up to its launch."""
    from emotion_app.cli.main import main
    from emotion_app.web import server

    launched = []
    monkeypatch.setattr(server, "launch", lambda engine, settings, error=None, *a, **k: launched.append((engine, error)))
    argv = []
    for word in shlex.split(block.text.replace("\\\n", " "))[1:]:
        argv += (sorted(glob.glob(word)) or [word]) if re.search(r"[*?]", word) else [word]
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # serve configures logging (force=True): put it back
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help, and argparse's refusals
            code = exc.code
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
    assert code in (0, None), f"exit {code}: {err.getvalue()[-2000:]}"
    if argv[0] == "serve":
        assert [error for _, error in launched] == [None], "serve did not load its model"
    return out.getvalue()


def _run_curl(block: Block, address: str, monkeypatch) -> str:
    words = shlex.split(block.text.replace("\\\n", " ").replace(DOC_PORT, address))
    done = subprocess.run(["curl", "--fail-with-body", "-sS", *words[1:]], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"curl exit {done.returncode}: {done.stderr} {done.stdout[:2000]}"
    if words[-1].endswith("/metrics"):  # Prometheus text, read by prometheus_client's own parser
        from prometheus_client.parser import text_string_to_metric_families

        assert "emotion_app_requests" in {family.name for family in text_string_to_metric_families(done.stdout)}
        return done.stdout
    assert "error" not in json.loads(done.stdout), done.stdout[:2000]
    return done.stdout


def _run_script(block: Block, address: str, monkeypatch) -> str:
    words = shlex.split(block.text)
    script = words[1]
    command = [sys.executable, str(ROOT / script), *words[2:], *SCRIPT_ARGS[script](address)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def _run_python(block: Block, address: str, monkeypatch) -> str:
    code = compile(block.text.replace(DOC_PORT, address), f"{block.doc}:{block.line}", "exec")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(code, {"__name__": "__doc_block__"})
    return out.getvalue()


def _parse_json(block: Block, address: str, monkeypatch) -> str:
    text = block.text.strip()
    json.loads("{" + text + "}" if text.startswith('"') else text)
    return ""


def _shape(text: str) -> str:
    """The text with the emotion (emoji, label, Chinese label) and every number replaced, and its
    whitespace (line breaks too) collapsed."""
    text = re.sub(r"\S+ [a-z]+ \(\S+\) ", "EMOTION ", text)
    text = re.sub(rf"\b({'|'.join(LABELS)})\b", "EMOTION", text)
    return " ".join(re.sub(r"\d+(\.\d+)?", "N", text).split())


@pytest.mark.parametrize("doc", sorted({block.doc for block in ALL}))
def test_the_blocks_of_each_page_run(doc, assets, server, tmp_path, monkeypatch):
    """The page's blocks in order (a later one may use what an earlier one wrote), in a copy of the assets;
    an output sample after the command it shows."""
    work = tmp_path / "work"
    shutil.copytree(assets, work)
    monkeypatch.chdir(work)
    outputs = {}
    for block in (b for b in ALL if b.doc == doc and b.name not in SKIP and b.name not in COPIES):
        if block.name in OUTPUTS:
            sample, output = _shape(block.text), _shape(outputs[OUTPUTS[block.name]])
            assert sample in output, f"{block.name}: not the shape of the output:\n{output}"
            continue
        try:
            outputs[block.name] = _runner(block)(block, server, monkeypatch)
        except Exception as exc:
            raise AssertionError(f"{block.name} (line {block.line}) failed: {exc}") from exc
