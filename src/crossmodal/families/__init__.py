"""Model families: one module per architecture, registered in a :class:`FamilyRegistry`.

:data:`FAMILIES` holds the built-in families (CLIP, SigLIP, Chinese-CLIP). A
new family is one module implementing :class:`Family` (see
``docs/architecture.md``), added with ``FAMILIES.with_family(MY_FAMILY)`` and
passed to :func:`crossmodal.load_model`.
"""

from __future__ import annotations

from pathlib import Path

from .base import ExportReport, Family, TinyModelOptions
from .chinese_clip import CHINESE_CLIP
from .clip import CLIP
from .export import write_export
from .registry import FamilyRegistry
from .siglip import SIGLIP

__all__ = ["FAMILIES", "ExportReport", "Family", "FamilyRegistry", "TinyModelOptions", "export_onnx"]

#: the built-in families, in the order directories are matched against them
FAMILIES = FamilyRegistry((CLIP, SIGLIP, CHINESE_CLIP))


def export_onnx(src: str | Path, out: str | Path, *, atol: float = 1e-5, overwrite: bool = False,
                families: FamilyRegistry = FAMILIES) -> ExportReport:
    """Export the transformers model in ``src`` to the ONNX layout in ``out``, verified against ``src``.

    Both towers are run on the same inputs by the source and by ONNX Runtime
    and must agree within ``atol`` after normalization; otherwise nothing is
    written.
    """
    files = families.detect(Path(src).expanduser())
    return write_export(families.family_of(files), files, out, atol=atol, overwrite=overwrite)
