"""Tools that make model folders: random-weight checkpoints in the hub layout, the ONNX export."""
