"""emotion_app: speech emotion recognition with emotion2vec+ (native engine, FunASR parity).

    from emotion_app import Engine, build_report
    engine = Engine(model="iic/emotion2vec_plus_large")
    result = engine.predict("speech.wav", granularity="frame")
    print(result.emotion, result.confidence, build_report(result).to_json())  # result.json's content

Heavy modules (torch, PyAV) load on first use, not at import.
"""

from __future__ import annotations

import importlib

__all__ = [
    "LABELS",
    "Audio",
    "AudioError",
    "AudioInfo",
    "EmotionAppError",
    "EmotionResult",
    "Engine",
    "EngineOptions",
    "Head",
    "ModelLoadError",
    "OptionError",
    "RecordingResult",
    "RequestOptions",
    "build_random_checkpoint",
    "build_report",
    "get_engine",
    "load_audio",
    "open_source",
    "resolve_model",
]

_WHERE = {
    "LABELS": "constants",
    "Audio": "audio.samples",
    "AudioInfo": "audio.samples",
    "load_audio": "audio.source",
    "AudioError": "errors",
    "EmotionAppError": "errors",
    "ModelLoadError": "errors",
    "EmotionResult": "results",
    "RecordingResult": "results",
    "RequestOptions": "request",
    "OptionError": "fields",
    "open_source": "audio.source",
    "Engine": "engine",
    "EngineOptions": "engine_options",
    "Head": "model.head",
    "get_engine": "engine",
    "build_random_checkpoint": "tools.random_checkpoint",
    "build_report": "analysis.build",
    "resolve_model": "model.hub",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'emotion_app' has no attribute {name!r}")
