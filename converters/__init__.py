"""Converters: run exported files in norse, snnTorch and ONNX Runtime (installed as delaynir.converters)."""
