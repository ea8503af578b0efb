"""The page as a demanding user sees it (issue 10), in Chromium on a desktop (1366x900) and a phone
(390x844): progress on long actions, no stale result beside a new file, the timeline across
language switches, Chinese everywhere, every tab on a phone, smoothing without the model, contrast."""

from __future__ import annotations

import re
import shutil
import time
from types import SimpleNamespace

import numpy as np
import pytest
from audio_files import espeak, speechlike, write_audio
from conftest import free_port

from emotion_app.constants import LABEL_KEYS
from emotion_app.retention import output_folders

pytestmark = pytest.mark.long  # started first in its worker (tests/workers.py)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PERCENT = r"/\d%/"

# What English may stay in Chinese mode: names of files, formats, models and devices, units, the
# emotions' English keys (every label is bilingual by design), and product names.
ALLOWED = [
    r"[\w.()-]+\.(wav|flac|mp3|ogg|zip|json|jsonl|csv|vtt|png|npy)\b",
    r"outputs_\d{8}_\d{6}(_\d+)?",
    r"\d+(\.\d+)?\s?(s|ms|Hz|kB|KB|MB|GB|B|min)\b",
    r"\b(Hz|m:ss|pcm_\w+|wav|flac|ogg|vorbis|mp3|cpu|fp32|model|tiny)\b",
    r"\b(emotion2vec\+?|Gradio|API|MCP|EWMA|alpha|VAD|zip|CSV|JSONL|MLP|English|Language)\b",
    r"\b(WAV|MP3|M4A|FLAC|OGG|OPUS|WEBM|AIFF|MP4|MKV|MOV|RTTM|WebVTT|SRT|JSON|whisper)\b",  # formats
    r"\w+=[^,，\s]*",  # examples of what to type, such as ang=angry
    r"\b(" + "|".join(LABEL_KEYS) + r")\b",
]
# Texts, placeholders, alt texts and text alternatives of everything visible on the page (a file
# list's names whole, from their cells' labels; code as typed is not text to translate).
VISIBLE_TEXT = """() => {
  const out = [];
  const shown = (el) => el && el.getClientRects().length && getComputedStyle(el).visibility !== "hidden";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement, text = walker.currentNode.textContent.trim();
    if (!text || !shown(el) || el.closest("code")) continue;
    const cell = el.closest("td[aria-label]");
    out.push(cell ? cell.getAttribute("aria-label") : text);
  }
  for (const el of document.querySelectorAll("[placeholder], img[alt], [role=img][aria-label]")) {
    const text = el.getAttribute("placeholder") || el.getAttribute("alt") || el.getAttribute("aria-label");
    if (text && shown(el)) out.push(text);
  }
  return out;
}"""
# WCAG 2 contrast of every visible text against what is behind it (backgrounds composited up the
# tree, opacity included): the texts under 4.5:1 (3:1 for large text). Disabled controls are exempt.
LOW_CONTRAST = """() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = (c) => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const behind = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    return layers.reverse().reduce((bg, c) => over(c, bg), [255, 255, 255, 1]); };
  const out = [], seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement, text = walker.currentNode.textContent.trim();
    if (!text || !el || seen.has(el) || !el.getClientRects().length) continue;
    seen.add(el);
    const cs = getComputedStyle(el);
    if (cs.visibility === "hidden" || el.closest("[disabled], [aria-disabled=true], svg, .ea-emo")) continue;
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const bg = behind(el), c = parse(cs.color), fg = over([c[0], c[1], c[2], c[3] * opacity], bg);
    const ratio = (Math.max(lum(fg), lum(bg)) + 0.05) / (Math.min(lum(fg), lum(bg)) + 0.05);
    const size = parseFloat(cs.fontSize), large = size >= 24 || (Number(cs.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) out.push(`${text.slice(0, 40)} ${ratio.toFixed(2)}:1 (${cs.color} on rgb(${bg.slice(0, 3)}))`);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dir):
    """A server of its own (recordings of minutes, 50 MB uploads) that counts the model's calls."""
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, launch

    engine = Engine(model=str(tiny_dir))
    calls, run = [], engine.run_chunks
    engine.run_chunks = lambda chunks, keep_frames=False: calls.append(len(chunks)) or run(chunks, keep_frames)
    settings = AppSettings(port=free_port(), outputs_dir=tmp_path_factory.mktemp("ux_outputs"), max_upload_mb=50)
    demo = launch(engine, settings, block=False)
    yield SimpleNamespace(url=demo.local_url.rstrip("/"), calls=calls, outputs=settings.outputs_dir)
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def five_minutes(tmp_path_factory):
    """A 5-minute call: spoken sentences between pauses of 3 s (OGG, 1.5 MB)."""
    lines = [espeak(text, i) for i, text in enumerate(["Hello, thank you for calling.", "I would like to complain.", "Thanks."])]
    pause = np.zeros(3 * 16000, np.float32)
    parts, total = [], 0
    while total < 300 * 16000:
        parts += [lines[len(parts) // 2 % 3], pause]
        total += len(parts[-2]) + len(pause)
    return write_audio(tmp_path_factory.mktemp("call") / "call.ogg", np.concatenate(parts), 16000, "ogg")


def open_page(browser, app, viewport):
    page = browser.new_page(viewport=viewport)
    page.goto(app.url + "/")
    page.wait_for_selector("#start")
    return page


def upload(page, elem_id: str, path):
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    page.wait_for_selector(f"#{elem_id} td[aria-label='{path.name}']")


def english_words(texts: list[str]) -> dict[str, str]:
    """English words outside ALLOWED -> the text each was found in."""
    allowed = re.compile("|".join(ALLOWED))
    return {w: text[:80] for text in texts for w in re.findall(r"[A-Za-z]{2,}", allowed.sub(" ", text))}


def test_a_five_minute_recording_shows_progress_at_once_and_disables_its_button(browser, app, five_minutes):
    page = open_page(browser, app, DESKTOP)
    page.get_by_role("tab", name="Long recording").click()
    upload(page, "long-file", five_minutes)
    page.evaluate("""() => { window.seen = []; const card = document.querySelector('#long-card');
        new MutationObserver(() => window.seen.push(card.innerText)).observe(card, {subtree: true, childList: true, characterData: true}); }""")  # noqa: E501
    page.click("#long-start")
    page.wait_for_function(f"{PERCENT}.test(document.querySelector('#long-card').innerText)", timeout=2_000)
    assert page.locator("#long-start").is_disabled()
    page.wait_for_selector("#long-band .ea-seg", timeout=120_000)
    seen = "\n".join(page.evaluate("window.seen"))
    assert "Finding speech" in seen and re.search(r"Segments \d+/\d+", seen) and re.search(r"about \d+ s left", seen)
    assert page.locator("#long-start").is_enabled() and page.locator("#long-band .ea-seg").count() >= 50
    page.close()


def test_the_analyze_tab_points_long_files_to_the_long_tab_and_shows_progress(browser, app, five_minutes):
    page = open_page(browser, app, PHONE)
    upload(page, "audio-file", five_minutes)
    page.wait_for_selector("#long-hint :text('Long recording')")
    assert "5:0" in page.inner_text("#long-hint")
    page.click("#start")
    page.wait_for_function(f"{PERCENT}.test(document.querySelector('#emotion-card').innerText)", timeout=2_000)
    assert page.locator("#start").is_disabled()
    page.wait_for_selector("#emotion-card .ea-card", timeout=120_000)
    assert page.locator("#start").is_enabled()
    page.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_an_error_clears_the_previous_result_and_is_shown_where_it_goes(browser, app, tmp_path, viewport):
    page = open_page(browser, app, viewport)
    page.click("text=Load an example clip")
    page.wait_for_selector("#audio-file td[aria-label='example_speech.flac']")
    page.click("#start")
    page.wait_for_selector("#emotion-card .ea-card", timeout=60_000)
    assert page.locator("#scores .ea-row").count() == 9
    bad = tmp_path / "random_bytes.mp3"
    bad.write_bytes(np.random.default_rng(0).bytes(40_000))
    page.locator("#audio-file button[aria-label='Clear']").first.click()
    upload(page, "audio-file", bad)
    page.wait_for_selector("#emotion-card .ea-placeholder")  # the old result went with the old file
    assert page.locator("#scores .ea-row").count() == 0 and page.input_value("#log textarea") == ""
    page.click("#start")
    page.wait_for_selector("#emotion-card .ea-error[role=alert] :text('random_bytes.mp3')", timeout=30_000)
    assert page.locator("#scores .ea-row").count() == 0 and page.locator("#downloads td[aria-label]").count() == 0
    toast = page.locator(".toast-body.error").first
    toast.wait_for(timeout=10_000)
    a, b = toast.bounding_box(), page.locator("#lang").bounding_box()
    assert a["y"] > b["y"] + b["height"] or a["x"] > b["x"] + b["width"] or a["x"] + a["width"] < b["x"]  # not over it
    page.close()


def test_the_timeline_keeps_its_lines_across_two_language_switches(browser, app, tmp_path):
    page = open_page(browser, app, DESKTOP)
    upload(page, "audio-file", write_audio(tmp_path / "talk.wav", speechlike(8.14, seed=3), 16000, "wav"))
    page.locator("#granularity input[value='frame']").check()
    page.click("#start")
    page.wait_for_selector("#timeline polyline.ea-line", timeout=60_000)
    ticks = page.locator("#timeline .ea-ticks span").all_inner_texts()
    assert ticks[0] == "0:00" and ticks[-1] == "0:08" and len(ticks) <= 7  # m:ss, within the audio
    for lang, start, html_lang in (("中文", "开始识别", "zh-CN"), ("English", "Start recognition", "en")):
        page.get_by_label(lang).check()
        page.wait_for_selector(f"#start:text('{start}')")
        page.wait_for_function(f"document.documentElement.lang === '{html_lang}'")
        page.wait_for_selector("#timeline polyline.ea-line")
        page.wait_for_selector("#mic :text('录制')" if html_lang == "zh-CN" else "#mic :text('Record')")  # Gradio's own
    assert page.locator("#timeline polyline.ea-line").count() >= 1
    page.close()


def settled_english(page, timeout_s: float = 15.0) -> dict:
    """The English words on the page once Gradio's own status lines are gone: its queue line ("In
    queue: 1 of 1") follows the browser's locale, not the page's language, and shows while a
    follow-up event waits on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    words = english_words(page.evaluate(VISIBLE_TEXT))
    while words and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        words = english_words(page.evaluate(VISIBLE_TEXT))
    return words


def test_chinese_mode_has_no_english_in_any_tab(browser, app, tmp_path):
    clips = [write_audio(tmp_path / f"clip{i}.wav", speechlike(2.0 + i, seed=i), 16000, "wav") for i in range(2)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense" * 30)
    page = open_page(browser, app, DESKTOP)
    page.get_by_label("中文").check()
    page.wait_for_selector("#start:text('开始识别')")
    upload(page, "audio-file", clips[0])
    page.locator("#granularity input[value='frame']").check()
    page.click("#start")
    page.wait_for_selector("#timeline polyline.ea-line", timeout=60_000)
    found = {"分析": settled_english(page)}
    page.get_by_role("tab", name="对比多段音频").click()
    page.locator("#cmp-files input[type=file]").set_input_files([str(c) for c in (*clips, bad)])
    page.wait_for_selector("#cmp-files td[aria-label='bad.wav']")
    page.click("#cmp-start")
    page.wait_for_selector("#similarity img", timeout=60_000)
    found["对比"] = settled_english(page)
    page.get_by_role("tab", name="长录音").click()
    upload(page, "long-file", clips[1])
    page.locator("#long-mode input[value='window']").check()
    page.click("#long-start")
    page.wait_for_selector("#long-band .ea-seg", timeout=60_000)
    found["长录音"] = settled_english(page)
    page.get_by_role("tab", name="批量处理").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in (*clips, bad)])
    page.wait_for_selector("#batch-files td[aria-label='bad.wav']")
    page.click("#batch-start")
    page.wait_for_selector("#batch-table [role=grid][aria-rowcount='4']", timeout=60_000)
    found["批量"] = settled_english(page)
    for tab in page.locator("button[role=tab]").all()[4:]:  # the other tabs, as they open
        tab.click()
        page.wait_for_timeout(300)
        found[tab.inner_text()] = settled_english(page)
    assert {tab: words for tab, words in found.items() if words} == {}, "\n".join(f"{k}: {v}" for k, v in found.items())
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.close()


def test_on_a_phone_every_tab_is_reachable_and_start_is_in_view(browser, app):
    page = open_page(browser, app, PHONE)
    page.wait_for_timeout(500)
    box = page.locator("#start").bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"] and box["x"] + box["width"] <= PHONE["width"]  # no scrolling
    tabs = page.locator("button[role=tab]")
    names = tabs.all_inner_texts()
    assert len(names) == len(set(names)) >= 4 and page.locator("[role=tablist] .overflow-menu").count() == 0
    for i, name in enumerate(names):
        tab = tabs.nth(i)
        b = tab.bounding_box()
        assert b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"], name  # on screen, not behind a menu
        tab.click()
        page.wait_for_function(f"document.querySelectorAll('button[role=tab]')[{i}].getAttribute('aria-selected') === 'true'")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name  # no sideways scrolling
    page.close()


def test_on_a_phone_the_conversation_tables_reflow(browser, app, tmp_path):
    """The per-speaker table of the Conversation view (7 columns) stays within a 390 px screen and
    its emotion cell on one line, as the page's other tables."""
    import soundfile as sf
    from conversation_audio import call

    path = tmp_path / "call.wav"
    sf.write(path, call(2).stereo(), 16000)
    page = open_page(browser, app, PHONE)
    page.get_by_role("tab", name="Long recording").click()
    upload(page, "long-file", path)
    page.locator("#long-speakers input").click()
    page.get_by_role("option", name="one per channel (calls)").click()
    page.click("#long-start")
    page.wait_for_selector("#long-band .ea-speakers tr[data-speaker]", timeout=60_000)
    table = page.locator("#long-band .ea-speakers").bounding_box()
    assert table["x"] >= 0 and table["x"] + table["width"] <= PHONE["width"], table
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    row = page.locator("#long-band .ea-speakers tr[data-speaker]").first
    emotion, turns = (row.locator(f"td:nth-of-type({i})").bounding_box()["height"] for i in (4, 3))
    assert emotion < 1.5 * turns, (emotion, turns)  # one line as its neighbours, not a letter a line
    page.close()


def test_smoothing_changes_without_the_model_and_a_segment_plays(browser, app, tmp_path):
    page = open_page(browser, app, DESKTOP)
    upload(page, "audio-file", write_audio(tmp_path / "talk.wav", speechlike(6.0, seed=5), 16000, "wav"))
    page.locator("#granularity input[value='frame']").check()
    page.wait_for_selector("#smoothing", state="visible")
    assert not page.locator("#alpha").is_visible() and not page.locator("#zero-phase").is_visible()  # EWMA's only
    page.click("#start")
    page.wait_for_selector("#timeline polyline.ea-line", timeout=60_000)
    assert page.locator("#dominant-band :text('Choose frame granularity')").count() == 0
    calls, before = len(app.calls), page.input_value("#log textarea")
    folders = len(output_folders(app.outputs))
    timeline = page.inner_html("#timeline")
    page.locator("#method input").click()
    page.locator("[role=option]:text('EWMA')").click()
    page.wait_for_selector("#alpha", state="visible")
    page.wait_for_function(f"document.querySelector('#timeline').innerHTML.length !== {len(timeline)}", timeout=20_000)
    page.wait_for_function("prev => document.querySelector('#log textarea').value !== prev", arg=before, timeout=20_000)
    assert len(app.calls) == calls  # re-read from the kept frames: no model call
    assert page.locator("#zero-phase").is_visible()
    page.locator("#segments [role=gridcell][aria-rowindex='2'][aria-colindex='3']").click()  # the first segment
    page.wait_for_selector("#segment-audio audio, #segment-audio [data-testid='waveform-x']", state="attached", timeout=30_000)
    page.wait_for_selector("#segment-audio", state="visible", timeout=10_000)  # shown once its audio is set
    # one pick, one re-reading: a second one (Gradio's Dropdown sends `input` twice) drew the views
    # again after the click and hid the player
    assert len(output_folders(app.outputs)) == folders + 1
    page.close()


def settled(page) -> None:
    """The pointer away and transitions over (a just re-enabled button fades in)."""
    page.mouse.move(0, 0)
    page.wait_for_timeout(500)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_text_contrast_meets_wcag_aa_and_charts_say_what_they_show(browser, app, tmp_path, viewport):
    clips = [write_audio(tmp_path / f"c{i}.wav", speechlike(2.0 + i, seed=i), 16000, "wav") for i in range(2)]
    page = open_page(browser, app, viewport)
    upload(page, "audio-file", clips[0])
    page.locator("#granularity input[value='frame']").check()
    page.click("#start")
    page.wait_for_selector("#timeline polyline.ea-line", timeout=60_000)
    settled(page)
    assert page.evaluate(LOW_CONTRAST) == []
    assert page.locator("#dominant-band [role=img]").get_attribute("aria-label").startswith("Dominant emotion over time: 0:00.0")
    assert "Line chart of the per-frame scores" in page.locator("#timeline svg").get_attribute("aria-label")
    page.get_by_role("tab", name="Compare clips").click()
    page.locator("#cmp-files input[type=file]").set_input_files([str(c) for c in clips])
    page.wait_for_selector("#cmp-files td[aria-label='c1.wav']")
    page.click("#cmp-start")
    page.wait_for_selector("#similarity img", timeout=60_000)
    alts = [img.get_attribute("alt") for img in page.locator("#radar img, #similarity img").all()]
    assert len(alts) == 2 and all(a and "undefined" not in a and "c0.wav" in a for a in alts)
    settled(page)
    assert page.evaluate(LOW_CONTRAST) == []
    page.close()


def test_progress_text_counts_files_in_a_batch(browser, app, tmp_path):
    files = [write_audio(tmp_path / f"f{i}.wav", speechlike(1.0, seed=i), 16000, "wav") for i in range(6)]
    page = open_page(browser, app, DESKTOP)
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(f) for f in files])
    page.wait_for_selector("#batch-files td[aria-label='f5.wav']")
    page.evaluate("""() => { window.seen = []; const s = document.querySelector('#batch-status');
        new MutationObserver(() => window.seen.push(s.innerText)).observe(s, {subtree: true, childList: true, characterData: true}); }""")  # noqa: E501
    t0 = time.monotonic()
    page.click("#batch-start")
    page.wait_for_selector("#batch-table [role=grid][aria-rowcount='7']", timeout=60_000)
    assert time.monotonic() - t0 < 60
    seen = "\n".join(page.evaluate("window.seen"))
    assert re.search(r"Files \d/6", seen), seen
    assert "6 done, 0 failed, 6 files" in page.inner_text("#batch-status")
    page.close()


def test_the_login_form_says_why_a_throttled_login_waits_in_the_browsers_language(browser, tiny_engine, tmp_path):
    """Gradio's login form is silent on anything but a 400; after five wrong passwords the guard
    answers 429, and the page shows that answer in the browser's language."""
    from emotion_app.web.server import AppSettings, launch

    settings = AppSettings(port=free_port(), outputs_dir=tmp_path / "outs", auth=("ana", "s3cret-pw"))
    demo = launch(tiny_engine, settings, block=False)
    try:
        for locale, expected in (("zh-CN", r"登录失败次数过多，请在 \d+ 秒后再试"), ("en-US", r"Too many failed logins")):
            context = browser.new_context(locale=locale, viewport=DESKTOP)
            page = context.new_page()
            page.goto(demo.local_url, wait_until="networkidle")
            alert = page.locator("#ea-login-wait")
            for _ in range(12):
                page.locator("input[type=text]").first.fill("ana")
                page.locator("input[type=password]").first.fill("wrong")
                page.get_by_role("button").last.click()
                page.wait_for_timeout(300)
                if alert.count():
                    break
            assert re.search(expected, alert.inner_text()), alert.inner_text()
            context.close()
    finally:
        demo.close()
