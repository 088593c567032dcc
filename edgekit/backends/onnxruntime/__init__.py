"""ONNX export (torch.onnx) and ONNX Runtime."""

from .._spec import Route, TargetSpec

SPEC = TargetSpec(
    name="onnx", package="onnxruntime", runner="OrtRunner", suffix=".onnx", extra="onnx",
    needs=("onnx", "onnxruntime"), order=0, runtime_module="onnxruntime",
    companions=("{name}.data", "*.onnx.data"), colour="#2f6fb0", servable=True,
    keep_float_by_node=True,
    routes=(
        Route("onnx-file", "copy (external data too)", "from_onnx_file"),
        Route("torch-any", "torch.onnx (dynamo)", "from_torch", needs=("onnxscript",)),
    ),
    quantization={
        "fp16": None, "dynamic-int8": None, "static-int8": None, "mixed": None, "int4-weights": None,
        "int8-weights": "ONNX Runtime has no int8 weight-only kernels; dynamic-int8 gives int8 weights with "
                        "activations quantized at run time",
    },
    no_route={
        "keras": "Keras to ONNX needs tf2onnx, which does not install beside the pinned TensorFlow",
        "tflite": "there is no maintained .tflite to ONNX converter",
    },
    slow_reasons={
        ("dynamic-int8", "conv"): "ONNX Runtime's dynamic quantization of convolutions (ConvInteger) has no fast "
                                  "kernels: quantize convolutions statically instead",
        ("static-int8", "transformer"): "QDQ int8 MatMuls pay quantize/dequantize around every layer and the "
                                        "float layers kept for accuracy; OpenVINO or LiteRT int8 are faster here",
        ("static-int8", "conv"): "at this model size the quantize/dequantize overhead outweighs the int8 kernels",
    },
)
