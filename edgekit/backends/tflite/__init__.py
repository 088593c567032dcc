"""TFLite/LiteRT: litert-torch from torch, onnx2tf from ONNX, run with ai-edge-litert."""
