"""Artifacts: save/load, ONNX export, ONNX Runtime sessions, shipped baselines."""

from .architecture import module_to_spec, spec_to_module
from .artifact import is_artifact, load, read_metadata, save
from .onnx import evaluate_onnx, export_onnx, onnx_session, run_onnx, run_onnx_outputs
from .onnx_io import ort_feed
from .pretrained import list_pretrained, load_pretrained, pretrained_path

__all__ = ["evaluate_onnx", "export_onnx", "is_artifact", "list_pretrained", "load", "load_pretrained", "module_to_spec",
           "onnx_session", "ort_feed", "pretrained_path", "read_metadata", "run_onnx", "run_onnx_outputs", "save",
           "spec_to_module"]
