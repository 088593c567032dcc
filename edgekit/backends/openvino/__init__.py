"""OpenVINO IR from ONNX, .tflite or Keras; run and quantized (NNCF) with OpenVINO."""

from .._spec import Route, TargetSpec

SPEC = TargetSpec(
    name="openvino", package="openvino", runner="OpenVINORunner", suffix=".xml", companions=("{stem}.bin",),
    runtime_module="openvino",
    extra="openvino", needs=("openvino",), order=10, colour="#7a3fa8", servable=True,
    keep_float_by_node=True,
    precision_hint=True,
    routes=(
        Route("tflite", "openvino.convert_model", "from_file"),
        Route("keras", "openvino.convert_model (SavedModel)", "from_keras", needs=("tensorflow",)),
        Route("onnx", "openvino.convert_model", "from_onnx", needs=("onnx",)),
        # where the frontend cannot read the graph dynamic (an If whose branches differ in rank)
        Route("onnx-file", "openvino.convert_model (static shapes)", "from_onnx", needs=("onnx",),
              options={"static": True}),
        # ops OpenVINO's ONNX frontend lacks or converts wrongly, written as ONNX defines them
        # (before the PyTorch frontend: the same graph as the ONNX routes, axes kept dynamic)
        Route("onnx", "openvino.convert_model (ONNX rewritten)", "from_onnx_rewritten", needs=("onnx",)),
        Route("torch", "openvino.convert_model (PyTorch frontend)", "from_torch", needs=("torch",)),
    ),
    quantization={mode: None for mode in ("fp16", "dynamic-int8", "static-int8", "mixed", "int8-weights",
                                          "int4-weights")},
    slow_reasons={("int8-weights", None): "weight-only int8 is dequantized to float at run time: it saves size, "
                                          "not time"},
)
