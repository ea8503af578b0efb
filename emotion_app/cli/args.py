"""The flags several commands share, defined once: the model flags, the analysis flags, `--head`.

Only argparse is imported here; the option classes are read when a command runs, so `--help` stays
instant. The analysis flags' dest is the option field's name and a flag left out is absent, so
RequestOptions.from_fields takes every default (and refuses conflicting flags) in one place.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..constants import BACKENDS, DEFAULT_MODEL, DTYPES, GRANULARITIES, HUBS, SMOOTHING_METHODS

OFF = argparse.SUPPRESS  # a flag left out is absent from the namespace


def fail(message: str) -> int:
    """One line on stderr saying what was wrong; exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def _env(name: str, default, use_env: bool):
    return os.environ.get(f"EMOTION_APP_{name}", default) if use_env else default


def add_model_args(p: argparse.ArgumentParser, *, env: bool = False) -> None:
    """--model, --hub, --device, --dtype, --backend, --batch-size, --threads. `env`: defaults from the
    environment (EMOTION_APP_MODEL, ...), as the server takes them."""
    p.add_argument(
        "--model",
        default=_env("MODEL", DEFAULT_MODEL, env),
        help="hub id, alias (emotion2vec_plus_large|base|seed) or local folder (default: %(default)s)",
    )
    p.add_argument(
        "--hub", choices=HUBS, default=_env("HUB", "ms", env), help="ModelScope or Hugging Face (default: %(default)s)"
    )
    p.add_argument("--device", default=_env("DEVICE", "auto", env), help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default=_env("DTYPE", "auto", env),
        help="auto = fp32 (FunASR's numbers; onnx: the export's); bf16 on CUDA or a CPU with native bf16 (about 3x faster); "
        "int8 on the CPU (int8 linear layers, about 1.6x faster; onnx: an `export-onnx --int8` folder); fp16 on CUDA",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=_env("BACKEND", "torch", env),
        help="onnx: --model is a folder from export-onnx (default: torch)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=_env("BATCH_SIZE", "0", env),  # a string: argparse converts it and says what is wrong
        help="inputs per model call (default: 4 on CPU, 16 on CUDA)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=_env("THREADS", "0", env),
        help="CPU threads of the model (torch or onnxruntime) (default: 0 = one per physical core)",
    )
    p.add_argument(
        "--speaker-model",
        default=_env("SPEAKER_MODEL", "campplus", env),
        metavar="DIR|ID",
        help="CAM++ for --speakers auto|N: folder with campplus_cn_common.bin, hub id or alias (default: %(default)s)",
    )


def add_head_arg(p: argparse.ArgumentParser, *, env: bool = False) -> None:
    """--head for the commands that analyse audio (predict, batch, serve); `env`: EMOTION_APP_HEADS
    (folders joined by the path separator) adds to them."""
    heads = [h for h in os.environ.get("EMOTION_APP_HEADS", "").split(os.pathsep) if h] if env else None
    p.add_argument(
        "--head",
        dest="head_dirs",
        action="append",
        default=heads,
        metavar="HEAD_DIR",
        help="also apply your own head (a folder from train-head, or a folder of them); repeatable",
    )


def engine_options(args) -> dict:
    """Engine keyword arguments from the model flags (and --head)."""
    return {
        "model": args.model, "hub": args.hub, "device": args.device, "dtype": args.dtype, "backend": args.backend,
        "batch_size": args.batch_size, "threads": getattr(args, "threads", 0),
        "heads": tuple(getattr(args, "head_dirs", None) or ()), "speaker_model": getattr(args, "speaker_model", "campplus"),
    }  # fmt: skip


def engine_from(args):
    """The engine for the model flags (raises ModelLoadError with the reason)."""
    from ..engine import Engine

    return Engine(**engine_options(args))


def request_from(args):
    """RequestOptions from the analysis flags; the CLI draws no charts."""
    from ..request import RequestOptions

    fields = vars(args).copy()
    if fields.get("sentiment_map"):
        fields["sentiment_map"] = read_small_file(fields["sentiment_map"], "--sentiment-map")
    return RequestOptions.from_fields(fields, charts=False)


def read_small_file(path: str, flag: str, limit: int = 64 * 1024) -> str:
    """A small text file named on the command line, or an OptionError saying what is wrong with it."""
    from ..fields import OptionError

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(limit + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"{flag} {path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    if len(text) > limit:
        raise OptionError(f"{flag} {path}: larger than {limit // 1024} KB; it should be a small JSON object")
    return text


def add_request_args(p: argparse.ArgumentParser) -> None:
    """The analysis flags (granularity, frame smoothing, mixed threshold, segmentation)."""
    from ..analysis.smoothing import SmoothingOptions
    from ..audio.segmenter import SegmentOptions

    sm, sg = SmoothingOptions(), SegmentOptions()
    p.add_argument(
        "--granularity",
        choices=GRANULARITIES,
        default=OFF,
        help="frame adds 50 Hz per-frame scores (default: utterance)",
    )
    g = p.add_argument_group("frame analysis (with --granularity frame: smoothing, segments and summary)")
    g.add_argument("--smoothing", dest="method", choices=SMOOTHING_METHODS, default=OFF, help=f"(default: {sm.method})")
    g.add_argument("--window", type=int, default=OFF, help=f"frames, odd, 3-51 (default: {sm.window} = {sm.window * 20} ms)")
    g.add_argument("--alpha", type=float, default=OFF, help=f"EWMA weight of the new frame, (0, 1] (default: {sm.alpha})")
    g.add_argument(
        "--causal", dest="zero_phase", action="store_const", const=False, default=OFF,
        help="EWMA forward only (default: zero-phase, no time shift)",
    )  # fmt: skip
    g.add_argument(
        "--min-duration",
        dest="min_duration_s",
        type=float,
        default=OFF,
        help=f"shortest segment in s (default: {sm.min_duration_s})",
    )
    g.add_argument(
        "--utterance-from", choices=["vote", "mean"], default=OFF, help="utterance reading from smoothed frames (default: vote)"
    )
    p.add_argument("--mixed-threshold", type=float, default=OFF, help="top-two margin for a mixed reading (default: 0.1)")
    p.add_argument(
        "--labels", default=OFF, metavar="LIST",
        help="a label set: results over these labels only, renormalised (angry,happy,neutral,sad; or iemocap4)",
    )  # fmt: skip
    p.add_argument(
        "--sentiment", action="store_const", const=True, default=OFF,
        help="add {label: positive|negative|neutral, score in [-1, 1]} to each result, segment and speaker",
    )  # fmt: skip
    p.add_argument(
        "--sentiment-map", default=OFF, metavar="FILE",
        help='your own mapping of emotions to sentiment, a JSON object: {"surprised": "positive"} (implies --sentiment)',
    )  # fmt: skip
    s = p.add_argument_group("segmentation of long recordings (one utterance result per segment)")
    s.add_argument("--segment", choices=["vad", "window", "none"], default=OFF, help="(default: none)")
    s.add_argument(
        "--vad-threshold", dest="threshold", type=float, default=OFF, help=f"speech probability (default: {sg.threshold})"
    )
    s.add_argument(
        "--min-speech", dest="min_speech_s", type=float, default=OFF, help=f"shortest speech in s (default: {sg.min_speech_s})"
    )
    s.add_argument(
        "--min-silence",
        dest="min_silence_s",
        type=float,
        default=OFF,
        help=f"shortest pause that splits, s (default: {sg.min_silence_s})",
    )
    s.add_argument(
        "--max-segment",
        dest="max_segment_s",
        type=float,
        default=OFF,
        help=f"longer speech is split, s (default: {sg.max_segment_s})",
    )
    s.add_argument(
        "--speech-pad", dest="speech_pad_s", type=float, default=OFF, help=f"added around speech, s (default: {sg.speech_pad_s})"
    )
    s.add_argument("--window-s", type=float, default=OFF, help=f"fixed window length, s (default: {sg.window_s})")
    s.add_argument("--hop-s", type=float, default=OFF, help="fixed window hop, s (default: the window length)")
    c = p.add_argument_group("conversations: who felt what, when (segment results with their speaker)")
    c.add_argument(
        "--speakers", default=OFF, metavar="MODE",
        help="channels (one speaker per channel), auto (mono, the number estimated) or a number of speakers",
    )  # fmt: skip
    c.add_argument("--names", default=OFF, help="the speakers' names in order, comma-separated: Agent,Customer")
    c.add_argument(
        "--turns", default=OFF, metavar="FILE",
        help="use these turns (RTTM, WebVTT, SRT, whisper/whisperX JSON; an RTTM of several recordings gives each file"
        " the lines of its name without the extension); batch: `beside` (call.rttm|vtt|srt|json by call.wav) or an RTTM",
    )  # fmt: skip
