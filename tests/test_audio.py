"""Audio loading: every format, every input form, resampling accuracy, every bad-input case."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from audio_files import FORMATS, SUFFIX, sine, write_audio, write_video

from emotion_app.audio.decoding import AudioStream
from emotion_app.audio.source import load_audio
from emotion_app.errors import AudioError

LOSSLESS = {"wav", "wav_s24", "wav_s32", "wav_f32", "flac", "aiff"}


def suffix(fmt: str) -> str:
    return SUFFIX.get(fmt, fmt)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_decodes_to_16k_mono(tmp_path, fmt):
    rate = 48000 if fmt in ("opus", "webm") else 44100
    path = write_audio(tmp_path / f"a.{suffix(fmt)}", sine(2.0, rate, freq=440, channels=2), rate, fmt)
    audio = load_audio(path)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.info.sample_rate == rate and audio.info.channels == 2 and audio.info.resampled
    assert audio.info.container and audio.info.codec
    assert abs(audio.duration_s - 2.0) < 0.05  # lossy codecs add a few ms of priming
    mid = audio.samples[8000:24000]
    # stereo channels at 0.5 and 0.25 amplitude average to a 0.375 sine
    rms_expected = 0.375 / np.sqrt(2)
    tol = 0.01 if fmt in LOSSLESS else 0.06
    assert abs(np.sqrt(np.mean(mid**2)) - rms_expected) < tol * 3
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    assert abs(np.argmax(spectrum) * 16000 / len(mid) - 440) < 3


@pytest.mark.parametrize("container", ["mp4", "mkv", "mov"])
def test_audio_track_of_video(tmp_path, container):
    path = write_video(tmp_path / f"v.{container}", sine(1.5, 44100, freq=300), 44100, container, seconds=1.5)
    audio = load_audio(path)
    assert audio.info.codec == "aac" and abs(audio.duration_s - 1.5) < 0.05
    assert np.abs(audio.samples).max() > 0.3


def test_resampling_accuracy_against_a_known_sine(tmp_path):
    rate, freq = 44100, 1000.0
    path = write_audio(tmp_path / "s.wav", sine(1.0, rate, freq=freq, amp=0.5), rate, "wav_f32")
    out = load_audio(path).samples
    assert len(out) == 16000
    t = np.arange(len(out)) / 16000
    ideal = 0.5 * np.sin(2 * np.pi * freq * t)
    inner = slice(400, -400)  # edges carry the resampler's filter transient
    assert np.abs(out[inner] - ideal[inner]).max() < 2e-3
    # the one-shot path (arrays) and the streaming path (files) agree
    arr = load_audio((rate, sine(1.0, rate, freq=freq, amp=0.5)[0])).samples
    assert np.abs(arr[inner] - out[inner]).max() < 2e-3


def test_input_forms_agree(tmp_path):
    x = sine(1.2, 16000, freq=220)[0]
    path = write_audio(tmp_path / "a.wav", x, 16000, "wav_f32")
    by_path = load_audio(path)
    assert not by_path.info.resampled
    np.testing.assert_allclose(by_path.samples, x, atol=1e-7)
    for source in (str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), open(path, "rb")):
        np.testing.assert_allclose(load_audio(source).samples, x, atol=1e-7)
    np.testing.assert_allclose(load_audio(x, sample_rate=16000).samples, x)
    int16 = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio((16000, int16)).samples, x, atol=1e-4)  # Gradio's form
    stereo = np.stack([x, x], axis=1)  # (N, C)
    np.testing.assert_allclose(load_audio((16000, stereo)).samples, x, atol=1e-7)
    with pytest.raises(AudioError, match="needs its sample rate"):
        load_audio(x)
    with pytest.raises(AudioError, match="Cannot read audio from a list"):
        load_audio([1, 2, 3])


def test_short_and_silent_audio_are_accepted_with_warnings():
    short = load_audio(sine(0.5, 16000)[0], sample_rate=16000)
    assert [w.code for w in short.warnings] == ["short"]
    silent = load_audio(np.zeros(32000, np.float32), sample_rate=16000)
    assert [w.code for w in silent.warnings] == ["silent"]
    assert load_audio(sine(2.0, 16000)[0], sample_rate=16000).warnings == []


def _wav_bytes(tmp_path, fmt="wav", seconds=1.0, rate=16000):
    return write_audio(tmp_path / "x.wav", sine(seconds, rate), rate, fmt).read_bytes()


def _patch_rate(data: bytes, rate: int) -> bytes:
    return data[:24] + struct.pack("<I", rate) + data[28:]


def _bad_inputs(tmp_path):
    wav = _wav_bytes(tmp_path)
    f32 = bytearray(_wav_bytes(tmp_path, "wav_f32"))
    f32[-400:-396] = struct.pack("<f", float("nan"))
    data_pos = wav.index(b"data") + 4
    huge = wav[:data_pos] + struct.pack("<I", 0x7FFFFF00) + wav[data_pos + 4 :]
    flac = write_audio(tmp_path / "t.flac", sine(20.0, 16000), 16000, "flac").read_bytes()
    no_audio = write_video(tmp_path / "n.mp4", None, 16000).read_bytes()
    return {
        "empty": (b"", "empty"),
        "not_audio": (b"this is a text file, not audio\n" * 50, "not_audio"),
        "zero_rate": (_patch_rate(wav, 0), "bad_rate"),
        "absurd_rate": (_patch_rate(wav, 50_000_000), "bad_rate"),
        "nan": (bytes(f32), "not_finite"),
        "header_claims_gigabytes": (huge, "truncated"),
        "truncated_flac": (flac[: len(flac) // 3], "truncated|corrupt"),
        "no_audio_track": (no_audio, "no_audio_track"),
        "garbage_after_header": (wav[:44] + bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), None),
    }


@pytest.mark.parametrize(
    "case",
    ["empty", "not_audio", "zero_rate", "absurd_rate", "nan", "header_claims_gigabytes", "truncated_flac", "no_audio_track"],
)
def test_bad_files_raise_one_specific_error(tmp_path, case):
    data, code = _bad_inputs(tmp_path)[case]
    path = tmp_path / "bad.wav"
    path.write_bytes(data)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert info.value.code in code.split("|")
    assert "bad.wav" in str(info.value) and "Traceback" not in str(info.value)
    with pytest.raises(AudioError):  # same through bytes
        load_audio(data)


def test_header_claiming_gigabytes_allocates_nothing(tmp_path):
    import resource

    data, _ = _bad_inputs(tmp_path)["header_claims_gigabytes"]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(AudioError, match=r"declares 2.1 GB of audio \(18 h 38 min\) but the file holds only 32 KB;"):
        load_audio(data)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB


def test_garbage_payload_decodes_or_fails_cleanly(tmp_path):
    data, _ = _bad_inputs(tmp_path)["garbage_after_header"]
    try:  # raw PCM has no structure to violate: noise is valid audio
        audio = load_audio(data)
        assert np.isfinite(audio.samples).all()
    except AudioError as exc:
        assert exc.code in {"corrupt", "truncated", "not_audio", "too_short"}


def test_bad_arrays():
    with pytest.raises(AudioError, match="NaN") as e:
        load_audio(np.array([0.1, np.nan] * 1000, np.float32), sample_rate=16000)
    assert e.value.code == "not_finite"
    with pytest.raises(AudioError, match="empty"):
        load_audio(np.zeros(0, np.float32), sample_rate=16000)
    for rate in (0, -5, 10**9):
        with pytest.raises(AudioError, match="not plausible") as e:
            load_audio(np.zeros(1000, np.float32), sample_rate=rate)
        assert e.value.code == "bad_rate"
    with pytest.raises(AudioError, match="too short"):
        load_audio(np.ones(100, np.float32), sample_rate=16000)


def test_maximum_duration(tmp_path):
    path = write_audio(tmp_path / "long.flac", sine(12.0, 16000), 16000, "flac")
    with pytest.raises(AudioError, match=r"too long \(12.00 s\); the limit is 5.00 s") as e:
        load_audio(path, max_duration_s=5)
    assert e.value.code == "too_long"
    with pytest.raises(AudioError, match="too long"):
        load_audio(sine(12.0, 16000)[0], sample_rate=16000, max_duration_s=5)
    assert load_audio(path, max_duration_s=20).duration_s == 12.0


def test_stream_yields_blocks_without_holding_the_file(tmp_path):
    path = write_audio(tmp_path / "s.flac", sine(30.0, 44100), 44100, "flac")
    with AudioStream(path) as stream:
        sizes = [len(b) for b in stream]
    assert max(sizes) < 16000 and abs(sum(sizes) - 480000) <= 1
    assert stream.info.duration_s == pytest.approx(30.0, abs=1e-3)
