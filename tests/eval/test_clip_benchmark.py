"""Our metrics agree with CLIP_benchmark 1.6.2's own metric functions on the same vectors.

CLIP_benchmark is installed without its dependencies (``pip install --no-deps clip-benchmark==1.6.2``, as
.ci/run does); its metric modules need only torch, tqdm and scikit-learn. Its functions take a model and a
data loader, so a lookup model stands in: ``encode_image`` / ``encode_text`` return fixed vectors by index.

Its ``accuracy()`` calls ``float()`` on a one-element array, which numpy 2.4 refuses (TypeError), so on numpy
>= 2.4 the zero-shot comparison checks that it still fails, and compares everything else it computes (the
class vectors, the logits, ``balanced_accuracy_score``) plus its top-k expression run without the ``float()``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
retrieval = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
classification = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")

from crossmodal.eval.metrics import (  # noqa: E402
    accuracy_at_k,
    class_vectors,
    mean_per_class_recall,
    positive_ranks,
    retrieval_metrics,  # noqa: E402
    retrieval_ranks,
)

NUMPY_2_4 = tuple(int(x) for x in np.__version__.split(".")[:2]) >= (2, 4)


class LookupModel:
    """CLIP-like: 'images' and 'tokens' are row numbers into fixed vector tables."""

    def __init__(self, images: np.ndarray, texts: np.ndarray) -> None:
        self.images = torch.from_numpy(images)
        self.texts = torch.from_numpy(texts)

    def encode_image(self, index):
        return self.images[index]

    def encode_text(self, index):
        return self.texts[index]


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_retrieval_agrees_with_clip_benchmarks_evaluate() -> None:
    rng = np.random.default_rng(11)
    images, texts = unit(rng, 60, 16), unit(rng, 170, 16)
    owner = np.sort(np.concatenate([np.arange(60), rng.integers(0, 60, 110)]))  # captions grouped per image
    captions = [np.flatnonzero(owner == i).tolist() for i in range(60)]
    # one batch = (image indices, per image its captions as "strings"); the tokenizer maps them back to rows
    batches = [(torch.arange(s, min(60, s + 16)), [[str(j) for j in captions[i]] for i in range(s, min(60, s + 16))])
               for s in range(0, 60, 16)]
    ks = [1, 5, 10]
    theirs = retrieval.evaluate(LookupModel(images, texts), batches, lambda xs: torch.tensor([int(x) for x in xs]),
                                "cpu", amp=False, recall_k_list=ks)
    ours = retrieval_metrics(*retrieval_ranks(images, texts, owner, chunk=300), ks)
    assert set(theirs) == set(ours)
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key  # theirs is a float32 mean


def test_recall_at_k_agrees_with_clip_benchmarks_function() -> None:
    rng = np.random.default_rng(2)
    images, texts = unit(rng, 30, 8), unit(rng, 90, 8)
    owner = rng.integers(0, 30, 90)
    owner[:30] = np.arange(30)
    scores = torch.from_numpy(texts @ images.T)
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(90), torch.from_numpy(owner)] = True
    t2i, i2t = retrieval_ranks(images, texts, owner)
    for k in (1, 3, 7):
        theirs_t2i = retrieval.recall_at_k(scores, positive, k) > 0
        theirs_i2t = retrieval.recall_at_k(scores.T, positive.T, k) > 0
        assert (t2i < k).tolist() == theirs_t2i.tolist()
        assert (i2t < k).tolist() == theirs_i2t.tolist()


def test_zeroshot_agrees_with_clip_benchmark() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    classnames = [f"class {c}" for c in range(9)]
    templates = ["a {c}.", "a photo of a {c}.", "a drawing of the {c}."]
    prompts = unit(rng, len(classnames) * len(templates), 12)
    prompt_row = {t.format(c=c): n for n, (c, t) in enumerate((c, t) for c in classnames for t in templates)}
    images = unit(rng, 150, 12)
    labels = rng.integers(0, 9, 150)
    model = LookupModel(images, prompts)

    classifier = classification.zero_shot_classifier(model, lambda xs: torch.tensor([prompt_row[x] for x in xs]),
                                                     classnames, templates, "cpu", amp=False)
    ours = class_vectors(prompts.reshape(9, 3, 12))
    np.testing.assert_allclose(classifier.numpy().T, ours, atol=1e-6)

    batches = [(torch.arange(s, min(150, s + 32)), torch.from_numpy(labels[s:s + 32])) for s in range(0, 150, 32)]
    logits, target = classification.run_classification(model, classifier, batches, "cpu", amp=False)
    ranks = positive_ranks(images, ours, labels)
    assert (ranks == 0).tolist() == (logits.argmax(dim=1) == target).tolist()

    if NUMPY_2_4:
        with pytest.raises(TypeError):  # float() of a 1-element array: CLIP_benchmark's accuracy() on numpy 2.4
            classification.accuracy(logits, target, topk=(1, 5))
        # its own expression, less the float() of an array
        pred = logits.topk(5, 1, True, True)[1].t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        acc1, acc5 = (correct[:k].reshape(-1).float().sum().item() / len(target) for k in (1, 5))
    else:
        acc1, acc5 = classification.accuracy(logits, target, topk=(1, 5))
    assert accuracy_at_k(ranks, 1, 9) == pytest.approx(acc1, abs=1e-12)
    assert accuracy_at_k(ranks, 5, 9) == pytest.approx(acc5, abs=1e-12)
    balanced = sklearn.balanced_accuracy_score(target.numpy(), logits.argmax(dim=1).numpy())
    assert mean_per_class_recall(ranks, labels) == pytest.approx(balanced, abs=1e-12)
