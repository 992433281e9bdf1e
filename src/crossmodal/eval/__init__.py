"""crossmodal.eval: retrieval and zero-shot accuracy with CLIP_benchmark's metrics and dataset formats.

>>> import crossmodal
>>> from crossmodal.eval import evaluate_retrieval, evaluate_zeroshot, load_retrieval_dataset
>>> model = crossmodal.load_model("openai/clip-vit-base-patch32")
>>> dataset = load_retrieval_dataset("flickr30k/flickr30k_test_karpathy.txt")
>>> result = evaluate_retrieval(model, dataset, k=(1, 5, 10))
>>> result.metrics["image_retrieval_recall@1"], result.metrics["text_retrieval_recall@1"]
>>> print(result.to_json())                      # CLIP_benchmark's JSON shape, strict JSON
>>> evaluate_zeroshot(model, "imagenet/val", classnames="classnames.txt").metrics["acc1"]

``image_retrieval_recall@k`` is text -> image: a caption hits when its image
is among the top k images. ``text_retrieval_recall@k`` is image -> text: an
image hits when any of its captions is among the top k captions. Zero-shot
gives ``acc1``, ``acc5`` and ``mean_per_class_recall``. See
:mod:`crossmodal.eval.metrics` for the exact definitions (ties included),
:mod:`crossmodal.eval.datasets` for the formats, and docs/eval.md.
"""

from .datasets import (
    IMAGENET_TEMPLATES,
    ClassificationDataset,
    RetrievalDataset,
    TarMember,
    load_classnames,
    load_templates,
)
from .harness import evaluate_retrieval, evaluate_zeroshot
from .loading import load_classification_dataset, load_retrieval_dataset
from .metrics import (
    accuracy_at_k,
    class_vectors,
    mean_per_class_recall,
    positive_ranks,
    recall_at_k,
    retrieval_ranks,
    top_k,
)
from .plots import plot_recall_curves, plot_similarity
from .results import CollectionReport, RetrievalResult, ZeroshotResult, format_table

__all__ = [
    "IMAGENET_TEMPLATES",
    "ClassificationDataset",
    "CollectionReport",
    "RetrievalDataset",
    "RetrievalResult",
    "TarMember",
    "ZeroshotResult",
    "accuracy_at_k",
    "class_vectors",
    "evaluate_retrieval",
    "evaluate_zeroshot",
    "format_table",
    "load_classification_dataset",
    "load_classnames",
    "load_retrieval_dataset",
    "load_templates",
    "mean_per_class_recall",
    "plot_recall_curves",
    "plot_similarity",
    "positive_ranks",
    "recall_at_k",
    "retrieval_ranks",
    "top_k",
]
