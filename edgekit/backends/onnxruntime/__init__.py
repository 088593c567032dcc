"""ONNX export (torch.onnx) and ONNX Runtime."""
