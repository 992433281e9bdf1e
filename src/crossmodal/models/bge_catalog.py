"""The BAAI models as catalog data, and fetching their files through the hub cache.

Each entry names the hub repos and files a model is made of. Visualized-BGE's
released checkpoint (``Visualized_*.pth`` in ``BAAI/bge-visualized``) carries
no text config or tokenizer: those come from the BGE text model's own repo,
so a Visualized-BGE entry draws on two repos. Files are fetched once into the
hub cache (:func:`crossmodal.models.hub.fetch_repo`); afterwards the model
resolves with no network at all. :func:`crossmodal.models.registry.resolve`
(and so ``load_model("BAAI/bge-m3")``) finds these entries by name or alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ModelLoadError, ModelUnavailableOffline
from .files import ModelFiles
from .hub import fetch_repo, unavailable_message

__all__ = ["BGE_CATALOG", "CHECKPOINT_LAYOUT", "CHECKPOINT_PART", "BgeEntry", "BgeFiles", "RepoFiles", "fetch_bge",
           "find_bge"]

#: the layout of a Visualized-BGE checkpoint beside its text model, and the name its checkpoint has among the
#: files' parts (the hub keeps it in another repo than the text model's, so it is not found in the root)
CHECKPOINT_LAYOUT = "visualized-bge"
CHECKPOINT_PART = "checkpoint"

BgeFamily = Literal["visualized_bge", "bge_m3"]

#: the text model's files every BGE entry needs (config, fast tokenizer and its special tokens)
_TEXT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class RepoFiles:
    """Files of one hub repo: ``required`` must be there; ``optional`` are fetched when the repo has them."""

    repo: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class BgeEntry:
    name: str
    family: BgeFamily
    dim: int
    #: the repo holding the text model (config.json, tokenizer), and for M3 the model itself
    text: RepoFiles
    #: Visualized-BGE's checkpoint: (repo, file); None for BGE-M3
    checkpoint: tuple[str, str] | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    license: str = "MIT"

    def repos(self) -> tuple[RepoFiles, ...]:
        if self.checkpoint is None:
            return (self.text,)
        repo, file = self.checkpoint
        return (RepoFiles(repo, (file,)), self.text)


@dataclass(frozen=True)
class BgeFiles:
    """Where a resolved BGE model's files are on disk."""

    root: Path  # the text model's directory: config.json, tokenizer (and M3's weights and heads)
    weights: Path | None  # Visualized-BGE's .pth (None for BGE-M3)

    def checkpoint_files(self) -> ModelFiles | None:
        """A Visualized-BGE's files in its family's checkpoint layout (None for BGE-M3: its root is one directory)."""
        if self.weights is None:
            return None
        return ModelFiles(root=self.root, layout=CHECKPOINT_LAYOUT, parts=((CHECKPOINT_PART, self.weights),))


BGE_CATALOG: tuple[BgeEntry, ...] = (
    BgeEntry(
        name="BAAI/bge-visualized-base-en-v1.5",
        family="visualized_bge",
        dim=768,
        checkpoint=("BAAI/bge-visualized", "Visualized_base_en_v1.5.pth"),
        text=RepoFiles("BAAI/bge-base-en-v1.5", _TEXT_FILES, ("vocab.txt",)),
        aliases=("Visualized_base_en_v1.5", "visualized-bge-base-en-v1.5"),
        description="BAAI Visualized-BGE (EVA02-CLIP-B/16 + bge-base-en-v1.5): English texts, images and "
                    "image+text pairs fused by the text encoder, 768 dims.",
    ),
    BgeEntry(
        name="BAAI/bge-visualized-m3",
        family="visualized_bge",
        dim=1024,
        checkpoint=("BAAI/bge-visualized", "Visualized_m3.pth"),
        text=RepoFiles("BAAI/bge-m3", _TEXT_FILES, ("sentencepiece.bpe.model",)),
        aliases=("Visualized_m3", "visualized-bge-m3"),
        description="BAAI Visualized-BGE (EVA02-CLIP-L/14 + bge-m3): multilingual texts, images and "
                    "image+text pairs fused by the text encoder, 1024 dims.",
    ),
    BgeEntry(
        name="BAAI/bge-m3",
        family="bge_m3",
        dim=1024,
        text=RepoFiles("BAAI/bge-m3", (*_TEXT_FILES, "pytorch_model.bin", "colbert_linear.pt", "sparse_linear.pt"),
                       ("sentencepiece.bpe.model",)),
        aliases=("bge-m3",),
        description="BAAI BGE-M3 (XLM-RoBERTa, 100+ languages, 8192 tokens): dense, sparse lexical and "
                    "ColBERT multi-vector text embeddings; texts only.",
    ),
)


def find_bge(name: str) -> BgeEntry | None:
    """The entry called ``name`` (or one of its aliases), case-insensitively."""
    lowered = name.lower()
    for entry in BGE_CATALOG:
        if lowered == entry.name.lower() or lowered in (a.lower() for a in entry.aliases):
            return entry
    return None


def fetch_bge(entry: BgeEntry, *, asked: str | None = None, cache_dir: Path | None = None, offline: bool = False,
              endpoint: str | None = None) -> BgeFiles:
    """The entry's files, from the hub cache when there, else downloaded into it."""
    roots: dict[str, Path] = {}
    try:
        for files in entry.repos():
            roots[files.repo] = fetch_repo(files.repo, patterns=[*files.required, *files.optional],
                                           required=files.required, cache_dir=cache_dir, offline=offline,
                                           endpoint=endpoint)
    except ModelUnavailableOffline as exc:
        reason = exc.reason or "it cannot be fetched"
        name = asked or entry.name
        raise ModelUnavailableOffline(unavailable_message(name, reason, cache_dir), model=name, reason=reason) from exc
    missing = [f"{files.repo}/{file}" for files in entry.repos() for file in files.required
               if not (roots[files.repo] / file).is_file()]
    if missing:
        raise ModelLoadError(f"{entry.name} needs files its hub repos do not have: {', '.join(missing)}")
    weights = roots[entry.checkpoint[0]] / entry.checkpoint[1] if entry.checkpoint else None
    return BgeFiles(root=roots[entry.text.repo], weights=weights)
