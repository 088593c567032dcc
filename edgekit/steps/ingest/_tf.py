"""Keras (.keras, SavedModel) and .tflite sources."""

from __future__ import annotations

import os
from pathlib import Path

from ..._errors import EdgekitError
from ..._lazy import require
from ..._types import Model, Signature, TensorSpec


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load_keras(path: Path) -> Model:
    _quiet_tf()
    keras = require("keras", "Keras models")
    require("tensorflow", "Keras models")
    try:
        model = keras.models.load_model(str(path)) if path.is_file() else keras.layers.TFSMLayer(
            str(path), call_endpoint="serving_default")
    except Exception as exc:
        raise EdgekitError(f"{path} does not load as a Keras model ({exc})",
                           "save it with model.save('model.keras') or model.export('saved_model_dir')") from exc
    if path.is_dir():
        raise EdgekitError(f"{path} is a TensorFlow SavedModel; edgekit reads Keras 3 .keras files",
                           "load it in Keras and save with model.save('model.keras')")

    def spec(t, name: str) -> TensorSpec:
        shape = tuple("batch" if (d is None and i == 0) else (d if d is not None else f"dim{i}")
                      for i, d in enumerate(t.shape))
        return TensorSpec(name, shape, str(t.dtype).replace("tf.", ""))

    inputs = [spec(t, getattr(t, "name", f"input_{i}") or f"input_{i}") for i, t in enumerate(model.inputs)]
    outputs = [spec(t, "output" if len(model.outputs) == 1 else f"output_{i}") for i, t in enumerate(model.outputs)]
    return Model(spec=str(path), format="keras", signature=Signature(inputs, outputs), path=path, keras=model)


def load_tflite(path: Path) -> Model:
    from ...backends.tflite.runtime import LiteRTRunner
    from ._custom import source_error, tflite_custom_ops, tflite_traits

    try:
        runner = LiteRTRunner(path)
    except Exception as exc:  # noqa: BLE001 - an unresolved custom op, among others
        err = source_error("tflite", exc, tflite_custom_ops(path))
        if err is None:
            raise
        raise err from exc
    return Model(spec=str(path), format="tflite", signature=runner.signature, path=path,
                 meta=tflite_traits(runner.interpreter))
