"""The contract every registered family keeps, on every runtime it names.

Parametrized over :data:`crossmodal.families.FAMILIES` and each family's
``runtimes``, so a new family is tested by registering it: its test model is
recognized as its own, reads back the spec it was built with, and embeds every
input its capabilities name into unit rows of the spec's dim, the same on each
of its runtimes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.errors import UnsupportedInput
from crossmodal.families import FAMILIES, TinyModelOptions
from crossmodal.testing.models import find_clip_bpe
from crossmodal.testing.shapes import caption_corpus

from ..conftest import ASSETS

CASES = [(family.name, runtime) for family in FAMILIES for runtime in family.runtimes]
TEXTS = ["a red circle", "two dogs on a beach", "一条龙"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each family's tiny test model, built by the family itself (once per module)."""
    options = TinyModelOptions(vocab=lambda: find_clip_bpe(search=[ASSETS]), corpus=tuple(caption_corpus()))
    return {f.name: f.build_test_model(tmp_path_factory.mktemp(f"contract-{f.name}"), options) for f in FAMILIES}


@pytest.mark.parametrize("name", FAMILIES.names())
def test_a_family_recognizes_its_own_test_model(name: str, built: dict[str, Path]) -> None:
    family = FAMILIES.get(name)
    files = FAMILIES.detect(built[name])
    assert family.detect(built[name]) == files and FAMILIES.family_of(files) is family
    others = [f.name for f in FAMILIES if f is not family and f.detect(built[name]) is not None and f.claims(files)]
    assert others == [], f"{name}'s model is also claimed by {others}"
    spec = FAMILIES.read_spec(files, "m")
    assert spec.family == name and spec.name == "m" and spec.dim >= 1


@pytest.mark.parametrize(("name", "runtime"), CASES)
def test_a_family_embeds_what_it_says_on_each_runtime(name: str, runtime: str, built: dict[str, Path],
                                                      model_cache: Path, images_dir: Path) -> None:
    model = crossmodal.load_model(built[name], runtime=runtime, cache_dir=model_cache)
    caps = FAMILIES.get(name).capabilities
    assert model.capabilities == caps and model.spec.family == name
    image = images_dir / "formats" / "cat.jpg"
    calls = {
        "text": lambda: model.embed_texts(TEXTS),
        "image": lambda: model.embed_images([image, image]),
        "pair": lambda: model.embed_pairs([image], ["a cat"]),
    }
    for modality, call in calls.items():
        if modality not in caps.inputs:
            with pytest.raises(UnsupportedInput):
                call()
            continue
        rows = call()
        assert rows.dtype == np.float32 and rows.shape[1] == model.dim
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", [f.name for f in FAMILIES if len(f.runtimes) > 1])
def test_a_family_gives_the_same_vectors_on_all_its_runtimes(name: str, built: dict[str, Path], model_cache: Path,
                                                             images_dir: Path) -> None:
    family = FAMILIES.get(name)
    models = [crossmodal.load_model(built[name], runtime=r, cache_dir=model_cache) for r in family.runtimes]
    image = images_dir / "formats" / "cat.jpg"
    first = models[0]
    for other in models[1:]:
        assert other.space == first.space  # one space whatever the runtime
        if "text" in family.capabilities.inputs:
            assert np.abs(other.embed_texts(TEXTS) - first.embed_texts(TEXTS)).max() <= 1e-5
        if "image" in family.capabilities.inputs:
            assert np.abs(other.embed_images([image]) - first.embed_images([image])).max() <= 1e-5
