"""Screenshots of the page for docs/: `python scripts/screenshots.py [--model DIR]`.

Starts the app on a free port (a random-weight checkpoint unless --model is given), drives Debian's
chromium with Playwright, and writes docs/screenshots/{utterance,frame,frame_zh,compare,long,phone}.png.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="model folder (default: a random tiny_large checkpoint)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()

    from audio_files import write_audio
    from playwright.sync_api import sync_playwright

    from emotion_app.tools.random_checkpoint import build_random_checkpoint
    from emotion_app.web.server import AppSettings, launch, load_engine

    tmp = Path(tempfile.mkdtemp())
    model = args.model or str(build_random_checkpoint(tmp / "model", "tiny_large", seed=1))
    engine, error = load_engine(model=model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = launch(engine, AppSettings(port=port, outputs_dir=tmp / "outputs"), error, block=False)
    import soundfile as sf

    speech, rate = sf.read(ROOT / "emotion_app" / "assets" / "example_speech.flac", dtype="float32")
    clip = write_audio(tmp / "interview.mp3", speech, rate, "mp3")
    clips = [clip, write_audio(tmp / "angry_call.wav", speech[::-1].copy(), rate, "wav")]
    clips.append(write_audio(tmp / "voicemail.ogg", speech[: len(speech) // 2], rate, "ogg"))
    from audio_files import espeak

    lines = [
        "Hello and welcome to the weekly meeting.",
        "The numbers this month are not good at all.",
        "But I am happy with the new team.",
    ]
    pause = np.zeros(16000, np.float32)
    meeting = write_audio(
        tmp / "meeting.flac", np.concatenate([p for i, x in enumerate(lines) for p in (pause, espeak(x, i))]), 16000, "flac"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
        for name, granularity, lang in (("utterance", "utterance", "en"), ("frame", "frame", "en"), ("frame_zh", "frame", "zh")):
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.goto(demo.local_url)
            page.wait_for_selector("#start")
            if lang == "zh":
                page.get_by_label("中文").check()
                page.wait_for_selector("#start:text('开始识别')")
            page.locator("#audio-file input[type=file]").set_input_files(str(clip))
            page.wait_for_selector("#audio-file td[aria-label='interview.mp3']")
            page.locator(f"#granularity input[value='{granularity}']").check()
            page.click("#start")
            page.wait_for_selector("#emotion-card .ea-card", timeout=60_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(demo.local_url)
        page.get_by_role("tab", name="Compare clips").click()
        page.locator("#cmp-files input[type=file]").set_input_files([str(c) for c in clips])
        page.wait_for_selector("#cmp-files td[aria-label='angry_call.wav']")
        page.click("#cmp-start")
        page.wait_for_selector("#similarity img, #similarity svg", timeout=60_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out / "compare.png"), full_page=True)
        page.goto(demo.local_url)
        page.get_by_role("tab", name="Long recording").click()
        page.locator("#long-file input[type=file]").set_input_files(str(meeting))
        page.wait_for_selector("#long-file td[aria-label='meeting.flac']")
        page.click("#long-start")
        page.wait_for_selector("#long-band .ea-seg", timeout=120_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out / "long.png"), full_page=True)
        phone(browser, demo.local_url, clip, out / "phone.png")
        browser.close()
    demo.close()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))


def phone(browser, url: str, clip: Path, path: Path) -> None:
    """The first screen of the Analyze tab on a 390 x 844 phone, in Chinese, after a frame analysis."""
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page.goto(url)
    page.wait_for_selector("#start")
    page.get_by_label("中文").check()
    page.wait_for_selector("#start:text('开始识别')")
    page.locator("#audio-file input[type=file]").set_input_files(str(clip))
    page.wait_for_selector(f"#audio-file td[aria-label='{clip.name}']")
    page.locator("#granularity input[value='frame']").check()
    page.click("#start")
    page.wait_for_selector("#timeline polyline", timeout=60_000)
    page.wait_for_timeout(1500)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path))  # the first screen: header, tabs, file, Start
    page.close()


if __name__ == "__main__":
    main()
