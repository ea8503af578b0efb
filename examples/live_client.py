"""Stream a WAV file or the microphone to /api/stream and print the live meter.
Needs `pip install websockets` (requirements-onnx.txt has it).

python examples/live_client.py speech.wav               # at real time
python examples/live_client.py speech.wav --speed 10    # 10x faster than real time
python examples/live_client.py --mic --seconds 20       # needs `pip install sounddevice`
"""

import argparse
import base64
import json
import queue
import threading
import time
import wave

from websockets.sync.client import connect


def wav_source(path, frame_s=0.1):
    """(settings, frames) of a 16-bit PCM WAV file, `frame_s` seconds per message."""
    w = wave.open(path)
    if w.getsampwidth() != 2:
        raise SystemExit("give a 16-bit PCM WAV file")
    settings = {"sample_rate": w.getframerate(), "channels": w.getnchannels(), "format": "pcm_s16le"}

    def frames():
        with w:
            while data := w.readframes(int(w.getframerate() * frame_s)):
                yield data

    return settings, frames()


def mic_source(seconds, rate=16000, frame_s=0.1):
    """(settings, frames) of the default microphone, mono, for `seconds`."""
    import sounddevice as sd

    blocks = queue.Queue()

    def callback(data, frame_count, time_info, status):
        blocks.put(bytes(data))

    def frames():
        with sd.RawInputStream(samplerate=rate, blocksize=int(rate * frame_s), channels=1, dtype="int16", callback=callback):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                yield blocks.get()

    return {"sample_rate": rate, "channels": 1, "format": "pcm_s16le"}, frames()


def show(ws):
    """Print each message until the server closes the connection."""
    for text in ws:
        m = json.loads(text)
        if m["event"] == "hop":
            s = m["smoothed"]
            print(f"{m['t_end']:7.1f} s  {s['emoji']} {s['emotion']:<10} {s['confidence']:4.0%}  ({m['latency_ms']:.0f} ms)")
        elif m["event"] == "result":
            r = m["result"]
            print(f"take: {r['emotion']} {r['confidence']:.0%}, {r['duration_s']:.1f} s -> {r['output_dir']}")
            print("files:", ", ".join(r["files"]))
        else:
            print(m)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", help="a 16-bit PCM WAV file")
    p.add_argument("--mic", action="store_true", help="stream the microphone instead")
    p.add_argument("--seconds", type=float, default=30.0, help="microphone: how long")
    p.add_argument("--speed", type=float, default=1.0, help="file: times real time")
    p.add_argument("--url", default="ws://127.0.0.1:7860/api/stream")
    p.add_argument("--auth", help="user:password, when the server runs with --auth")
    p.add_argument("--key", help="your API key, when the server runs with --users")
    p.add_argument("--window", type=float, default=3.0)
    p.add_argument("--hop", type=float, default=0.5)
    p.add_argument("--granularity", default="utterance", help="of the whole take's analysis")
    args = p.parse_args()
    settings, frames = mic_source(args.seconds) if args.mic else wav_source(args.file)
    headers = {"Authorization": "Basic " + base64.b64encode(args.auth.encode()).decode()} if args.auth else None
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else headers
    # max_size=None: the result of a long take at frame granularity is several MB of JSON
    with connect(args.url, additional_headers=headers, max_size=None) as ws:
        live = {"window_s": args.window, "hop_s": args.hop, "analysis": {"granularity": args.granularity}}
        ws.send(json.dumps({**settings, **live}))
        ready = json.loads(ws.recv())
        if ready["event"] != "ready":
            raise SystemExit(ready["error"])
        reader = threading.Thread(target=show, args=(ws,))
        reader.start()
        bytes_per_s = settings["sample_rate"] * settings["channels"] * 2
        start, sent = time.monotonic(), 0
        for data in frames:
            ws.send(data)
            sent += len(data)
            if not args.mic:  # pace the file like a microphone would
                time.sleep(max(0.0, start + sent / bytes_per_s / args.speed - time.monotonic()))
        ws.send(json.dumps({"event": "end"}))
        reader.join()


if __name__ == "__main__":
    main()
