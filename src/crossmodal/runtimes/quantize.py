"""int8 graphs for ``mode="fast"``: quantized once per weights, then cached.

The recipe (measured on ViT-B/32, see docs/benchmarks.md):

1. A ViT's patch embedding is a Conv whose kernel equals its stride. It is
   rewritten as the MatMul it is (patchify, then multiply by the reshaped
   kernel), exactly, so that step 2 quantizes it too; left as an fp32 Conv it
   took 8% of the int8 graph's time.
2. Dynamic quantization: MatMul/Gemm weights are stored as 8-bit integers
   (one scale per output channel) and activations are quantized to uint8 on
   the fly. Which 8-bit weights depends on the CPU (:func:`choose_recipe`):
   int8 (U8S8) where x86-64 has VNNI (AVX-512 VNNI, AVX-VNNI) and off x86;
   on x86-64 without VNNI onnxruntime multiplies U8S8 with ``vpmaddubsw``,
   whose int16 sums saturate, so there the weights are int8 in 7 bits
   (``reduce_range``), which cannot saturate. Static quantization would need
   calibration images that match the user's.
3. The final projection of each tower stays fp32 (see :func:`output_projections`).

The result is about 3x faster than fp32 per core and a quarter of the size,
at cosine >= 0.9995 to fp32 on the test models with VNNI. The fidelity bounds
(cosine >= 0.99 to exact, top-10 overlap >= 0.9) are checked by
``crossmodal models verify NAME --mode fast`` and by the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = ["RECIPE", "RECIPES", "Int8Recipe", "choose_recipe", "cpu_flags", "output_projections",
           "patch_conv_as_matmul", "quantize_graph", "quantized_pair"]

#: bump when the recipe changes, so stale cached graphs are not reused
RECIPE = "conv-matmul+dynamic-int8-per-channel+fp32-projections-v3"


@dataclass(frozen=True)
class Int8Recipe:
    """How MatMul/Gemm weights are quantized (activations are always uint8, quantized on the fly)."""

    name: str  # part of the cache key of the quantized graphs
    signed_weights: bool  # int8 (U8S8) or uint8 (U8U8) weights
    reduce_range: bool  # weights in 7 bits: U8S8 products cannot saturate vpmaddubsw's int16 sums
    per_channel: bool = True  # one scale per output channel


#: the recipes fast mode chooses from; ``u8s8`` is the one for CPUs with integer dot-product instructions
RECIPES = {
    r.name: r
    for r in (
        Int8Recipe("u8s8", signed_weights=True, reduce_range=False),
        Int8Recipe("u8s8-7bit", signed_weights=True, reduce_range=True),
        Int8Recipe("u8u8", signed_weights=False, reduce_range=False),
    )
}
_VNNI = frozenset({"avx512_vnni", "avx_vnni"})
_X86 = frozenset({"x86_64", "amd64", "i386", "i686"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags in ``cpuinfo`` (the text of Linux's ``/proc/cpuinfo``; its first ``flags`` line)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def _host_flags() -> frozenset[str] | None:
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:  # not Linux: the flags are unknown
        return None


def choose_recipe(machine: str | None = None, flags: frozenset[str] | None = None) -> Int8Recipe:
    """The recipe for a CPU: ``machine`` as :func:`platform.machine` names it, ``flags`` as :func:`cpu_flags`
    reads them (empty: unknown); each defaults to this machine's.

    U8S8 where x86-64 has VNNI, whose dot products sum in int32, and off x86 (as before: the saturation
    below is x86's); the 7-bit U8S8 on other x86-64 CPUs (AVX2 or AVX-512 without VNNI), where onnxruntime
    runs U8S8 on ``vpmaddubsw``, whose int16 sums saturate (measured there: cosine to exact down to 0.91
    on the tiny test models, against >= 0.996 in 7 bits, at the same speed; see docs/models.md). Unknown
    x86 flags count as no VNNI: the 7-bit recipe is within bounds everywhere, U8S8 only with VNNI.
    """
    import platform

    if (machine or platform.machine()).lower() not in _X86:
        return RECIPES["u8s8"]
    if flags is None:
        flags = _host_flags() or frozenset()
    return RECIPES["u8s8"] if flags & _VNNI else RECIPES["u8s8-7bit"]


def _patchify_nodes(node: Any, weight: Any, grid: tuple[int, int], graph: Any) -> list[Any]:
    """Nodes computing ``node`` (a Conv with kernel == stride over a ``grid`` of patches) as one MatMul."""
    import numpy as np
    from onnx import helper, numpy_helper

    cout, cin, kh, kw = weight.shape
    gh, gw = grid
    prefix = (node.name or node.output[0]).strip("/").replace("/", "_") + "_as_matmul"

    def name(suffix: str, value: Any = None) -> str:
        if value is not None:
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), f"{prefix}_{suffix}"))
        return f"{prefix}_{suffix}"

    def shape(*dims: int) -> Any:
        return np.array(dims, dtype=np.int64)

    nodes = [
        helper.make_node("Reshape", [node.input[0], name("s1", shape(-1, cin, gh, kh, gw, kw))], [name("r1")],
                         name=name("reshape1")),
        helper.make_node("Transpose", [name("r1")], [name("t1")], perm=[0, 2, 4, 1, 3, 5], name=name("transpose1")),
        helper.make_node("Reshape", [name("t1"), name("s2", shape(-1, gh * gw, cin * kh * kw))], [name("r2")],
                         name=name("reshape2")),
        helper.make_node("MatMul", [name("r2"), name("w", weight.reshape(cout, -1).T.copy())], [name("mm")],
                         name=name("matmul")),
    ]
    last = name("mm")
    if len(node.input) > 2 and node.input[2]:
        nodes.append(helper.make_node("Add", [last, node.input[2]], [name("b")], name=name("bias")))
        last = name("b")
    nodes += [
        helper.make_node("Reshape", [last, name("s3", shape(-1, gh, gw, cout))], [name("r3")], name=name("reshape3")),
        helper.make_node("Transpose", [name("r3")], [node.output[0]], perm=[0, 3, 1, 2], name=name("transpose2")),
    ]
    return nodes


def patch_conv_as_matmul(model: Any) -> int:
    """Rewrite, in place, each Conv with kernel == stride (a ViT patch embedding) as Reshape/Transpose/MatMul.

    Only convolutions with a constant kernel, no padding, no dilation, one
    group and a statically known input size that the kernel tiles exactly are
    rewritten; the output is the same NCHW tensor. Returns how many were.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {}
    for info in list(graph.input) + list(inferred.value_info):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    nodes, changed = [], 0
    for node in graph.node:
        shape = shapes.get(node.input[0]) if node.op_type == "Conv" else None
        kernel = inits.get(node.input[1]) if node.op_type == "Conv" else None
        if shape is None or kernel is None or len(shape) != 4 or None in shape[2:]:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = numpy_helper.to_array(kernel)
        kh, kw = weight.shape[2:]
        height, width = shape[2:]
        if (
            list(attrs.get("strides", [])) != [kh, kw]
            or any(attrs.get("pads", [0]))
            or any(d != 1 for d in attrs.get("dilations", [1]))
            or attrs.get("group", 1) != 1
            or height % kh
            or width % kw
        ):
            nodes.append(node)
            continue
        nodes += _patchify_nodes(node, weight, (height // kh, width // kw), graph)
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {i for n in graph.node for i in n.input}
        keep = [i for i in graph.initializer if i.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return changed


def output_projections(model: Any) -> list[str]:
    """Names of the MatMul/Gemm nodes nearest the graph outputs (the towers' final projections).

    They are kept in fp32: they cost nothing next to the encoder, and their
    rounding error lands straight on the embedding (on ViT-B/32 keeping the
    image projection fp32 lifts the worst image cosine from 0.99983 to
    0.99990 and the text-to-image top-10 overlap from 0.90 to 0.93).
    Unnamed nodes are given names, so that they can be excluded by name.
    """
    graph = model.graph
    producer = {}
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
        for out in node.output:
            producer[out] = node
    found: list[str] = []
    seen: set[str] = set()
    stack = [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in ("MatMul", "Gemm"):
            found.append(node.name)
        else:
            stack += list(node.input)
    return found


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # onnxruntime.quantization logs advice to the root logger; it is not for our users.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_graph(src: Path, dst: Path, recipe: Int8Recipe | None = None) -> Path:
    """Write an int8 version of the graph ``src`` to ``dst`` atomically (``recipe``: :func:`choose_recipe`'s)."""
    recipe = recipe or choose_recipe()
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - onnx is a core dependency
        raise ModelLoadError("fast mode needs the onnx package to quantize graphs") from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-") as tmp:
        try:
            model = onnx.load(str(src))
            patch_conv_as_matmul(model)
            keep_fp32 = output_projections(model)
            patched = Path(tmp) / "patched.onnx"
            onnx.save(model, str(patched), save_as_external_data=model.ByteSize() > 2**31 - 2**24)
            del model
            out = Path(tmp) / dst.name
            with _quiet_root_logger():
                quantize_dynamic(
                    str(patched),
                    str(out),
                    weight_type=QuantType.QInt8 if recipe.signed_weights else QuantType.QUInt8,
                    per_channel=recipe.per_channel,
                    reduce_range=recipe.reduce_range,
                    op_types_to_quantize=["MatMul", "Gemm"],
                    nodes_to_exclude=keep_fp32,
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )
            os.replace(out, dst)
        except Exception as exc:
            raise ModelLoadError(f"cannot quantize {src}: {exc}") from exc
    return dst


def _key(path: Path, weights: str, recipe: Int8Recipe) -> str:
    stat = path.stat()
    key = f"{weights}|{path.resolve()}|{stat.st_size}|{RECIPE}|{recipe.name}|{recipe.per_channel}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def quantized_pair(vision: Path, text: Path, weights: str, cache_dir: Path,
                   recipe: Int8Recipe | None = None) -> tuple[Path, Path]:
    """Cached int8 versions of both tower graphs, under ``cache_dir`` (``recipe``: :func:`choose_recipe`'s for this CPU)."""
    recipe = recipe or choose_recipe()
    root = cache_dir / "int8"
    out = []
    for graph in (vision, text):
        dst = root / _key(graph, weights, recipe) / graph.name
        if not dst.is_file():
            quantize_graph(graph, dst, recipe)
        out.append(dst)
    return out[0], out[1]


def clear(cache_dir: Path) -> None:
    shutil.rmtree(cache_dir / "int8", ignore_errors=True)
