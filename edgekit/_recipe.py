"""Model recipes (models/*.toml): every choice of a run, as data, validated."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._errors import EdgekitError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    source: str
    task: str | None = None
    inputs: list[str] = Field(default_factory=list)  # name:shape:dtype
    dims: dict[str, int] = Field(default_factory=dict)
    shapes: dict[str, list[int]] = Field(default_factory=dict)  # input -> its shape (sizes its dynamic axes)
    trust_pickle: bool = False
    trust_remote_code: bool = False  # a Hugging Face folder's own Python code (auto_map) may run
    # shape buckets: { sequence = [16, 32, 64, 128] } or { sequence = "auto" } (sizes from the data)
    shape_buckets: dict[str, list[int] | str] | None = None


class ConvertSection(_Section):
    targets: list[str] = Field(default_factory=lambda: ["onnx", "openvino", "tflite", "coreml"])
    precision: str = "fp32"
    simplify: bool = False


class VerifySection(_Section):
    samples: int = Field(3, ge=1)
    inputs: str | None = None  # .npz
    tolerance: dict[str, float] = Field(default_factory=dict)


class TrainSection(_Section):
    steps: int = Field(1000, ge=1)
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, ge=1)
    minutes: float | None = Field(None, gt=0)  # time budget: stop (and say so) past it
    seed: int = 0
    checkpoint_every: int = Field(200, ge=1)
    device: str = "auto"
    tracking_uri: str | None = None
    backend: str = Field("local", pattern="^(local|ray)$")  # ray: the job runs on Ray Train (steps/train_ray.py)
    address: str | None = None  # a Ray cluster; none: a local Ray
    workers: int | None = Field(None, ge=1)  # Ray Train workers (default: the cluster's GPUs, else 2)
    storage: str | None = None  # where Ray checkpoints go (path or URI; default: the run's cache folder)


class CompressSection(_Section):
    quantize: list[str] = Field(default_factory=list)
    data: str
    prune: str | None = None  # structured:0.5 | unstructured:0.8
    student: str | None = None  # layers:3 | module:factory
    distill: bool | None = None  # default: on when there is a student or a pruned model
    distill_loss: str = "auto"  # auto | logits | embedding
    train_data: str | None = None
    train: TrainSection = Field(default_factory=TrainSection)
    targets: list[str] | None = None  # default: [convert] targets
    max_drop: float = Field(1.0, ge=0)
    calibration_samples: int = Field(300, ge=8)
    eval_samples: int = Field(500, ge=8)
    keep_float: list[str] = Field(default_factory=list)
    calibration_method: str = "minmax"
    threads: list[str] = Field(default_factory=lambda: ["1", "all"])
    runs: int = Field(50, ge=5)
    int8_io: bool = False
    keep_names: bool = False  # LiteRT: keep intermediate tensor names (0.2 MB in MiniLM)
    skip_unsupported: bool = False  # run the (target, mode) pairs that exist; list the others as skipped
    device: str | None = None  # a profile in targets/: quantizer settings for its CPU (default: this host)

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """``target_device``, its name in 0.1, is still read (and written back as ``device``)."""
        if isinstance(data, dict) and "target_device" in data:
            from ._names import deprecated

            data = dict(data)
            old = data.pop("target_device")
            if old is not None:
                deprecated("recipe [compress] target_device is deprecated: write device (a profile in targets/)")
                data["device"] = data.get("device") or old
        return data


class Recipe(BaseModel):
    model_config = ConfigDict(extra="allow")  # later sections (compress, ...) belong to other commands
    name: str | None = None
    description: str | None = None
    model: ModelSection
    convert: ConvertSection = Field(default_factory=ConvertSection)
    verify: VerifySection = Field(default_factory=VerifySection)
    compress: CompressSection | None = None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"recipe {str(path)!r} does not exist", "give a TOML file such as models/minilm.toml")
    try:
        data = tomllib.loads(path.read_text())
        recipe = Recipe.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise EdgekitError(f"recipe {path} is not valid TOML: {exc}", "fix the syntax at the place named") from exc
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EdgekitError(f"recipe {path} is invalid: {errs}", "see docs/recipes.md for the fields") from exc
    recipe.model.source = _relative(path, recipe.model.source)
    if recipe.compress:
        recipe.compress.data = _relative(path, recipe.compress.data)
        if recipe.compress.train_data:
            recipe.compress.train_data = _relative(path, recipe.compress.train_data)
    return recipe


def _relative(recipe_path: Path, value: str) -> str:
    """A path in a recipe is relative to the recipe's folder; a module:callable is left alone."""
    candidate = recipe_path.parent / value
    return str(candidate) if not Path(value).is_absolute() and candidate.exists() else value


def dump_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe, so a run can be repeated exactly."""
    import tomli_w

    data = recipe.model_dump(exclude_none=True)
    Path(path).write_text(tomli_w.dumps(data))
    return Path(path)


# flags named as the CLI and the API name them -> the [compress.train] field they set
_TRAIN_FLAGS = {"train_steps": "steps", "lr": "lr", "batch_size": "batch_size", "train_minutes": "minutes",
                "train_device": "device", "tracking_uri": "tracking_uri", "backend": "backend", "address": "address",
                "workers": "workers", "storage": "storage"}
_MODEL_FLAGS = ("task", "inputs", "trust_remote_code", "shape_buckets")


def _renamed(given: dict) -> dict:
    """The names of 0.1: ``device`` as the training device (now ``train_device``; ``device`` is a
    profile in targets/) and ``target_device`` (now ``device``), with a warning."""
    from ._names import deprecated, is_torch_device

    if isinstance(given.get("device"), str) and is_torch_device(given["device"]):
        deprecated(f"device={given['device']!r} as the training device is deprecated: use train_device "
                   "(device is a profile in targets/)")
        given.setdefault("train_device", given.pop("device"))
    if "target_device" in given:
        deprecated("target_device is deprecated: use device (a profile in targets/)")
        given.setdefault("device", given.pop("target_device"))
    return given


def resolve_compress(recipe: Recipe | None, source: str | None, flags: dict) -> Recipe:
    """The run ``edgekit compress`` does: the given ``flags`` (None: not given) over the recipe's
    [model] and [compress] sections, over the defaults. What --dump-recipe writes."""
    given = _renamed({k: v for k, v in flags.items() if v is not None})
    if given.get("shape_buckets") is not None and not isinstance(given["shape_buckets"], dict):
        from ._buckets import parse_buckets

        given["shape_buckets"] = parse_buckets(given["shape_buckets"]) or None  # CLI form -> the recipe's table
    source = source or (recipe.model.source if recipe else None)
    if source is None:
        raise EdgekitError("no model given", "pass MODEL, or --recipe models/NAME.toml")
    c = recipe.compress if recipe and recipe.compress else None
    train = {**(c.train.model_dump() if c else {}),
             **{field: given.pop(flag) for flag, field in _TRAIN_FLAGS.items() if flag in given}}
    model = recipe.model.model_dump() if recipe else {}
    model.update(source=source, dims={**model.get("dims", {}), **given.pop("dims", {})},
                 **{k: given.pop(k) for k in _MODEL_FLAGS if k in given})
    section = {**(c.model_dump(exclude={"train"}) if c else {}), **given}
    if section.get("targets") is None:
        section["targets"] = (recipe.convert.targets if recipe else None) or ["onnx", "openvino", "tflite"]
    if section.get("data") is None:
        raise EdgekitError("compress needs --data DATA", "pass it, or a recipe with a [compress] section")
    try:
        resolved = Recipe(name=recipe.name if recipe else None, model=ModelSection(**model),
                          compress=CompressSection(**section, train=TrainSection(**train)))
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EdgekitError(f"bad compress options: {errs}", "see `edgekit compress --help` and docs/recipes.md") from exc
    t = resolved.compress.train
    if t.backend == "local" and (t.address or t.workers or t.storage):
        raise EdgekitError("--address, --workers and --storage are for Ray Train", "add --backend ray")
    return resolved


# edgekit.convert's keywords that a recipe's [model] section holds (the rest are [convert]/[verify])
_LOAD_KEYS = ("input", "dims", "shapes", "task", "trust_pickle", "trust_remote_code")


def resolve_convert(recipe: Recipe | None, source: str | None, flags: dict) -> tuple[dict, dict]:
    """The run `edgekit convert` does: the given ``flags`` (None: not given; named as
    ``edgekit.convert``'s keywords, plus ``input``/``dims``/``shapes``/``task``/``trust_*`` for
    loading) over the recipe's [model], [convert] and [verify] sections, over the defaults.
    Returns the keyword arguments of ``edgekit.load`` and of ``edgekit.convert``."""
    from ._inputs import parse_dims

    given = {k: v for k, v in flags.items() if v is not None}
    source = source or (recipe.model.source if recipe else None)
    if source is None:
        raise EdgekitError("no model given", "pass MODEL, or --recipe models/NAME.toml")
    m = recipe.model if recipe else ModelSection(source=source)
    c, v = (recipe.convert, recipe.verify) if recipe else (ConvertSection(), VerifySection())
    dims = given.get("dims") or {}
    inputs = given.get("inputs") or v.inputs
    load = {"inputs": given.get("input") or m.inputs or None,
            "dims": {**m.dims, **(dims if isinstance(dims, dict) else parse_dims(dims))},
            "task": given.get("task") or m.task,
            "trust_pickle": bool(given.get("trust_pickle") or m.trust_pickle),
            "trust_remote_code": bool(given.get("trust_remote_code") or m.trust_remote_code),
            "shapes": [*(f"{k}={'x'.join(map(str, s))}" for k, s in m.shapes.items()), *given.get("shapes", [])],
            "sample": inputs}
    targets = given.get("targets") or c.targets
    buckets = given.get("shape_buckets") or m.shape_buckets or None
    data = given.get("data") or (recipe.compress.data if buckets and recipe and recipe.compress else None)
    convert = {"shape_buckets": buckets, "data": data,
               "targets": targets.split(",") if isinstance(targets, str) else list(targets),
               "precision": given.get("precision") or c.precision, "inputs": inputs,
               "samples": given.get("samples") or v.samples, "routes": tuple(given.get("routes") or ()),
               "tolerance": {**v.tolerance, **(given.get("tolerance") or {})},
               "simplify": bool(given.get("simplify") or c.simplify), "force": bool(given.get("force"))}
    return {"spec": source, **load}, convert
