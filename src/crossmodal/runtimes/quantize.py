"""int8 graphs for ``mode="fast"``: quantized once per weights, then cached.

Dynamic quantization stores MatMul/Gemm weights as int8 and quantizes
activations on the fly, which runs on VNNI (AVX-512) integer units. The
fidelity bounds (cosine >= 0.99 to exact, top-10 overlap >= 0.9) are checked by
``crossmodal models verify NAME --mode fast`` and by the tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ModelLoadError

__all__ = ["quantize_graph", "quantized_pair"]

#: bump when the recipe changes, so stale cached graphs are not reused
RECIPE = "dynamic-int8-v1"


def quantize_graph(src: Path, dst: Path) -> Path:
    """Write an int8 version of the graph ``src`` to ``dst`` atomically."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - onnx is a core dependency
        raise ModelLoadError("fast mode needs the onnx package to quantize graphs") from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        quantize_dynamic(
            str(src),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
        os.replace(tmp, dst)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(f"cannot quantize {src}: {exc}") from exc
    return dst


def _key(path: Path, weights: str) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{weights}|{path.resolve()}|{stat.st_size}|{RECIPE}".encode()).hexdigest()[:16]


def quantized_pair(vision: Path, text: Path, weights: str, cache_dir: Path | None) -> tuple[Path, Path]:
    """Cached int8 versions of both tower graphs."""
    from ..settings import default_cache_dir

    root = (cache_dir or default_cache_dir()) / "int8"
    out = []
    for graph in (vision, text):
        dst = root / _key(graph, weights) / graph.name
        if not dst.is_file():
            quantize_graph(graph, dst)
        out.append(dst)
    return out[0], out[1]


def clear(cache_dir: Path) -> None:
    shutil.rmtree(cache_dir / "int8", ignore_errors=True)
