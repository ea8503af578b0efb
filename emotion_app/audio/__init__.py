"""Audio in: decoded samples and their checks, PyAV decoding, the one opener of every input, audio files and zip
members, voice activity (Silero) and the segmentation of long recordings."""
