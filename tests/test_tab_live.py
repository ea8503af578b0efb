"""The Live tab's callbacks called as the page calls them, without a browser: chunks in, views out,
Stop, the limit on sessions, a closed tab, the language switch."""

from __future__ import annotations

import copy
import time

import gradio as gr
import numpy as np
import pytest
from audio_files import speechlike

from emotion_app.live import LiveHub
from emotion_app.web.ui import tab_live
from emotion_app.web.ui.tab_live import LiveForm, LiveTake, discard_take, live_chunk, live_stop


def chunks(seconds: float, rate: int = 48000, size: float = 0.1):
    """Gradio's form: (rate, int16 samples), `size` seconds each."""
    x = (speechlike(seconds, rate) * 32767).astype(np.int16)
    step = int(rate * size)
    return [(rate, x[i : i + step]) for i in range(0, len(x), step)]


def feed(hub, take, pieces, **options):
    out = []
    for chunk in pieces:
        window_s, hop_s = options.get("window_s", 3.0), options.get("hop_s", 0.5)
        labels, sentiment = options.get("labels", []), options.get("sentiment", False)
        form = LiveForm(window=window_s, hop=hop_s, smoothing="ewma", labels=labels, sentiment=sentiment)
        out.append(live_chunk(hub, None, chunk, take, form))
        time.sleep(0.01)
    return out


def settle(hub, take, timeout=10.0):
    """Let the scheduler finish, have one empty chunk record what it scored; the views then."""
    end = time.monotonic() + timeout
    while take.pending and not all(f.done() for _, f in take.pending) and time.monotonic() < end:
        time.sleep(0.02)
    live_chunk(hub, None, (48000, np.zeros(0, np.int16)), take, LiveForm())
    assert not take.pending
    return tab_live.views(hub, take.session, "en")


def test_chunks_draw_the_meter_and_stop_writes_the_take(tiny_engine, tmp_path):
    hub, take = LiveHub(tiny_engine, tmp_path), copy.deepcopy(LiveTake())  # as Gradio copies the State
    views = feed(hub, take, chunks(2.2))
    assert all(v == (gr.skip(),) * 4 for v in views[1:4])  # no hop yet: nothing new to draw after the first
    meter, chart, segments, status = settle(hub, take)
    assert 'data-hop="3"' in meter and "confidence" in meter and 'data-points="4"' in chart and chart.count("<polyline") == 9
    assert "ea-seg" in segments and 'data-hops="4"' in status and "2.2 s of 600 s" in status
    result = live_stop(hub, None, take, LiveForm(granularity="frame"))
    assert result["granularity"] == "frame" and result["duration_s"] == pytest.approx(2.2, abs=0.01)
    assert (tmp_path / result["output_dir"] / "processed_audio.wav").is_file() and hub.active == 0
    log, downloads = tab_live.draw_take(take, result, "zh")
    forged = {**result, "output_dir": "..", "files": {"app.py": "x"}}  # a client-held JSON names nothing
    assert tab_live.draw_take(take, forged, "en")[1] == downloads and tab_live.draw_take(LiveTake(), forged, "en")[1] is None
    assert "输出文件夹: " + result["output_dir"] in log and any(p.endswith("result.json") for p in downloads)
    assert feed(hub, take, chunks(0.2)) == [tab_live.views(hub, None, "en")] * 2  # late chunks of the stopped take
    assert take.session is None and hub.active == 0


def test_a_take_past_the_limit_and_a_closed_tab(tiny_engine, tmp_path):
    hub = LiveHub(tiny_engine, tmp_path, max_sessions=1)
    first, second = LiveTake(), LiveTake()
    feed(hub, first, chunks(0.3))
    with pytest.raises(gr.Error, match="maximum of 1 live sessions"):
        feed(hub, second, chunks(0.1))
    folder = first.session.folder
    discard_take(hub, first)  # the tab was closed: Gradio deletes its State (on its event loop: the hub's threads discard)
    deadline = time.monotonic() + 10
    while (folder.exists() or hub.active) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not folder.exists() and hub.active == 0
    feed(hub, second, chunks(0.1))
    assert hub.active == 1
    with pytest.raises(gr.Error, match="No audio reached the server"):
        live_stop(hub, None, LiveTake(), LiveForm(granularity="utterance"))
    with pytest.raises(gr.Error, match="model could not be loaded"):
        live_chunk(None, "offline", chunks(0.1)[0], LiveTake(), LiveForm())


def test_the_language_switch_redraws_the_tab(tiny_engine, tmp_path):
    hub, take = LiveHub(tiny_engine, tmp_path), LiveTake()
    feed(hub, take, chunks(1.0))
    settle(hub, take)
    tab = tab_live.LiveTab(hub, tmp_path, None, None, [])
    meter, chart, segments, status, log, downloads = tab.redraw("zh", take, None)
    assert "置信度" in meter and "最近 60 秒" in chart and "实时" in status and log == "" and downloads is None
    hub.discard(take.session)


def test_a_label_set_and_sentiment_on_the_live_tab(tiny_engine, tmp_path):
    """The tab's label set and sentiment switch, read when the take starts: the hops' scores over the
    set, the meter's sentiment line, and the final analysis in the same set."""
    hub, take = LiveHub(tiny_engine, tmp_path), LiveTake()
    feed(hub, take, chunks(2.2), labels=["sad", "happy"], sentiment=True)
    meter, chart, segments, status = settle(hub, take)
    hop = take.session.latest
    assert hop.labels == ("happy", "sad") and hop.probabilities.sum() == pytest.approx(1, abs=1e-4)
    assert "Sentiment" in meter and chart.count("<polyline") == 2
    result = live_stop(hub, None, take, LiveForm(granularity="utterance", labels=["happy"]))  # the take's set holds
    assert result["label_set"] == ["happy", "sad"] and list(result["scores"]) == ["happy", "sad"] and "sentiment" in result


def test_the_stream_event_reads_its_form_through_gradio(tiny_engine, tmp_path):
    """Gradio's own call of the microphone's stream event: the set of inputs (the chunk, the take,
    the form) read into a LiveForm; with no chunk, the empty views in the page's language."""
    import asyncio

    from gradio.state_holder import SessionState

    from emotion_app.web.ui import page

    hub = LiveHub(tiny_engine, tmp_path)
    demo = page.build_demo(tiny_engine, tmp_path, live=hub)
    event = next(f for f in demo.fns.values() if f.name == "live_chunk")
    assert event.inputs_as_dict and event.stream_every == tab_live.STREAM_EVERY_S
    state = SessionState(demo)
    for component in event.inputs:
        if isinstance(component, gr.State) and not isinstance(component.value, LiveTake):
            state[component._id] = "zh"  # the page's language
    values = [None if isinstance(c, gr.Audio) else getattr(c, "value", None) for c in event.inputs]
    answer = asyncio.run(demo.process_api(block_fn=event, inputs=values, state=state))
    meter, chart, segments, status = answer["data"]
    assert (meter, chart, segments, status) == tab_live.views(hub, None, "zh") != tab_live.views(hub, None, "en")


def test_stop_through_gradio_gives_the_takes_result_json(tiny_engine, tmp_path):
    """Gradio's own call of the Stop event after a take: its one output is result.json's content (a
    dict that must not be read as outputs by name: the page once lost every take that way)."""
    import asyncio

    from gradio.state_holder import SessionState

    from emotion_app.web.ui import page

    hub = LiveHub(tiny_engine, tmp_path)
    demo = page.build_demo(tiny_engine, tmp_path, live=hub)
    event = next(f for f in demo.fns.values() if f.name == "live_stop")
    state = SessionState(demo)
    take = LiveTake()
    for component in event.inputs:
        if isinstance(component, gr.State):
            state[component._id] = take if isinstance(component.value, LiveTake) else "en"
    form = tab_live.LiveForm(lang="en")
    chunk = (16000, (speechlike(1.5, 16000) * 32767).astype(np.int16))
    tab_live.live_chunk(hub, None, chunk, take, form)  # a take of 1.5 s, as the microphone's stream feeds it
    values = [state[c._id] if isinstance(c, gr.State) else getattr(c, "value", None) for c in event.inputs]
    (result,) = asyncio.run(demo.process_api(block_fn=event, inputs=values, state=state))["data"]
    result = result.model_dump() if hasattr(result, "model_dump") else result  # gr.JSON's postprocessed value
    assert result["schema_version"] == 1 and result["file"] == "live.wav" and result["duration_s"] == pytest.approx(1.5)
    assert (tmp_path / result["output_dir"] / "result.json").is_file()


def test_the_recorder_is_usable_once_the_pages_start_up_events_are_done(tiny_engine, tmp_path):
    """A stream started while the page's load events were in flight never began under load (no
    chunk sent, the meter empty), so the recorder comes disabled and is enabled, through Gradio's
    own call, once the load chain is done or any of its events failed (never kept back for good)."""
    import asyncio

    from gradio.state_holder import SessionState

    from emotion_app.web.ui import page

    demo = page.build_demo(tiny_engine, tmp_path, live=LiveHub(tiny_engine, tmp_path))
    mic = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "live-mic")
    assert mic.interactive is False
    events = [f for f in demo.fns.values() if f.name == "enabled"]
    assert all(f.outputs == [mic] and f.trigger_after is not None for f in events)
    after = {(demo.fns[f.trigger_after].name, f.trigger_only_on_failure) for f in events}
    assert after == {("shown", False), ("shown", True), ("remount_hidden", True)}  # done, or failed at either step
    first = next(f for f in demo.fns.values() if f.name == "remount_hidden" and f.trigger_after is None)
    assert [name for _, name in first.targets] == ["load"]
    answer = asyncio.run(demo.process_api(block_fn=events[0], inputs=[], state=SessionState(demo)))
    assert answer["data"][0]["interactive"] is True
