"""CAM++ input features: 80-bin Kaldi log-mel filterbanks with the mean over time removed.

Computed exactly as FunASR 1.4.16 computes them (funasr/models/campplus/utils.py `extract_feature`):
`funasr.utils.fbank.fbank(wave[None], num_mel_bins=80)` with every other option at its
torchaudio.compliance.kaldi default, then `feature - feature.mean(dim=0)`. Without torchaudio
FunASR takes that fbank from the `kaldi-native-fbank` package, and so do we (imported on first
use, so importing this module is cheap; it needs neither torch nor FunASR).

The frame: 25 ms (400 samples) Povey window every 10 ms (160 samples) at 16 kHz, `snip_edges`
(only whole frames: T = 1 + (N - 400) // 160 for N >= 400 samples, else 0), DC offset removed,
pre-emphasis 0.97, 512-point FFT, power spectrum, 80 triangular mel bins from 20 Hz to 8 kHz,
natural log floored at float32 epsilon. No dither (FunASR passes dither=0.0; note that
kaldi-native-fbank's own default would be 3e-5, so it is set explicitly). The waveform is used
as given, float in [-1, 1]: no scaling by 32768 (after the mean removal a scale only matters in
frames quiet enough to hit the log floor).
"""

from __future__ import annotations

import logging

import numpy as np

from ..constants import SAMPLE_RATE  # CAM++ (iic/speech_campplus_sv_zh-cn_16k-common) was trained at 16 kHz too

logger = logging.getLogger(__name__)

NUM_MEL_BINS = 80
FRAME_LENGTH_MS = 25.0  # 400 samples at 16 kHz
FRAME_SHIFT_MS = 10.0  # 160 samples at 16 kHz
FRAME_LENGTH = 400  # samples
FRAME_SHIFT = 160  # samples


def num_frames(num_samples: int) -> int:
    """How many feature frames `num_samples` samples of 16 kHz audio give (Kaldi snip_edges)."""
    return 0 if num_samples < FRAME_LENGTH else 1 + (num_samples - FRAME_LENGTH) // FRAME_SHIFT


def _options():
    """kaldi-native-fbank options equal to torchaudio.compliance.kaldi.fbank's defaults, 80 bins."""
    try:
        import kaldi_native_fbank as knf
    except ImportError as exc:
        raise ImportError(
            "speaker embeddings need the kaldi-native-fbank package for their features: pip install kaldi-native-fbank"
        ) from exc
    opts = knf.FbankOptions()
    frame = opts.frame_opts
    frame.samp_freq = float(SAMPLE_RATE)
    frame.frame_length_ms = FRAME_LENGTH_MS
    frame.frame_shift_ms = FRAME_SHIFT_MS
    frame.dither = 0.0
    frame.snip_edges = True
    frame.window_type = "povey"
    frame.preemph_coeff = 0.97
    frame.remove_dc_offset = True
    frame.round_to_power_of_two = True
    opts.mel_opts.num_bins = NUM_MEL_BINS
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0  # 0: the Nyquist frequency
    opts.energy_floor = 1.0  # unused: use_energy is off
    opts.raw_energy = True
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    opts.htk_compat = False
    return knf, opts


def fbank(samples: np.ndarray) -> np.ndarray:
    """(N,) float32 mono samples at 16 kHz in [-1, 1] -> (T, 80) float32 mean-normalised log-mel features.

    T = 1 + (N - 400) // 160 frames (25 ms windows every 10 ms); T = 0 for N < 400 (FunASR then
    has no frames either). The per-bin mean over the T frames is subtracted (CMN, no variance
    normalisation), so a silent piece gives all zeros.
    """
    wave = np.asarray(samples, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"fbank wants (N,) mono samples, got shape {wave.shape}")
    knf, opts = _options()
    online = knf.OnlineFbank(opts)
    online.accept_waveform(float(SAMPLE_RATE), wave)
    online.input_finished()
    frames = online.num_frames_ready
    if frames == 0:
        return np.zeros((0, NUM_MEL_BINS), dtype=np.float32)
    feats = np.stack([np.asarray(online.get_frame(i), dtype=np.float32) for i in range(frames)])  # (T, 80)
    return feats - feats.mean(axis=0, keepdims=True, dtype=np.float32)
