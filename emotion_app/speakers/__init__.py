"""Who speaks: CAM++ speaker embeddings (FunASR's `cam++`, natively), clustering them into speakers,
and turns someone already has (RTTM, WebVTT, SRT, whisper/whisperX JSON).

campplus.py (the torch network), model.py (`SpeakerModel`: folder -> embeddings; its features are
audio/fbank.py's), cluster.py (`cluster_speakers`), turns.py (`read_turns`). Nothing here is
imported by `import emotion_app`; torch loads only with campplus.py.
"""
