"""The Live tab in a real browser: Debian's chromium with a fake microphone that plays a spoken
WAV (espeak-ng), driven by Playwright. The meter must show every hop of the audio that reached
the server, as it arrives, and Stop must write the take's output folder."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from audio_files import espeak, write_audio
from test_browser import ARGS, CHROMIUM

HOP_S = 0.5  # the tab's default hop
RUN_S = 8.0  # of streaming observed


@pytest.fixture(scope="module")
def fake_mic(tmp_path_factory):
    pause = np.zeros(4000, np.float32)
    speech = np.concatenate([espeak("Hello, this is the live meter speaking."), pause, espeak("And now, a second sentence.", 1)])
    return write_audio(tmp_path_factory.mktemp("mic") / "speech.wav", speech, 16000, "wav")


@pytest.fixture
def live_page(web, fake_mic):
    from playwright.sync_api import sync_playwright

    args = [*ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    args.append(f"--use-file-for-fake-audio-capture={fake_mic}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_context(permissions=["microphone"], viewport={"width": 1280, "height": 1200}).new_page()
        page.goto(web.url + "/")
        page.get_by_role("tab", name="Live").click()
        page.wait_for_selector("#live-mic button", state="visible")
        yield page
        browser.close()


READ = """() => {
  const meter = document.querySelector('#live-meter .ea-live-meter');
  const status = document.querySelector('#live-status .ea-live-status');
  const chart = document.querySelector('#live-chart svg');
  return [Number(meter?.dataset.hop ?? -1), Number(status?.dataset.hops ?? 0),
          Number(status?.dataset.seconds ?? 0), Number(chart?.dataset.points ?? 0)];
}"""


def test_the_meter_follows_the_microphone_and_stop_writes_the_take(live_page, web):
    page = live_page
    page.locator("#live-mic button", has_text="Record").first.click()
    page.wait_for_function(f"({READ})()[0] >= 0", timeout=30_000, polling=50)
    seen = []
    end = time.monotonic() + RUN_S
    while time.monotonic() < end:
        seen.append(page.evaluate(READ))  # (meter's hop, hops scored, s of audio received, chart points)
        time.sleep(0.05)
    page.locator("#live-mic button", has_text="Stop").first.click()
    hops = [s[0] for s in seen]
    assert hops == sorted(hops) and len(set(hops)) >= 3, seen[::10]  # the meter rolls on
    for hop, scored, seconds, points in seen:
        # every hop scored is drawn: the meter shows the newest, the chart one point per hop; and
        # the meter keeps up with the audio that reached the server (Gradio may drop chunks under load)
        assert hop == scored - 1 and points == scored, (hop, scored, points)
        assert scored >= int(seconds / HOP_S) - 2, (scored, seconds)
    assert page.locator("#live-chart svg polyline").count() == 9
    assert page.locator("#live-segments .ea-seg").count() >= 1
    page.wait_for_function("document.querySelector('#live-log textarea').value.includes('Output folder: ')", timeout=60_000)
    folder = page.input_value("#live-log textarea").split("Output folder: ")[1].strip()
    saved = json.loads((web.outputs / folder / "result.json").read_text(encoding="utf-8"))
    assert saved["file"] == "live.wav" and saved["granularity"] == "frame" and saved["duration_s"] >= seen[-1][2]
    assert (web.outputs / folder / "processed_audio.wav").is_file()
    page.locator("#live-downloads td[aria-label='result.json']").wait_for(timeout=10_000)
