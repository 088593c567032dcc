"""Request bodies decoded within limits: nothing is inflated or parsed before its size is known.

An ``.npz`` is a zip of ``.npy`` files, and a 1 MB deflated body can hold gigabytes of
zeros. So each member's declared (uncompressed) size and its ``.npy`` header (dtype and
shape) are read first, and checked against the model's signature and the per-request
element cap; only then is its data read, and the zip reader stops at the declared size.
A JSON body is scanned for its nesting depth and element count before it is parsed, and
non-finite numbers (NaN, Infinity, 1e400) are refused: JSON has no such values.

The same reader guards FallbackModel against a server's response (``read_npz`` with no
signature: the element cap only).
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile

import numpy as np

from .._types import TensorSpec
from ._model import DEFAULT_MAX_DIM, RequestError

DEFAULT_MAX_ELEMENTS = 4 * 2**20  # numbers one request may carry, all inputs together (16 MB of float32)
MAX_JSON_DEPTH = 32  # {"inputs": {"x": [[...]]}}: 2 levels of objects, then one per axis
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what numpy writes; bzip2/lzma inflate unbounded chunks


def read_npz(body: bytes, specs: dict[str, TensorSpec] | None = None, limits: dict[str, int] | None = None,
             max_elements: int = DEFAULT_MAX_ELEMENTS, limit_name: str = "--max-elements") -> dict[str, np.ndarray]:
    """The arrays of an .npz body, each checked before it is read. Never unpickles.

    ``specs`` (input name -> spec): names, dtypes, ranks and sizes are checked against
    them (422), as are the ``limits`` of dynamic axes. More than ``max_elements``
    numbers in all (the setting called ``limit_name``): 413. Not a plain .npz of .npy files: 400.
    """
    entries = _zip_entries(body)
    if entries is not None and entries > (len(specs) if specs else 64) + 8:
        raise RequestError(400, f"the .npz holds {entries} members; the model takes {len(specs or {})} inputs")
    try:
        zf = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise RequestError(400, f"the body is not a readable .npz ({type(exc).__name__}: {exc})") from None
    with zf:
        members = zf.infolist()
        plans, total = [], 0
        for info in members:
            name, dtype, shape, header_len = _member_header(zf, info)
            if specs is not None and name in specs:
                _check_header(specs[name], dtype, shape, limits or {})
            count = math.prod(shape)
            total += count
            if total > max_elements:
                raise RequestError(413, f"the .npz holds more than {max_elements} numbers in all ({name!r} has "
                                        f"shape {list(shape)}); the limit is {max_elements} ({limit_name})")
            if info.file_size != header_len + count * dtype.itemsize:
                raise RequestError(400, f"the .npz member {info.filename!r} declares {info.file_size} bytes, but its "
                                        f"header says {header_len + count * dtype.itemsize}: it is not a plain .npy")
            plans.append((info, name))
        return {name: _member_data(zf, info) for info, name in plans}


def _zip_entries(body: bytes) -> int | None:
    """The member count from the zip's end record (before the directory is parsed), if found."""
    at = body.rfind(b"PK\x05\x06", max(0, len(body) - 22 - 0xFFFF))
    if at < 0 or len(body) - at < 22:
        return None
    return struct.unpack_from("<H", body, at + 10)[0]


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, np.dtype, tuple[int, ...], int]:
    if not info.filename.endswith(".npy") or info.is_dir():
        raise RequestError(400, f"the .npz member {info.filename!r} is not an .npy array")
    if info.compress_type not in _ZIP_METHODS:
        raise RequestError(400, f"the .npz member {info.filename!r} uses zip method {info.compress_type}; "
                                "send it stored or deflated (np.savez / np.savez_compressed)")
    name = info.filename[:-4]
    try:
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f".npy format version {version} is not taken here (1.0 or 2.0)")
            header_len = fp.tell()
    except RequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the bytes are, they are not an .npy header
        raise RequestError(400, f"the .npz member {info.filename!r} has no readable .npy header "
                                f"({type(exc).__name__}: {exc})") from None
    if any(d < 0 for d in shape):
        raise RequestError(400, f"the .npz member {info.filename!r} has a negative size in its shape {list(shape)}")
    if dtype.hasobject:
        raise RequestError(400, f"the .npz holds an array that needs pickle ({name!r} has dtype {dtype}), "
                                "which this server never loads")
    return name, dtype, tuple(int(d) for d in shape), header_len


def _check_header(spec: TensorSpec, dtype: np.dtype, shape: tuple[int, ...], limits: dict[str, int]) -> None:
    """The checks of ``validate`` that need only the header, done before any data is read."""
    if dtype != np.dtype(spec.dtype):
        raise RequestError(422, f"input {spec.name!r} has dtype {dtype.name}; the model takes {spec.dtype}")
    if len(shape) != len(spec.shape):
        raise RequestError(422, f"input {spec.name!r} has rank {len(shape)} (shape {list(shape)}); "
                                f"the model takes rank {len(spec.shape)} ({'x'.join(map(str, spec.shape))})")
    for axis, (got, dim) in enumerate(zip(shape, spec.shape, strict=True)):
        if isinstance(dim, int) and got != dim:
            raise RequestError(422, f"input {spec.name!r} has size {got} on axis {axis}; the model takes {dim}")
        if isinstance(dim, str) and not 1 <= got <= limits.get(dim, DEFAULT_MAX_DIM):
            raise RequestError(422, f"input {spec.name!r} has {dim}={got} on axis {axis}; this server takes 1 to "
                                    f"{limits.get(dim, DEFAULT_MAX_DIM)}")


def _member_data(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    try:
        with zf.open(info) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - truncated data, a bad CRC: the body is broken
        raise RequestError(400, f"the .npz member {info.filename!r} cannot be read ({type(exc).__name__}: {exc})") \
            from None


def read_json(body: bytes, max_elements: int = DEFAULT_MAX_ELEMENTS,
              max_depth: int = MAX_JSON_DEPTH) -> dict[str, object]:
    """``{"inputs": {name: nested list}}``: the raw values by name, checked for depth and
    size before parsing (400 too deep, 413 too many numbers) and for non-finite numbers after."""
    depth, commas = json_structure(body)
    if depth > max_depth:
        raise RequestError(400, f"the JSON body nests {depth} levels deep; this server takes at most {max_depth} "
                                '({"inputs": {"<name>": [[...]]}} needs 2 plus one per axis)')
    if commas > max_elements + 64:
        raise RequestError(413, f"the JSON body holds more than {max_elements} numbers; this server's limit is "
                                f"{max_elements} (--max-elements)")
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_non_finite)  # RFC 8259: JSON on the wire is UTF-8
    except RequestError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError; depth is checked above
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), dict):
        raise RequestError(400, 'the JSON body must be an object {"inputs": {"<input name>": [...]}}')
    return doc["inputs"]


def json_structure(body: bytes) -> tuple[int, int]:
    """(deepest nesting, commas) of a JSON text, outside its strings, in linear time, without parsing.

    Escapes are blanked left to right as JSON reads them (``\\\\`` first, then ``\\"``), so every
    quote left delimits a string; a byte is inside one when an odd number of quotes precede
    it. An invalid text reads the same as the parser up to its first invalid byte, where the
    parser stops, so the parser never nests deeper than the depth found here.
    """
    arr = np.frombuffer(body.replace(b"\\\\", b"__").replace(b'\\"', b"__"), np.uint8)
    if not arr.size:
        return 0, 0
    outside = (np.cumsum(arr == ord('"'), dtype=np.uint8) & 1) == 0  # uint8 wraps: parity survives
    opens = ((arr == ord("[")) | (arr == ord("{"))) & outside
    closes = ((arr == ord("]")) | (arr == ord("}"))) & outside
    steps = opens.view(np.int8) - closes.view(np.int8)
    depth, level = 0, 0
    for start in range(0, steps.size, 2**20):  # in slices: an int32 running sum of 16 MB would be 64 MB
        run = np.cumsum(steps[start:start + 2**20], dtype=np.int32)
        depth, level = max(depth, level + int(run.max())), level + int(run[-1])
    return depth, int(np.count_nonzero((arr == ord(",")) & outside))


def _non_finite(name: str):
    raise RequestError(400, f"the JSON body holds {name}, which is not a JSON number; send finite values "
                            "(or an .npz body, which carries IEEE floats as they are)")


def finite_or_none(out: np.ndarray) -> list:
    """``out.tolist()`` with NaN and +-Inf as null: responses are strict JSON."""
    if out.dtype.kind in "fc" and not np.all(np.isfinite(out)):
        return np.where(np.isfinite(out), out, None).tolist()
    return out.tolist()
