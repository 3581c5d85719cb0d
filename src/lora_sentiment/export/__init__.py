"""Export stage: a run merged and written for an engine (writing.py, engines/), and an export folder opened as a
Predictor without torch (folder.py)."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "export_run": "writing", "export_merged": "writing", "export_onnx": "writing", "export_openvino": "writing",
    "ExportedClassifier": "folder", "export_info": "folder",
})  # fmt: skip
