"""`emotion-app batch PATH... --out DIR`: many files (folders, zips) into a results table, resumable;
with --ray the same batch on Ray Data (batch/ray_pipeline.py)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from .args import add_head_arg, add_model_args, add_request_args, engine_from, fail, request_from


def add_parser(sub) -> None:
    b = sub.add_parser("batch", help="analyse many files (folders, zips) into a results table; resumable")
    b.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or zip archives")
    b.add_argument("--recursive", action="store_true", help="include subfolders")
    b.add_argument("--out", default="batch_results", help="output folder (default: %(default)s)")
    b.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="results table (default: %(default)s)")
    b.add_argument("--overwrite", action="store_true", help="redo files already done in --out")
    add_model_args(b)
    add_request_args(b)
    add_head_arg(b)
    add_ray_args(b)
    b.set_defaults(func=run)


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """batch --ray: the same batch on Ray Data (batch/ray_pipeline.py; needs requirements-ray.txt)."""
    r = p.add_argument_group("Ray Data (many machines, GPUs; pip install -r requirements-ray.txt)")
    r.add_argument("--ray", action="store_true", help="run on Ray: a local Ray on 127.0.0.1 only, unless --ray-address")
    r.add_argument("--ray-address", metavar="ADDR", help="join this cluster (HOST:6379 from `ray start --head`); implies --ray")
    r.add_argument("--actors", type=int, default=1, help="model actors, one engine each (default: %(default)s)")
    r.add_argument(
        "--gpus-per-actor", type=float, default=0.0, help="GPUs per actor, fp16 on them; 0.5 = two per GPU (default: CPU)"
    )
    r.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs (torch threads) per actor (default: %(default)s)")
    r.add_argument("--cpus-per-decoder", type=float, default=1.0, help="CPUs per decode task (default: %(default)s)")
    r.add_argument("--decoder-memory", type=float, default=2.0, metavar="GB", help="memory per decode task (default: 2)")
    r.add_argument("--actor-memory", type=float, default=4.0, metavar="GB", help="memory per actor (default: 4)")


def run(args) -> int:
    if args.ray or args.ray_address:
        return run_ray(args)
    import tempfile
    import time
    from collections import Counter

    from tqdm import tqdm

    from ..batch.inputs import Extractor, collect_inputs
    from ..batch.local import iter_batch
    from ..batch.tables import ResultsWriter, columns_for, summary_text
    from ..errors import EmotionAppError

    try:
        request = batch_request(args)
    except EmotionAppError as exc:
        return fail(exc.message)
    inputs = collect_inputs(args.paths, args.recursive, absolute=True)
    try:
        writer = ResultsWriter(Path(args.out), args.format, args.overwrite, columns_for(request))
    except EmotionAppError as exc:
        return fail(exc.message)
    todo = [item for item in inputs if item.name not in writer.done]
    skipped = len(inputs) - len(todo)
    if not todo:
        print(f"{len(inputs)} files, all done already in {writer.path} (--overwrite to redo)", file=sys.stderr)
        writer.close()
        return 0
    try:
        engine = engine_from(args)
    except EmotionAppError as exc:
        writer.close()
        return fail(exc.message)
    t0, failed, audio_s, emotions = time.perf_counter(), 0, 0.0, Counter()
    with (
        tempfile.TemporaryDirectory(prefix="emotion_app_zip_") as tmp,
        tqdm(total=len(todo), unit="file", file=sys.stderr, disable=None) as bar,
    ):
        stream = iter_batch(
            engine, todo, request, extractor=Extractor(Path(tmp)), progress=bar.update, group=max(8, 8 * engine.batch_size)
        )
        for j, report, error in stream:
            writer.write(todo[j].name, report, error)
            if error:
                failed += 1
                tqdm.write(f"error: {error}", file=sys.stderr)
            else:
                audio_s += report.duration_s
                emotions[report.emotion] += 1
    writer.close()
    wall = time.perf_counter() - t0
    print(summary_text(len(todo) - failed, failed, skipped, writer.path, audio_s, wall, emotions), file=sys.stderr)
    return 1 if failed else 0


def batch_request(args):
    """The batch's RequestOptions; `--turns beside`: each file on the turns file beside it;
    `--turns corpus.rttm`: each file on that RTTM's lines of its file id (the file's name without
    its extension)."""
    from ..fields import OptionError

    turns = getattr(args, "turns", None)
    if turns == "beside":
        del args.turns
    request = request_from(args)
    if turns == "beside":
        return request.with_turns(None)
    if request.turns is not None and request.turns.format != "rttm":
        raise OptionError(
            f"batch --turns {request.turns.name}: one file of turns for every file of a batch must be an RTTM, whose"
            " lines name their recording; for WebVTT, SRT or JSON give each file its own: --turns beside"
            " (call.wav with call.rttm|.vtt|.srt|.json)"
        )
    return request


def run_ray(args) -> int:
    """`batch --ray`: exit 0, 1 when a file failed, 2 for bad options or a model that cannot load."""
    from ..errors import EmotionAppError

    try:
        from ..batch.ray_pipeline import RayOptions, run_ray_batch
        from ..batch.ray_stages import collect_rows
    except ImportError as exc:
        return fail(f"--ray needs Ray Data ({exc}); install it with: pip install -r requirements-ray.txt")
    try:
        request = batch_request(args)
        options = RayOptions(
            address=args.ray_address,
            actors=args.actors,
            gpus_per_actor=args.gpus_per_actor,
            cpus_per_actor=args.cpus_per_actor,
            cpus_per_decoder=args.cpus_per_decoder,
            decoder_memory_gb=args.decoder_memory,
            actor_memory_gb=args.actor_memory,
        )
        engine_options = ray_engine_options(args, options)
    except EmotionAppError as exc:
        return fail(exc.message)
    except ValueError as exc:
        return fail(str(exc))
    rows = collect_rows(args.paths, args.recursive, absolute=bool(args.ray_address))
    try:
        summary = run_ray_batch(
            rows,
            request,
            engine_options,
            Path(args.out),
            fmt=args.format,
            overwrite=args.overwrite,
            options=options,
            on_error=lambda message: print(f"error: {message}", file=sys.stderr, flush=True),
        )
    except Exception as exc:
        cause = _app_error(exc)
        if cause is None:
            raise
        return fail(cause.message)
    if summary.done + summary.failed == 0:
        print(f"{len(rows)} files, all done already in {summary.path} (--overwrite to redo)", file=sys.stderr)
        return 0
    print(summary.text(), file=sys.stderr)
    return 1 if summary.failed else 0


def ray_engine_options(args, options) -> dict:
    """The engine's options from the CLI flags (every EngineOptions field that is a flag); on GPU
    actors CUDA and fp16 unless --device/--dtype say otherwise, on CPU one torch thread per CPU."""
    from ..engine_options import EngineOptions

    flags = vars(args)
    names = {f.name for f in fields(EngineOptions)}
    out = {name: flags[name] for name in names if name in flags}
    if "heads" in names and flags.get("head_dirs"):  # --head: folders every actor reads
        out["heads"] = tuple(str(Path(h).absolute()) for h in flags["head_dirs"])
    if options.gpus_per_actor > 0:
        out["device"] = "cuda" if out.get("device", "auto") == "auto" else out["device"]
        out["dtype"] = "fp16" if out.get("dtype", "auto") == "auto" else out["dtype"]
    else:
        if str(out.get("device", "auto")).startswith("cuda"):
            raise ValueError("--device cuda with --ray needs --gpus-per-actor > 0 (the actors' GPUs)")
        out["device"] = "cpu"
        out["threads"] = out.get("threads") or max(1, round(options.cpus_per_actor))
    return out


def _app_error(exc: BaseException):
    """The EmotionAppError behind a failure (an actor whose engine could not load: Ray wraps it in
    ActorDiedError -> RayTaskError.cause), if any."""
    from ..errors import EmotionAppError

    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, EmotionAppError):
            return e
        seen.add(id(e))
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return None
