"""The catalog: known models as data.

Adding a model means adding one entry here. Each entry names both towers of
one training run, the runtime sources that carry them, and the preprocessing
its reference processor uses. When the files are fetched, the repo's own
``preprocessor_config.json`` and ``config.json`` are read and must agree with
the entry on dim and family; the files decide the exact preprocessing numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import ImagePreprocess, ModelSpec, Source, TextPreprocess, TowerFiles

__all__ = ["CATALOG", "DEFAULT_MODEL", "CatalogEntry", "xenova_source"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

#: the model used when none is named: CLIP ViT-B/32, run on ONNX Runtime
DEFAULT_MODEL = "openai/clip-vit-base-patch32"


@dataclass(frozen=True)
class CatalogEntry:
    spec: ModelSpec
    #: identity of the trained weights; entries that repackage the same weights share it (and so a space)
    weights: str
    aliases: tuple[str, ...] = ()


def _clip_image(size: int) -> ImagePreprocess:
    return ImagePreprocess(
        resize="shortest", size=(size, size), crop=(size, size), interpolation="bicubic", mean=OPENAI_MEAN, std=OPENAI_STD
    )


CLIP_TEXT = TextPreprocess(tokenizer="clip-bpe", context_length=77, padding="longest")
def xenova_source(repo: str) -> Source:
    """The layout of the hub's Xenova/* ONNX repos (transformers.js exports)."""
    return Source(
        repo=repo,
        layout="onnx",
        vision=TowerFiles("onnx/vision_model.onnx", output="image_embeds"),
        text=TowerFiles("onnx/text_model.onnx", output="text_embeds"),
    )


def _openai_clip(name: str, dim: int, size: int, description: str) -> CatalogEntry:
    short = name.split("/", 1)[1]
    return CatalogEntry(
        spec=ModelSpec(
            name=name,
            family="clip",
            dim=dim,
            image=_clip_image(size),
            text=CLIP_TEXT,
            projection="linear (visual_projection / text_projection, no bias)",
            sources=(
                ("onnx", xenova_source(f"Xenova/{short}")),
                ("torch", Source(repo=name, layout="transformers")),
            ),
            description=description,
            license="MIT",
        ),
        weights=name,
        aliases=(f"Xenova/{short}",),
    )


_ENTRIES: tuple[CatalogEntry, ...] = (
    _openai_clip("openai/clip-vit-base-patch32", 512, 224, "OpenAI CLIP ViT-B/32: fast, the common default."),
    _openai_clip("openai/clip-vit-base-patch16", 512, 224, "OpenAI CLIP ViT-B/16: ~4x the compute of B/32, better."),
    _openai_clip("openai/clip-vit-large-patch14", 768, 224, "OpenAI CLIP ViT-L/14: best OpenAI CLIP; GPU advised."),
    CatalogEntry(
        spec=ModelSpec(
            name="google/siglip-base-patch16-224",
            family="siglip",
            dim=768,
            image=ImagePreprocess(
                resize="squash", size=(224, 224), crop=None, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3
            ),
            text=TextPreprocess(
                tokenizer="sentencepiece", context_length=64, padding="max_length", inputs=("input_ids",)
            ),
            projection="vision: attention-pooling head; text: linear head on the last token",
            sources=(
                ("onnx", xenova_source("Xenova/siglip-base-patch16-224")),
                ("torch", Source(repo="google/siglip-base-patch16-224", layout="transformers")),
            ),
            description="Google SigLIP B/16 (sigmoid loss); text is padded to 64 tokens as in training.",
            license="Apache-2.0",
        ),
        weights="google/siglip-base-patch16-224",
        aliases=("Xenova/siglip-base-patch16-224",),
    ),
    CatalogEntry(
        spec=ModelSpec(
            name="OFA-Sys/chinese-clip-vit-base-patch16",
            family="chinese_clip",
            dim=512,
            image=ImagePreprocess(
                resize="squash", size=(224, 224), crop=None, interpolation="bicubic", mean=OPENAI_MEAN, std=OPENAI_STD
            ),
            text=TextPreprocess(
                tokenizer="wordpiece",
                context_length=52,
                padding="longest",
                inputs=("input_ids", "attention_mask", "token_type_ids"),
            ),
            projection="linear on the [CLS] token (text) and the pooled CLS (vision), no bias",
            sources=(
                ("onnx", xenova_source("Xenova/chinese-clip-vit-base-patch16")),
                ("torch", Source(repo="OFA-Sys/chinese-clip-vit-base-patch16", layout="transformers")),
            ),
            description="Chinese-CLIP ViT-B/16 with a RoBERTa-wwm text tower, for Chinese queries.",
            license="MIT",
        ),
        weights="OFA-Sys/chinese-clip-vit-base-patch16",
        aliases=("Xenova/chinese-clip-vit-base-patch16",),
    ),
    CatalogEntry(
        spec=ModelSpec(
            name="Qdrant/clip-ViT-B-32",
            family="clip",
            dim=512,
            image=_clip_image(224),
            text=CLIP_TEXT,
            projection="linear (visual_projection / text_projection, no bias)",
            sources=(
                (
                    "onnx",
                    Source(
                        repo="Qdrant/clip-ViT-B-32-text",
                        layout="onnx",
                        vision=TowerFiles("model.onnx", repo="Qdrant/clip-ViT-B-32-vision"),
                        text=TowerFiles("model.onnx"),
                    ),
                ),
            ),
            description="fastembed's ONNX export of OpenAI CLIP ViT-B/32, both towers paired as one model.",
            license="MIT",
        ),
        # Same trained weights as openai/clip-vit-base-patch32, so the same space.
        weights="openai/clip-vit-base-patch32",
        aliases=("Qdrant/clip-ViT-B-32-vision", "Qdrant/clip-ViT-B-32-text"),
    ),
)

#: canonical name -> entry
CATALOG: dict[str, CatalogEntry] = {entry.spec.name: entry for entry in _ENTRIES}
