"""Optional dependencies, imported when a feature needs them, with an error that says how to get them."""

from __future__ import annotations

from .errors import ModelLoadError

ONNX_INSTALL_HINT = "pip install -r requirements-onnx.txt"


def import_onnxruntime():
    """onnxruntime, or a ModelLoadError with the install command when it is missing."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(
            f"the ONNX backend needs onnxruntime, which cannot be imported ({exc}); {ONNX_INSTALL_HINT}"
        ) from exc
    return onnxruntime
