"""Session fixtures for the BGE tests: seeded tiny models, their ONNX exports, and one reference run.

The reference (BAAI's FlagEmbedding, unpacked by ``tests/reference/bge_env.py``)
runs in two subprocesses started together as soon as a test asks for it: the
visual one (Visualized-BGE and the image transform) and the M3 one. Their
outputs are kept for the session. Without the reference's files, the tests that
need it skip with the reason; if the reference itself fails, they fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..conftest import shared_images
from ..reference.bge_env import ReferenceEnv, ReferenceUnavailable, prepare
from ..reference.bge_reference import ReferenceResult, ReferenceRun, m3_task, start, transform_task, visualized_task
from .inputs import (
    LONGEST_PAIR_TEXT,
    M3_MAX_LENGTH,
    M3_PAIRS,
    M3_SHORT,
    M3_TEXTS,
    M3_TRUNCATE_DIM,
    M3_WEIGHTS,
    PAIR_TEXTS,
    PHOTOS,
    TEXTS,
    TOO_LONG_PAIR_TEXT,
    write_synthetic_images,
)


@pytest.fixture(scope="session")
def visualized_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossmodal.testing.bge import build_visualized

    return build_visualized(tmp_path_factory.mktemp("visualized-base-en"), variant="base-en", seed=0)


@pytest.fixture(scope="session")
def m3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossmodal.testing.bge import build_m3

    return build_m3(tmp_path_factory.mktemp("bge-m3"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def visualized_onnx_dir(tmp_path_factory: pytest.TempPathFactory, visualized_dir: Path) -> Path:
    from crossmodal.bge.onnx_export import export_visualized
    from crossmodal.bge.visualized import load_visualized

    return export_visualized(load_visualized(visualized_dir), visualized_dir, tmp_path_factory.mktemp("vis-onnx") / "m")


@pytest.fixture(scope="session")
def m3_onnx_dir(tmp_path_factory: pytest.TempPathFactory, m3_dir: Path) -> Path:
    from crossmodal.bge.m3 import load_m3
    from crossmodal.bge.onnx_export import export_m3

    return export_m3(load_m3(m3_dir), m3_dir, tmp_path_factory.mktemp("m3-onnx") / "m")


@pytest.fixture(scope="session")
def visualized_torch(visualized_dir: Path):
    from crossmodal.bge.torch_graphs import load_visualized_encoder

    return load_visualized_encoder(visualized_dir)


@pytest.fixture(scope="session")
def visualized_onnx(visualized_onnx_dir: Path):
    from crossmodal.bge.onnx_run import load_visualized_onnx

    return load_visualized_onnx(visualized_onnx_dir)


@pytest.fixture(scope="session")
def m3_torch(m3_dir: Path):
    from crossmodal.bge.torch_graphs import load_m3_encoder

    return load_m3_encoder(m3_dir)


@pytest.fixture(scope="session")
def m3_onnx(m3_onnx_dir: Path):
    from crossmodal.bge.onnx_run import load_m3_onnx

    return load_m3_onnx(m3_onnx_dir)


@pytest.fixture(params=["torch", "onnx"])
def visualized(request: pytest.FixtureRequest):
    """The tiny Visualized-BGE on each runtime (crossmodal's default decoding: EXIF, 16-bit scaling)."""
    return request.getfixturevalue(f"visualized_{request.param}")


@pytest.fixture(params=["torch", "onnx"])
def m3(request: pytest.FixtureRequest):
    return request.getfixturevalue(f"m3_{request.param}")


@pytest.fixture(scope="session")
def synthetic_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_synthetic_images(tmp_path_factory.mktemp("bge-images"))


@pytest.fixture(scope="session")
def transform_images(synthetic_images: list[Path]) -> list[Path]:
    """Every shared photo (none has an EXIF rotation) and the synthesized modes and sizes."""
    return [*shared_images(), *synthetic_images]


@pytest.fixture(scope="session")
def reference_env() -> ReferenceEnv:
    try:
        return prepare()
    except ReferenceUnavailable as exc:
        pytest.skip(str(exc))


VISUALIZED_CALLS = [
    {"name": "text", "op": "text", "texts": TEXTS},
    {"name": "text_batch", "op": "text", "texts": TEXTS, "batched": True},
    {"name": "image", "op": "image", "images": [str(p) for p in PHOTOS]},
    {"name": "image_batch", "op": "image_batch", "images": [str(p) for p in PHOTOS[:2]]},
    {"name": "pair", "op": "pair", "images": [str(p) for p in PHOTOS], "texts": PAIR_TEXTS},
    {"name": "pair_batch", "op": "pair_batch", "images": [str(p) for p in PHOTOS[:2]], "texts": PAIR_TEXTS[:2]},
    {"name": "longest_pair", "op": "pair", "images": [str(PHOTOS[0])], "texts": [LONGEST_PAIR_TEXT]},
    {"name": "too_long_pair", "op": "pair", "images": [str(PHOTOS[0])], "texts": [TOO_LONG_PAIR_TEXT]},
    {"name": "tokens", "op": "tokenize", "texts": [*TEXTS, *PAIR_TEXTS, ""]},
    {"name": "diagnostics", "op": "diagnostics", "images": [str(PHOTOS[0])]},
]
M3_CALLS = [
    {"name": "all", "op": "encode", "texts": M3_TEXTS, "max_length": M3_MAX_LENGTH, "sparse": True, "colbert": True},
    {"name": "all_b2", "op": "encode", "texts": M3_TEXTS, "max_length": M3_MAX_LENGTH, "sparse": True,
     "colbert": True, "batch_size": 2},
    {"name": "short", "op": "encode", "texts": M3_TEXTS, "max_length": M3_SHORT, "sparse": True, "colbert": True},
    {"name": "dim", "op": "encode", "texts": M3_TEXTS, "max_length": M3_MAX_LENGTH, "colbert": True,
     "truncate_dim": M3_TRUNCATE_DIM},
    {"name": "score", "op": "score", "pairs": [list(p) for p in M3_PAIRS], "max_length": M3_MAX_LENGTH},
    {"name": "score_weighted", "op": "score", "pairs": [list(p) for p in M3_PAIRS], "max_length": M3_MAX_LENGTH,
     "weights": M3_WEIGHTS},
    {"name": "colbert_score", "op": "colbert_score", "pair": list(M3_PAIRS[1])},
    {"name": "tokens", "op": "tokenize", "texts": M3_TEXTS},
]


@pytest.fixture(scope="session")
def reference_runs(reference_env: ReferenceEnv, visualized_dir: Path, m3_dir: Path, transform_images: list[Path]):
    runs = {
        "visual": start([visualized_task(visualized_dir, VISUALIZED_CALLS), transform_task(transform_images)],
                        env=reference_env),
        "m3": start([m3_task(m3_dir, M3_CALLS)], env=reference_env),
    }
    yield runs
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        shutil.rmtree(run.tmp, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _start_the_reference_early(request: pytest.FixtureRequest) -> None:
    """Start the reference with the first BGE test when the session needs it, so it runs beside the others."""
    wanted = {"visualized_reference", "transform_reference", "m3_reference"}
    if any(wanted & set(getattr(item, "fixturenames", ())) for item in request.session.items):
        try:
            request.getfixturevalue("reference_runs")
        except pytest.skip.Exception:
            pass  # the tests that need it skip with the reason


def _results(run: ReferenceRun) -> list[ReferenceResult]:
    try:
        return run.results()
    except ReferenceUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def visualized_reference(reference_runs) -> ReferenceResult:
    return _results(reference_runs["visual"])[0]


@pytest.fixture(scope="session")
def transform_reference(reference_runs) -> ReferenceResult:
    return _results(reference_runs["visual"])[1]


@pytest.fixture(scope="session")
def m3_reference(reference_runs) -> ReferenceResult:
    return _results(reference_runs["m3"])[0]
