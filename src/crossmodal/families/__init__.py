"""Model families: one module per architecture, registered in a :class:`FamilyRegistry`.

:data:`FAMILIES` holds the built-in families (CLIP, SigLIP, Chinese-CLIP,
BAAI's Visualized-BGE and BGE-M3). A
new family is one module implementing :class:`Family` (see
``docs/architecture.md``), added with ``FAMILIES.with_family(MY_FAMILY)`` and
passed to :func:`crossmodal.load_model`.
"""

from __future__ import annotations

from pathlib import Path

from ..models.files import ResolvedModel
from .base import ExportReport, Family, TinyModelOptions
from .bge_m3 import BGE_M3
from .chinese_clip import CHINESE_CLIP
from .clip import CLIP
from .export import write_export
from .registry import FamilyRegistry
from .siglip import SIGLIP
from .visualized_bge import VISUALIZED_BGE

__all__ = ["FAMILIES", "ExportReport", "Family", "FamilyRegistry", "TinyModelOptions", "export_onnx", "export_resolved"]

#: the built-in families, in the order directories are matched against them
FAMILIES = FamilyRegistry((CLIP, SIGLIP, CHINESE_CLIP, VISUALIZED_BGE, BGE_M3))


def export_onnx(src: str | Path, out: str | Path, *, atol: float = 1e-5, overwrite: bool = False,
                families: FamilyRegistry = FAMILIES) -> ExportReport:
    """Export the model in ``src`` to its family's ONNX layout in ``out``, verified against ``src``.

    Every graph is run on the same inputs by the source and by ONNX Runtime
    and must agree within ``atol``; otherwise nothing is written.
    """
    files = families.detect(Path(src).expanduser())
    return write_export(families.family_of(files), files, out, atol=atol, overwrite=overwrite)


def export_resolved(resolved: ResolvedModel, out: str | Path, *, atol: float = 1e-5, overwrite: bool = False,
                    families: FamilyRegistry = FAMILIES) -> ExportReport:
    """:func:`export_onnx` for a resolved model (a catalog or hub model whose files may span several repos)."""
    return write_export(families.get(resolved.spec.family), resolved.files, out, atol=atol, overwrite=overwrite)
