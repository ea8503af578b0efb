// The npm Gradio client (@gradio/client) as Gradio's "Use via API" page shows it for JavaScript,
// against a running server: node client.mjs URL AUDIO NOT_AUDIO TURNS. Prints one JSON object,
// each call's {ok, result} or {ok: false, error} (tests/test_npm_client.py reads it).
import { readFileSync } from "node:fs";

import { Client } from "@gradio/client";

const [url, audioPath, notAudioPath, turnsPath] = process.argv.slice(2);
const audio = readFileSync(audioPath); // a Node Buffer
const client = await Client.connect(url);

async function call(endpoint, params) {
  try {
    const reply = await client.predict(endpoint, params);
    return { ok: true, result: reply.data[0] };
  } catch (error) {
    return { ok: false, error: String(error?.message ?? error) };
  }
}

const clip = { granularity: "utterance", extract_embedding: false };
const out = {
  // the page's example: the audio fetched into a Blob, which has no name
  blob: await call("/predict", { path: new Blob([audio]), ...clip }),
  buffer: await call("/predict", { path: audio, ...clip }),
  file: await call("/predict", { path: new File([audio], "speech.wav"), ...clip }),
  not_audio: await call("/predict", { path: new Blob([readFileSync(notAudioPath)]), ...clip }),
  // a long recording on turns someone has, both as Blobs: the turns' format told by their content
  recording: await call("/recording", {
    path: new Blob([audio]), mode: "vad", threshold: 0.5, min_speech: 0.25, min_silence: 0.3, max_segment: 30,
    window_s: 10, hop_s: 10, turns: new Blob([readFileSync(turnsPath)]),
  }),
};
console.log(JSON.stringify(out));
process.exit(0); // the client keeps its event stream open
