"""3-D average and Lp pooling (LiteRT has no 3-D pooling builtin: onnx2tf writes a Select-TF
AvgPool3D) as a 3-D convolution, which LiteRT has: the channels are folded into the batch, a
kernel of ones sums each window, and each output is scaled by its window's constant weight."""

from __future__ import annotations

import numpy as np

from .._onnx_rewrites import Graph, _attr, _rewrite


def _out_sizes(node, spatial: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """ONNX's output sizes (floor or ceil mode, a last window starting in the padding dropped) and
    the zeros to add past the end so that a floor-mode convolution gives them."""
    k = _attr(node, "kernel_shape")
    n = len(k)
    s, d = _attr(node, "strides", [1] * n), _attr(node, "dilations", [1] * n)
    pads = _attr(node, "pads", [0] * 2 * n)
    outs, extra = [], []
    for i in range(n):
        span, full = (k[i] - 1) * d[i] + 1, spatial[i] + pads[i] + pads[n + i]
        out = (-(-(full - span) // s[i]) if _attr(node, "ceil_mode", 0) else (full - span) // s[i]) + 1
        if _attr(node, "ceil_mode", 0) and (out - 1) * s[i] >= spatial[i] + pads[i]:
            out -= 1
        outs.append(out)
        extra.append(max(0, (out - 1) * s[i] + span - full))
    return outs, extra


def _window_weights(g: Graph, node, spatial: tuple[int, ...]):
    """Each output's factor from its window sum to ONNX's value: ``AveragePool(ones) / window
    sum of ones`` (ONNX Runtime runs the pool on ones once; the divisor, count_include_pad and
    ceil mode included, is its own); all ones for LpPool. None where it cannot be run."""
    if node.op_type == "LpPool":
        return 1.0
    import onnxruntime as ort

    helper, f32 = g.helper, g.onnx.TensorProto.FLOAT
    pool = helper.make_node("AveragePool", ["x"], ["y"])
    pool.attribute.extend(node.attribute)
    one = helper.make_graph([pool], "ones", [helper.make_tensor_value_info("x", f32, [1, 1, *spatial])],
                           [helper.make_tensor_value_info("y", f32, None)])
    model = helper.make_model(one, opset_imports=[helper.make_opsetid("", g.opset)])
    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        averaged = sess.run(None, {"x": np.ones([1, 1, *spatial], np.float32)})[0]
    except Exception:  # noqa: BLE001 - a pool ONNX Runtime cannot run here: leave the node as it is
        return None
    inside = _window_counts(node, spatial)
    if averaged.shape != inside.shape:  # not the output sizes computed here: leave the node
        return None
    return np.where(inside > 0, averaged / np.maximum(inside, 1), 0).astype(np.float32)


def _window_counts(node, spatial: tuple[int, ...]) -> np.ndarray:
    """How many of each window's taps fall inside the input (numpy, per axis, multiplied)."""
    k = _attr(node, "kernel_shape")
    n = len(k)
    s, d = _attr(node, "strides", [1] * n), _attr(node, "dilations", [1] * n)
    pads = _attr(node, "pads", [0] * 2 * n)
    outs, _ = _out_sizes(node, spatial)
    counts = np.ones([1, 1], np.float32)
    for i in range(n):
        taps = np.arange(outs[i])[:, None] * s[i] - pads[i] + np.arange(k[i])[None, :] * d[i]
        axis = ((taps >= 0) & (taps < spatial[i])).sum(1).astype(np.float32)
        counts = counts[..., None] * axis
    return counts.reshape(1, 1, *outs)


def _pool3d_as_conv(g: Graph, node):
    """``AveragePool``/``LpPool`` over 3 axes as ``Conv`` with a kernel of ones on [N*C, 1, D, H,
    W] (``|x|^p`` summed, then its p-th root, for LpPool), scaled by each window's weight; a
    dilated kernel is written out with zeros between its taps (an inf skipped by the dilation
    would then give NaN: 0 * inf)."""
    x, out = node.input[0], node.output[0]
    k = _attr(node, "kernel_shape") or []
    if len(k) != 3 or len(g.shapes.get(x, ())) != 5 or g.types.get(x) != g.onnx.TensorProto.FLOAT:
        return None
    if (_attr(node, "auto_pad", b"NOTSET") or b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    n, c, *spatial = g.shapes[x]
    outs, extra = _out_sizes(node, tuple(spatial))
    weights = _window_weights(g, node, tuple(spatial))
    if weights is None:
        return None
    pads = _attr(node, "pads", [0] * 6)
    t, p = out + "__pool3d", _attr(node, "p", 2)
    nodes, src = [], x
    if node.op_type == "LpPool":
        nodes += [g.node("Abs", [x], [t + "_abs"]),
                  g.node("Pow", [t + "_abs", g.const(t + "_p", np.array(p, np.float32))], [t + "_pow"])]
        src = t + "_pow"
    # dilations as zeros inside the kernel: onnx2tf's 3-D Conv drops them (exact for finite inputs)
    d = _attr(node, "dilations", [1] * 3)
    kernel = np.zeros([1, 1, *((a - 1) * b + 1 for a, b in zip(k, d, strict=True))], np.float32)
    kernel[:, :, ::d[0], ::d[1], ::d[2]] = 1.0
    nodes += [g.node("Reshape", [src, g.const(t + "_in_shape", np.array([n * c, 1, *spatial], np.int64))], [t + "_nc"]),
              g.node("Conv", [t + "_nc", g.const(t + "_ones", kernel)], [t + "_sum"],
                     kernel_shape=list(kernel.shape[2:]), strides=_attr(node, "strides", [1] * 3),
                     pads=[*pads[:3], *(a + b for a, b in zip(pads[3:], extra, strict=True))]),
              g.node("Reshape", [t + "_sum", g.const(t + "_out_shape", np.array([n, c, *outs], np.int64))], [t + "_sums"])]
    if node.op_type == "LpPool":
        return [*nodes, g.node("Pow", [t + "_sums", g.const(t + "_inv_p", np.array(1.0 / p, np.float32))], [out])]
    return [*nodes, g.node("Mul", [t + "_sums", g.const(t + "_weights", weights)], [out])]


def _axis0(g: Graph, op: str, x: str, out: str):
    """``Unsqueeze``/``Squeeze`` at axis 0: axes an input from opset 13, an attribute before."""
    if g.opset >= 13:
        return g.node(op, [x, g.const(out + "_axes", np.array([0], np.int64))], [out])
    return g.node(op, [x], [out], axes=[0])


def _maxpool_indices(g: Graph, node):
    """2-D ``MaxPool`` with its Indices output (onnx2tf writes a Select-TF MaxPoolWithArgmax) as
    the max of each window's kernel-tap slices: ``ArgMax`` over the taps (the first largest, as
    ONNX Runtime scans a window row by row) picks from a constant map of each tap's flat index
    (row- or column-major by ``storage_order``; padding never picked: it is -inf)."""
    x = node.input[0]
    k, shape = _attr(node, "kernel_shape") or [], g.shapes.get(x)
    if len(node.output) < 2 or not node.output[1] or len(k) != 2 or shape is None or len(shape) != 4:
        return None
    if g.types.get(x) != g.onnx.TensorProto.FLOAT or _attr(node, "ceil_mode", 0) or \
            (_attr(node, "auto_pad", b"NOTSET") or b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    n, c, h, w = (int(v) for v in shape)
    (sh, sw), (dh, dw) = _attr(node, "strides", [1, 1]), _attr(node, "dilations", [1, 1])
    pads = _attr(node, "pads", [0, 0, 0, 0])
    oh = (h + pads[0] + pads[2] - (k[0] - 1) * dh - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - (k[1] - 1) * dw - 1) // sw + 1
    plane = np.arange(h * w, dtype=np.int64).reshape(h, w)
    if _attr(node, "storage_order", 0) == 1:
        plane = (np.arange(h)[:, None] + np.arange(w)[None, :] * h).astype(np.int64)
    index = (np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * h * w) + plane
    index = np.pad(index, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=-1)
    t = node.output[1] + "__argmax"
    padded = x if not any(pads) else t + "_padded"
    nodes = [] if not any(pads) else [g.node("Pad", [x, g.const(t + "_pads", np.array(
        [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], np.int64)), g.const(t + "_ninf", np.array(-np.inf, np.float32))],
        [padded], mode="constant")]
    taps, maps = [], []
    for i in range(k[0]):
        for j in range(k[1]):
            r, q = i * dh, j * dw
            window = (slice(None), slice(None), slice(r, r + (oh - 1) * sh + 1, sh), slice(q, q + (ow - 1) * sw + 1, sw))
            maps.append(index[window])
            starts = g.const(f"{t}_s{i}_{j}", np.array([r, q], np.int64))
            ends = g.const(f"{t}_e{i}_{j}", np.array([r + (oh - 1) * sh + 1, q + (ow - 1) * sw + 1], np.int64))
            nodes += [g.node("Slice", [padded, starts, ends, g.const(t + "_axes", np.array([2, 3], np.int64)),
                                       g.const(t + "_steps", np.array([sh, sw], np.int64))], [f"{t}_tap{i}_{j}"]),
                      _axis0(g, "Unsqueeze", f"{t}_tap{i}_{j}", f"{t}_u{i}_{j}")]
            taps.append(f"{t}_u{i}_{j}")
    nodes += [g.node("Concat", taps, [t + "_taps"], axis=0),
              g.node("ArgMax", [t + "_taps"], [t + "_which"], axis=0, keepdims=1),
              g.node("GatherElements", [g.const(t + "_map", np.stack(maps)), t + "_which"], [t + "_picked"], axis=0),
              _axis0(g, "Squeeze", t + "_picked", node.output[1])]
    pool = g.node("MaxPool", [x], [node.output[0]], name=node.name)
    pool.attribute.extend(a for a in node.attribute if a.name != "storage_order")
    return [pool, *nodes]


REWRITES = (
    (_rewrite({"MaxPool"}, _maxpool_indices),
     lambda n: f"{n} MaxPool's Indices written as an ArgMax over the window taps (onnx2tf writes a Select-TF op)"),
    (_rewrite({"AveragePool", "LpPool"}, _pool3d_as_conv),
     lambda n: f"{n} 3-D AveragePool/LpPool written as a Conv of ones (LiteRT has no 3-D pooling)"),
)
