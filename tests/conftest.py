"""Shared fixtures: tiny random checkpoints in the hub layout, engines, and FunASR as the oracle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

sys.path.insert(0, str(Path(__file__).parent))

from audio_files import speechlike  # noqa: E402

# the hooks that share the cores between xdist workers and time-measuring tests
from workers import pytest_collection_modifyitems, pytest_runtest_protocol  # noqa: E402, F401

# Property tests (tests/test_fuzz.py): in the suite, a fixed budget of examples, the same ones on
# every run (derandomize: a failure comes back on the next run, with its falsifying example printed).
# HYPOTHESIS_PROFILE=explore draws many more, new ones each run, and prints how to reproduce a failure
# (print_blob: the @reproduce_failure line).
hypothesis_settings.register_profile("suite", max_examples=200, derandomize=True, deadline=None, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", max_examples=3000, deadline=None, database=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

# Parity configs: name -> build_random_checkpoint kwargs.
CONFIGS = {
    "tiny": {"preset": "tiny"},
    # plus_large's exact block structure (4 prenet + 8 blocks, 16 heads, 5 pos convs, 10 extra tokens)
    "tiny_large": {"preset": "tiny_large", "seed": 1},
    # the other code paths a config can select: GroupNorm extractor, pre-LN pos conv, per-layer ALiBi
    # scales, an even pos-conv kernel (SamePad trim), old tokens.txt with masked `unuse_*` labels
    "variant": {
        "preset": "tiny",
        "seed": 2,
        "audio_conf": {
            "extractor_mode": "default",
            "conv_pos_pre_ln": True,
            "learned_alibi_scale_per_layer": True,
            "conv_pos_width": 20,
            "conv_pos_depth": 5,
        },
        "tokens": ["生气/angry", "unuse_0", "开心/happy", "中立/neutral", "unuse_1", "难过/sad", "<unk>"],
    },
}


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Converted-weight caches go to a temp dir, never the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOTION_APP_CACHE", str(tmp_path_factory.mktemp("weights_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def checkpoint_dirs(tmp_path_factory) -> dict[str, Path]:
    from emotion_app.tools.random_checkpoint import build_random_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return {name: build_random_checkpoint(root / name, **kw) for name, kw in CONFIGS.items()}


@pytest.fixture(scope="session")
def tiny_dir(checkpoint_dirs) -> Path:
    return checkpoint_dirs["tiny"]


@pytest.fixture(scope="session")
def engines(checkpoint_dirs):
    from emotion_app import Engine

    return {name: Engine(model=str(path), device="cpu") for name, path in checkpoint_dirs.items()}


@pytest.fixture(scope="session")
def tiny_engine(engines):
    return engines["tiny"]


def funasr_model(path):
    """FunASR 1.4.16's AutoModel on a folder, with as many threads as torch has. Its default, 4,
    is process-wide (torch.set_num_threads): on 2 cores it slowed every later test of the suite 3x."""
    import torch
    from funasr import AutoModel

    return AutoModel(
        model=str(path), disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR",
        ncpu=torch.get_num_threads(),
    )  # fmt: skip


@pytest.fixture(scope="session")
def funasr_models(checkpoint_dirs):
    """FunASR 1.4.16 AutoModel per config: the reference implementation."""
    return {name: funasr_model(path) for name, path in checkpoint_dirs.items()}


@pytest.fixture
def speech():
    return speechlike


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def web(tmp_path_factory, tiny_dir):
    """A real app server (page + REST) on a free local port, with a tiny model and a 2 MB upload limit."""
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, launch

    engine = Engine(model=str(tiny_dir), max_duration_s=60)
    settings = AppSettings(port=free_port(), outputs_dir=tmp_path_factory.mktemp("outputs"), max_upload_mb=2)
    served = launch(engine, settings, block=False)
    state = served.app.state  # the live hub and the event loop's watchdog (web/server.py)
    yield type(
        "Web",
        (),
        {
            "url": served.local_url.rstrip("/"), "settings": settings, "engine": engine, "outputs": settings.outputs_dir,
            "live": state.live, "watchdog": state.watchdog,
        },
    )  # fmt: skip
    served.close()


@pytest.fixture(scope="session")
def plus_large(tmp_path_factory):
    """A random checkpoint with plus_large's exact layout (650 MB of fp32 weights) as an fp32 engine,
    and its ONNX export. Its model.pt is deleted once loaded (the engine holds the weights)."""
    import shutil

    from emotion_app import Engine, build_random_checkpoint
    from emotion_app.model.config import read_tokens
    from emotion_app.tools.onnx_export import export_model

    root = tmp_path_factory.mktemp("plus_large")
    model_dir = build_random_checkpoint(root / "model", "plus_large", seed=5)
    engine = Engine(model=str(model_dir), device="cpu", cache_weights=False)
    folder = export_model(engine.model, read_tokens(model_dir), root / "onnx", "plus_large")
    (model_dir / "model.pt").unlink()  # the engine holds its weights; free the disk
    yield engine, folder
    shutil.rmtree(root, ignore_errors=True)
