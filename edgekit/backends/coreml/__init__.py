"""Core ML: coremltools from the torch graph; validated everywhere, run on macOS."""

import platform

from .._spec import Route, TargetSpec

NOT_RUN = "not run: the Core ML runtime needs macOS"


def can_run() -> bool:
    return platform.system() == "Darwin"


def _runs_here() -> str | None:
    return None if can_run() else NOT_RUN


SPEC = TargetSpec(
    name="coreml", package="coreml", runner="CoreMLRunner", suffix=".mlpackage", extra="coreml",
    needs=("coremltools",), order=30, runtime_module="coremltools", static_shapes=True, colour="#2e8b57", runs_here=_runs_here,
    routes=(Route("torch-any", "coremltools (torch.export)", "from_torch", needs=("torch",)),
            Route("onnx-file", "onnx2torch + coremltools", "from_onnx", needs=("onnx2torch", "torch"))),
    quantization={
        "fp16": None, "int8-weights": None, "int4-weights": None,
        "dynamic-int8": "Core ML has no run-time activation quantization; use int8-weights",
        "static-int8": "Core ML activation quantization calibrates by running the model, which needs macOS; "
                       "use int8-weights or int4-weights (palettization) here",
        "mixed": "Core ML activation quantization needs macOS; use int8-weights",
    },
    no_route={
        "keras": "coremltools 9 supports TensorFlow only up to 2.12; edgekit pins 2.21",
        "tflite": "coremltools does not read .tflite",
    },
)
