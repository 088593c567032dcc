"""TFLite / LiteRT: litert-torch or onnx2tf to convert, ai-edge-litert to run, ai-edge-quantizer."""

from .._spec import Route, TargetSpec

SPEC = TargetSpec(
    name="tflite", package="tflite", runner="LiteRTRunner", suffix=".tflite", extra="tflite",
    needs=("ai_edge_litert",), order=20, runtime_module="ai_edge_litert", static_shapes=True, colour="#d0701f",
    routes=(
        Route("tflite", "copy", "copy_tflite"),
        Route("keras", "TFLiteConverter", "from_keras", needs=("tensorflow",)),
        Route("torch", "litert-torch", "from_torch", precisions=("fp32",), needs=("litert_torch",)),
        # NHWC first (LiteRT's own layout: no transposes around convolutions, ~1.8x faster on a small
        # CNN), kept only when its outputs are the source's and parity passes; else ONNX's layout
        Route("onnx", "onnx2tf", "from_onnx", needs=("onnx2tf",), options={"layout": "tf"}),
        Route("onnx", "onnx2tf (ONNX layout)", "from_onnx", needs=("onnx2tf",), options={"layout": "onnx"}),
        # an ONNX source onnx2tf fails on: its torch graph (onnx2torch), then litert-torch
        Route("onnx-file", "onnx2torch + litert-torch", "from_onnx_torch", precisions=("fp32",),
              needs=("onnx2torch", "litert_torch")),
    ),
    quantization={mode: None for mode in ("fp16", "dynamic-int8", "static-int8", "mixed", "int8-weights",
                                          "int4-weights")},
    slow_reasons={
        ("int8-weights", None): "weight-only int8 is dequantized to float at run time: it saves size, not time",
        ("static-int8", "transformer"): "the float layers kept for accuracy add quantize/dequantize pairs",
    },
)
