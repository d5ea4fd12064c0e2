"""Converters (installed as delaynir.converters): the ONNX writer, and one module per simulator of an exported file.

onnx_export writes the ONNX file; norse, snntorch and onnxruntime each provide ``load(path).run(x)``, listed
with their file formats in ``delaynir.export.executors``.
"""
