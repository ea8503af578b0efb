"""Post-processing on probabilities: options, smoothing, insights, frame analysis, exports, charts, compare."""
