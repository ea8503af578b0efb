"""The page in a real browser: Debian's chromium driven by Playwright, headless."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
from audio_files import speechlike, write_audio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, web):
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    page.goto(web.url + "/")
    page.wait_for_selector("#start")
    yield page
    page.close()


def upload(page, path):
    clear = page.locator("#audio-file button[aria-label='Clear'], #audio-file button[aria-label='清除']")  # Gradio's own words
    if clear.count():  # a loaded file replaces the file input until cleared
        clear.first.click()
    page.locator("#audio-file input[type=file]").set_input_files(str(path))
    page.wait_for_selector(f"#audio-file td[aria-label='{path.name}']")


def test_frame_mode_shows_card_scores_timeline_and_log(page, web, tmp_path):
    path = write_audio(tmp_path / "talk.flac", speechlike(2.5, 44100, seed=3), 44100, "flac")
    expected = web.engine.predict(path)
    upload(page, path)
    assert not page.locator("#smoothing").is_visible()
    page.get_by_label("frame (50 per second)").check()
    page.wait_for_selector("#smoothing", state="visible")
    page.locator("#smoothing input[type=number]").first.fill("21")  # window: 21 frames
    page.click("#start")
    page.wait_for_selector("#emotion-card .ea-card", timeout=60_000)
    card = page.inner_text("#emotion-card")
    assert expected.label.emoji in card and expected.label.zh in card and expected.emotion in card
    assert f"{expected.confidence * 100:.1f}%" in card
    rows = page.locator("#scores .ea-row")
    assert rows.count() == 9 and rows.first.get_attribute("data-emotion") == expected.emotion
    assert page.locator("#dominant-band .ea-seg").count() >= 1
    page.wait_for_selector("#timeline polyline.ea-line", timeout=20_000)  # the timeline drew lines
    log = page.input_value("#log textarea")
    assert "File: talk.flac" in log and "44100 Hz -> 16000 Hz mono" in log and "Duration: 2.50 s" in log
    folder = log.split("Output folder: ")[1].strip()
    assert (web.outputs / folder / "result.json").is_file()
    page.locator("#downloads td[aria-label='processed_audio.wav']").wait_for(timeout=10_000)
    assert page.locator("#downloads td[aria-label='result.json']").count() == 1
    assert page.locator("#downloads td[aria-label='segments.vtt']").count() == 1
    saved = json.loads((web.outputs / folder / "result.json").read_text(encoding="utf-8"))
    assert saved["smoothing"]["window"] == 21 and saved["smoothing"]["method"] == "moving_average"
    assert page.locator("#dominant-band .ea-seg").count() == len(saved["segments"])
    summary = page.inner_text("#summary")
    assert "Share of time" in summary and f"{saved['summary']['num_segments']} · changes per minute" in summary
    page.wait_for_selector(f"#segments [role=grid][aria-rowcount='{len(saved['segments']) + 1}']", timeout=10_000)
    smoothed = page.inner_html("#timeline")
    page.get_by_label("raw").check()  # the raw-vs-smoothed toggle redraws the timeline
    page.wait_for_function(f"document.querySelector('#timeline').innerHTML.length !== {len(smoothed)}", timeout=20_000)
    assert page.locator("#timeline polyline.ea-line").count() >= 1


def test_compare_tab_draws_radar_and_similarity(page, tmp_path):
    clips = [write_audio(tmp_path / f"clip{i}.wav", speechlike(1.0 + i, seed=i), 16000, "wav") for i in range(3)]
    page.get_by_role("tab", name="Compare clips").click()
    page.locator("#cmp-files input[type=file]").set_input_files([str(c) for c in clips])
    page.wait_for_selector("#cmp-files td[aria-label='clip2.wav']")
    page.click("#cmp-start")
    page.wait_for_selector("#similarity img", timeout=60_000)
    assert page.locator("#radar img").count() == 1
    page.wait_for_selector("#cmp-table [role=grid][aria-rowcount='4']", timeout=10_000)  # header + 3 clips
    assert "clip0.wav" in page.inner_text("#cmp-table")


def test_corrupt_file_error_then_page_still_works_in_chinese(page, tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3 this is not really an mp3" * 20)
    upload(page, bad)
    page.click("#start")
    toast = page.locator(".toast-body.error")
    toast.first.wait_for(timeout=30_000)
    assert "broken.mp3: not an audio or video file" in toast.first.inner_text()
    page.locator(".toast-close").first.click()
    page.get_by_label("中文").check()
    page.wait_for_selector("#start:text('开始识别')")
    page.click("#start")
    page.locator(".toast-body.error :text('无法解码')").first.wait_for(timeout=30_000)
    good = write_audio(tmp_path / "ok.wav", speechlike(1.5), 16000, "wav")
    upload(page, good)
    page.click("#start")
    page.wait_for_selector("#emotion-card .ea-card", timeout=60_000)
    assert "置信度" in page.inner_text("#emotion-card")
    assert "文件: ok.wav" in page.input_value("#log textarea")


def test_example_button_loads_the_bundled_clip(page):
    page.click("text=Load an example clip")
    page.wait_for_selector("#audio-file td[aria-label='example_speech.flac']")
    page.click("#start")
    page.wait_for_selector("#emotion-card .ea-card", timeout=60_000)
    assert "Duration: 5.32 s" in page.input_value("#log textarea")


def test_long_recording_tab_segments_and_downloads(page, web, tmp_path):
    from audio_files import espeak

    pause = np.zeros(16000, np.float32)
    talk = np.concatenate([pause, espeak("First point of the meeting."), pause, pause, espeak("And the second point.", 1), pause])
    path = write_audio(tmp_path / "meeting.mp3", talk, 16000, "mp3")
    page.get_by_role("tab", name="Long recording").click()
    page.locator("#long-file input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#long-file td[aria-label='meeting.mp3']")
    page.click("#long-start")
    page.wait_for_selector("#long-band .ea-seg", timeout=60_000)
    assert page.locator("#long-band .ea-seg").count() == 2
    assert "Speech" in page.inner_text("#long-summary") and "Transitions" in page.inner_text("#long-summary")
    folder = page.input_value("#long-log textarea").split("Output folder: ")[1].strip()
    saved = json.loads((web.outputs / folder / "result.json").read_text(encoding="utf-8"))
    assert saved["granularity"] == "segments" and len(saved["segments"]) == 2
    assert (web.outputs / folder / "segments.vtt").read_text().count(" --> ") == 2
    page.locator("#long-downloads td[aria-label='segments.csv']").wait_for(timeout=10_000)


def test_batch_tab_table_with_a_bad_file_and_zip(page, tmp_path):
    good = [write_audio(tmp_path / f"g{i}.wav", speechlike(1.0 + i, seed=i), 16000, "wav") for i in range(2)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense" * 30)
    archive = tmp_path / "pack.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(good[0], "z.wav")
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in (*good, bad, archive)])
    page.wait_for_selector("#batch-files td[aria-label='pack.zip']")
    page.click("#batch-start")
    page.wait_for_selector("#batch-table [role=grid][aria-rowcount='5']", timeout=60_000)  # header + 4 files
    table = page.inner_text("#batch-table")
    assert "pack.zip/z.wav" in table and "bad.wav" in table and "not an audio" in table
    assert "3 done, 1 failed, 4 files" in page.inner_text("#batch-status")
    page.locator("#batch-downloads td[aria-label='results.zip']").wait_for(timeout=10_000)


def test_long_recording_tab_shows_the_conversation_and_renames_its_speakers(page, web, tmp_path):
    import soundfile as sf
    from conversation_audio import call

    path = tmp_path / "call.wav"
    sf.write(path, call(2).stereo(), 16000)
    page.get_by_role("tab", name="Long recording").click()
    page.locator("#long-file input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#long-file td[aria-label='call.wav']")
    page.locator("#long-speakers input").click()
    page.get_by_role("option", name="one per channel (calls)").click()
    page.locator("#long-names input, #long-names textarea").first.fill("Agent,Customer")
    page.click("#long-start")
    page.wait_for_selector("#long-band .ea-lane", timeout=60_000)
    assert [page.locator("#long-band .ea-lane-name").nth(i).inner_text() for i in range(2)] == ["Agent", "Customer"]
    assert page.locator("#long-band .ea-lane[data-speaker='Agent'] .ea-seg").count() == 2
    assert page.locator("#long-band .ea-speakers tr[data-speaker]").count() == 2
    table = page.inner_text("#long-segments")
    headers = [w for w in table.split() if w in ("speaker", "start", "end", "emotion", "confidence", "Speaker")]
    assert headers == ["speaker", "start", "end", "emotion", "confidence"]  # one case, as the other tables
    assert table.count("Agent") == 2 and table.count("Customer") == 2
    page.locator("#long-segments [role=gridcell][aria-rowindex='3'][aria-colindex='2']").click()  # a turn of the customer's
    page.wait_for_selector(
        "#long-segment-audio audio, #long-segment-audio [data-testid='waveform-x']", state="attached", timeout=15_000
    )
    assert page.locator("#long-segment-audio").is_visible()
    first = page.input_value("#long-log textarea").split("Output folder: ")[1].split()[0]
    page.locator("#long-names input, #long-names textarea").first.fill("Alice,Bob")
    page.click("#long-rename")
    page.wait_for_function("document.querySelector('#long-band .ea-lane-name')?.innerText === 'Alice'", timeout=30_000)
    folder = page.input_value("#long-log textarea").split("Output folder: ")[1].split()[0]
    saved = json.loads((web.outputs / folder / "result.json").read_text(encoding="utf-8"))
    assert folder != first and [s["name"] for s in saved["speakers"]] == ["Alice", "Bob"]
    assert "<v Bob>" in (web.outputs / folder / "conversation.vtt").read_text(encoding="utf-8")
