"""`SpeakerModel`: a CAM++ folder -> 192-dim speaker embeddings of 16 kHz mono pieces, as FunASR computes them.

One piece: fbank.py's features (T, 80) -> campplus.py's network -> (192,) float32, the
`spk_embedding` FunASR 1.4.16's CAM++ gives for the same samples (not length-normalised;
compare speakers by cosine). Torch is imported when a SpeakerModel is made, not with this module.

Windows for diarization (`embed_windows`) are cut as FunASR's `sv_chunk` cuts a VAD segment:
1.5 s windows every 0.75 s, the last window moved back to end at the segment's end, and a
segment shorter than one window zero-padded at its end to the full window.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..audio.fbank import fbank, num_frames
from ..constants import SAMPLE_RATE
from ..errors import AudioError, ModelLoadError
from ..model.hub import HubModel, resolve

DEFAULT_SPEAKER_MODEL = "campplus"
WEIGHTS_FILE = "campplus_cn_common.bin"
CAMPPLUS = HubModel(
    "speaker model",
    (WEIGHTS_FILE,),
    {
        "campplus": ("iic/speech_campplus_sv_zh-cn_16k-common", "funasr/campplus"),
        "cam++": ("iic/speech_campplus_sv_zh-cn_16k-common", "funasr/campplus"),  # FunASR's name for it
    },
    extra=("configuration.json", "config.yaml", "README.md"),
    flag="--speaker-model",
    placeholder="/path/to/campplus",
    size="about 28 MB",
)


def resolve_speaker_model(model: str = DEFAULT_SPEAKER_MODEL, hub: str = "ms", cache_dir=None, *, endpoint=None) -> Path:
    """A local CAM++ folder for `model`: a folder, the alias `campplus` (or `cam++`) or a hub id
    (ModelScope iic/speech_campplus_sv_zh-cn_16k-common, Hugging Face funasr/campplus)."""
    return resolve(CAMPPLUS, str(model), hub, cache_dir=cache_dir, endpoint=endpoint)


logger = logging.getLogger(__name__)

__all__ = ["SpeakerModel", "resolve_speaker_model", "window_ranges", "EMBEDDING_SIZE"]

EMBEDDING_SIZE = 192
MIN_SAMPLES = 720  # 45 ms at 16 kHz: 3 fbank frames, 2 after the stride-2 TDNN, the fewest a std can use
MAX_BATCH_FRAMES = 6_000  # fbank frames (60 s of audio) per forward pass: bounds memory (~32 x 80 floats a frame)
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
WINDOW_S = 1.5  # FunASR sv_chunk's seg_dur, seconds
SHIFT_S = 0.75  # FunASR sv_chunk's seg_shift, seconds
LISTED = 5  # keys named in a load error before "and N more"


def _listed(items: list[str]) -> str:
    more = f" (and {len(items) - LISTED} more)" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more


def read_state_dict(path: Path) -> dict:
    """The tensors of a CAM++ weights file, read with weights_only=True onto the CPU."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt file, pickle with code, wrong format: all unusable
        raise ModelLoadError(
            f"could not read {path} as a torch state dict ({type(exc).__name__}: {str(exc)[:200]}); "
            f"it should be {WEIGHTS_FILE} as downloaded from iic/speech_campplus_sv_zh-cn_16k-common"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} holds a {type(state).__name__}, not a state dict of tensors (CAM++ {WEIGHTS_FILE})")
    return dict(state)


def check_state_dict(state: dict, expected: dict, path: Path) -> dict:
    """`state` ready for load_state_dict(strict=True) into a network whose state is `expected`,
    or a ModelLoadError naming the missing, unexpected and wrongly shaped keys.
    A missing batchnorm `num_batches_tracked` (unused in eval) is filled in with 0."""
    import torch

    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        problems = [
            f"{label}: {_listed(keys)}"
            for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong))
            if keys
        ]
        raise ModelLoadError(
            f"{path} is not FunASR's CAM++ (feat_dim=80, embedding_size=192): {'; '.join(problems)}. "
            f"Use {WEIGHTS_FILE} of iic/speech_campplus_sv_zh-cn_16k-common (Hugging Face: funasr/campplus)."
        )
    filled = dict(state)
    for key in expected:
        filled.setdefault(key, torch.tensor(0, dtype=torch.long))  # only num_batches_tracked can be absent here
    return filled


def _torch_device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is available; use device 'cpu'")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def window_ranges(num_samples: int, window: int, shift: int) -> list[tuple[int, int]]:
    """(start, end) sample ranges of FunASR's sv_chunk over `num_samples` samples.

    Windows start every `shift` samples and end `window` samples later; the first window to reach
    the end is moved back to end exactly there (start = max(0, end - window)) and is the last one.
    A piece shorter than `window` gives one range (0, num_samples), to be zero-padded to `window`.
    """
    ranges: list[tuple[int, int]] = []
    last_end = 0
    for start in range(0, num_samples, shift):
        end = min(start + window, num_samples)
        if end <= last_end:
            break
        last_end = end
        ranges.append((max(0, end - window), end))
    return ranges


def _wave(samples, what: str = "samples") -> np.ndarray:
    """(N,) float32 view of one piece, checked: mono, floating point, finite, long enough."""
    wave = np.asarray(samples)
    if wave.ndim != 1:
        raise AudioError(f"{what}: a speaker embedding wants (N,) mono samples at 16 kHz, got shape {wave.shape}")
    if wave.dtype.kind != "f":
        raise AudioError(f"{what}: samples must be floating point in [-1, 1] (got {wave.dtype}); divide int16 by 32768")
    if len(wave) < MIN_SAMPLES:
        raise AudioError(
            f"{what}: {len(wave)} samples ({1000 * len(wave) / SAMPLE_RATE:.0f} ms) are too short for a speaker "
            f"embedding; it needs at least {MIN_SAMPLES} samples ({1000 * MIN_SAMPLES // SAMPLE_RATE} ms at 16 kHz)",
            code="too_short",
        )
    wave = wave.astype(np.float32, copy=False)
    if not np.isfinite(wave).all():
        raise AudioError(f"{what}: samples contain NaN or infinity")
    return wave


class SpeakerModel:
    """CAM++ speaker embeddings (192-dim, FunASR's numbers) for 16 kHz mono float32 audio.

    model: a folder holding campplus_cn_common.bin (configuration.json, config.yaml are not needed),
    the alias "campplus", or a hub id; hub: "ms" (ModelScope) or "hf" (Hugging Face).
    device: "cpu" (default), "cuda[:N]" or "auto". dtype: "fp32" (default, FunASR's numbers) or
    "bf16"/"fp16" (twice as fast where the hardware has them; embeddings within cosine 0.9999 of
    fp32's, which clustering cannot tell apart). threads: torch CPU threads (0: torch's default);
    note torch.set_num_threads is process-wide.
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_SPEAKER_MODEL,
        hub: str = "ms",
        *,
        device: str = "cpu",
        dtype: str = "fp32",
        threads: int = 0,
        cache_dir=None,
    ):
        import torch

        from .campplus import CAMPPlus

        if threads:
            torch.set_num_threads(threads)
        self.device = _torch_device(device)
        self.model_dir = resolve_speaker_model(str(model), hub, cache_dir)
        # as result.json names it: a hub id as given, a local folder by its name only
        self.model_id = Path(str(model)).name if Path(str(model)).is_dir() else str(model)
        path = self.model_dir / WEIGHTS_FILE
        network = CAMPPlus()
        state = check_state_dict(read_state_dict(path), network.state_dict(), path)
        network.load_state_dict(state, strict=True)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
        self.dtype = getattr(torch, DTYPES[dtype])
        self.network = network.eval().to(self.device, self.dtype)
        logger.info("CAM++ speaker model from %s on %s (%s)", self.model_dir, self.device, dtype)

    def _forward(self, feats: np.ndarray) -> np.ndarray:
        """(B, T, 80) features of equal length -> (B, 192) float32 embeddings."""
        import torch

        with torch.inference_mode():
            out = self.network(torch.from_numpy(feats).to(self.device, self.dtype))
        return out.float().cpu().numpy()

    def embed(self, samples: np.ndarray) -> np.ndarray:
        """(N,) float32 samples at 16 kHz, N >= 720 (45 ms) -> (192,) float32 embedding."""
        feats = fbank(_wave(samples))  # (T, 80)
        return self._forward(feats[None])[0]

    def embed_batch(self, pieces: list[np.ndarray]) -> np.ndarray:
        """n pieces (each (N_i,) at 16 kHz) -> (n, 192), equal to embed() of each piece.

        Pieces with the same number of fbank frames run together (no padding: the time means of
        CAM++ would change), at most MAX_BATCH_FRAMES frames per pass; equal-length windows are one group.
        """
        waves = [_wave(p, f"piece {i}") for i, p in enumerate(pieces)]
        out = np.zeros((len(waves), EMBEDDING_SIZE), dtype=np.float32)
        groups: dict[int, list[int]] = {}
        for i, wave in enumerate(waves):
            groups.setdefault(num_frames(len(wave)), []).append(i)
        for frames, members in groups.items():
            per_pass = max(1, MAX_BATCH_FRAMES // frames)
            for k in range(0, len(members), per_pass):
                batch = members[k : k + per_pass]
                feats = np.stack([fbank(waves[i]) for i in batch])  # (B, T, 80)
                out[batch] = self._forward(feats)
        return out

    def embed_windows(
        self, samples: np.ndarray, window_s: float = WINDOW_S, shift_s: float = SHIFT_S
    ) -> tuple[np.ndarray, np.ndarray]:
        """Windows of one segment as FunASR's diarization cuts them -> (starts_s (W,), embeddings (W, 192)).

        starts_s: float64 seconds from the segment's start (a window ends at min(start + window_s,
        segment end)). A segment shorter than window_s is one window, zero-padded to window_s as
        FunASR does. Empty input gives W = 0.
        """
        wave = np.asarray(samples)
        if wave.ndim != 1:
            raise AudioError(f"embed_windows wants (N,) mono samples at 16 kHz, got shape {wave.shape}")
        window, shift = int(window_s * SAMPLE_RATE), int(shift_s * SAMPLE_RATE)
        if window < MIN_SAMPLES or shift < 1:
            raise ValueError(f"window_s must be >= {MIN_SAMPLES / SAMPLE_RATE} s and shift_s > 0 (got {window_s}, {shift_s})")
        ranges = window_ranges(len(wave), window, shift)
        if not ranges:
            return np.zeros(0), np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        pieces = [np.pad(wave[a:b], (0, window - (b - a))) for a, b in ranges]  # each (window,)
        starts = np.array([a for a, _ in ranges], dtype=np.float64) / SAMPLE_RATE
        return starts, self.embed_batch(pieces)
