"""Every dataset format reads back the same images and captions; a bad dataset gets one error naming where."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from crossmodal.errors import ConfigError
from crossmodal.eval import (
    IMAGENET_TEMPLATES,
    RetrievalDataset,
    TarMember,
    load_classification_dataset,
    load_classnames,
    load_retrieval_dataset,
    load_templates,
)
from crossmodal.eval.datasets import iter_image_inputs

from .formats import (
    ShapeSet,
    write_class_folders,
    write_coco,
    write_csv,
    write_karpathy,
    write_tsv,
    write_wds,
)

WRITERS = {
    "csv": lambda s, d: write_csv(s, s.root / "captions.csv"),
    "karpathy-txt": lambda s, d: write_csv(s, s.root / "shapes_test_karpathy.txt"),
    "tsv": lambda s, d: write_tsv(s, s.root / "captions.tsv"),
    "coco-json": lambda s, d: write_coco(s, s.root / "coco.json"),
    "karpathy-json": lambda s, d: write_karpathy(s, s.root / "dataset_shapes.json"),
    "wds": lambda s, d: write_wds(s, d / "wds" / "shapes"),
}


def image_bytes(dataset: RetrievalDataset) -> list[bytes]:
    return [x if isinstance(x, bytes) else Path(x).read_bytes() for x in iter_image_inputs(dataset.images)]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_format_reads_the_same_data(shape_set: ShapeSet, tmp_path: Path, fmt: str) -> None:
    dataset = load_retrieval_dataset(WRITERS[fmt](shape_set, tmp_path))
    texts, owner = shape_set.flat()
    assert len(dataset.images) == len(shape_set.images)
    assert image_bytes(dataset) == [p.read_bytes() for p in shape_set.paths()]
    for i, caps in enumerate(shape_set.captions):  # COCO lists captions interleaved; each image keeps its own
        assert dataset.captions_of(i) == caps
    if fmt != "coco-json":
        assert list(dataset.captions) == texts and dataset.caption_image.tolist() == owner.tolist()


def test_formats_are_named_and_wds_reads_tar_members(shape_set: ShapeSet, tmp_path: Path) -> None:
    wds = load_retrieval_dataset(write_wds(shape_set, tmp_path / "wds" / "shapes"))
    assert wds.format == "wds" and wds.name == "wds/shapes"
    assert isinstance(wds.images[0], TarMember) and wds.images[0].member == "s0000000.png"
    split = load_retrieval_dataset(tmp_path / "wds" / "shapes" / "test")  # the split folder itself
    assert len(split.images) == len(wds.images)
    assert load_retrieval_dataset(write_tsv(shape_set, shape_set.root / "c.tsv")).format == "captions-tsv"


def test_the_shared_captions_tsv_finds_images_by_name(images_dir: Path) -> None:
    dataset = load_retrieval_dataset(images_dir / "captioned" / "captions.tsv")
    assert len(dataset.images) == 25 and len(dataset.captions) == 25
    assert all(Path(p).is_file() and Path(p).parent.name == "images" for p in dataset.images)


def test_karpathy_json_split_none_takes_every_image(shape_set: ShapeSet) -> None:
    path = write_karpathy(shape_set, shape_set.root / "k.json")
    every = load_retrieval_dataset(path, split=None)
    assert "a training caption" in every.captions and len(every.images) == len(shape_set.images)
    with pytest.raises(ConfigError, match=r"no images in split 'val' \(splits: test, train\)"):
        load_retrieval_dataset(path, split="val")


def test_coco_image_root(shape_set: ShapeSet, tmp_path: Path) -> None:
    data = json.loads(write_coco(shape_set, shape_set.root / "coco.json").read_text())
    for im in data["images"]:
        im["file_name"] = im["file_name"].removeprefix("pictures/")
    elsewhere = tmp_path / "coco_test_karpathy.json"
    elsewhere.write_text(json.dumps(data))
    dataset = load_retrieval_dataset(elsewhere, image_root=shape_set.root / "pictures")
    assert len(dataset.images) == len(shape_set.images)


def test_from_pairs_groups_captions_per_image(shape_set: ShapeSet) -> None:
    p = shape_set.paths()
    dataset = RetrievalDataset.from_pairs([(p[0], "a"), (p[1], "b"), (str(p[0]), "c")])
    assert len(dataset.images) == 2 and dataset.captions_of(0) == ["a", "c"]


# -- bad datasets ---------------------------------------------------------------------------------------------------

def _csv(tmp_path: Path, shape_set: ShapeSet, body: str, name: str = "bad.csv") -> Path:
    path = shape_set.root / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(("body", "message"), [
    ("image,caption\npictures/red_circle_0.png,a red circle\npictures/nope.png,a ghost\n",
     r"bad\.csv:3: image 'pictures/nope\.png' not found"),
    ("image,caption\npictures/red_circle_0.png,a red circle\npictures/red_square_0.png,   \n",
     r"bad\.csv:3: empty caption for pictures/red_square_0\.png"),
    ("image,caption\npictures/red_circle_0.png a red circle\n", r"bad\.csv:2: expected image,caption, found no comma"),
    ('image,caption\n"pictures/red_circle_0.png,a red circle\n', r"bad\.csv:2: malformed CSV"),
    ('image,caption\n"pictures/red_circle_0.png","a","b"\n', r"bad\.csv:2: expected 2 fields \(image,caption\), found 3"),
    ("pictures/red_circle_0.png,a red circle\n", r"bad\.csv:1: expected the header line image,caption"),
    ("image,caption\n", r"bad\.csv: no caption rows after the header"),
    ("", r"bad\.csv: empty file"),
])
def test_bad_csv_rows_are_named(shape_set: ShapeSet, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_retrieval_dataset(_csv(Path(), shape_set, body))


def test_bad_tsv_rows_are_named(shape_set: ShapeSet) -> None:
    path = shape_set.root / "bad.tsv"
    path.write_text("file\tcaption\npictures/red_circle_0.png\ta red circle\npictures/red_circle_1.png\n")
    with pytest.raises(ConfigError, match=r"bad\.tsv:3: expected file<TAB>caption, found 1 column"):
        load_retrieval_dataset(path)
    path.write_text("file\tcaption\npictures/red_circle_0.png\t\n")
    with pytest.raises(ConfigError, match=r"bad\.tsv:2: empty caption"):
        load_retrieval_dataset(path)
    path.write_text("file\tcaption\nred_circle_9.png\tgone\n")
    with pytest.raises(ConfigError, match=r"bad\.tsv:2: image 'red_circle_9\.png' not found"):
        load_retrieval_dataset(path)


def test_a_bare_name_matching_two_files_is_ambiguous(shape_set: ShapeSet, tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.png").write_bytes(shape_set.paths()[0].read_bytes())
    (tmp_path / "c.tsv").write_text("x.png\ta picture\n")
    with pytest.raises(ConfigError, match=r"c\.tsv:1: image 'x\.png' matches 2 files"):
        load_retrieval_dataset(tmp_path / "c.tsv")


def test_bad_json_datasets_are_named(shape_set: ShapeSet, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    cases = [
        ("{not json", r"bad\.json: not JSON"),
        (json.dumps([1, 2]), r"bad\.json: expected a COCO captions JSON"),
        (json.dumps({"images": [{"id": 1, "file_name": shape_set.images[0]}],
                     "annotations": [{"image_id": 2, "caption": "x"}]}), r"annotations\[0\] names image id 2"),
        (json.dumps({"images": [{"id": 1, "file_name": shape_set.images[0]}],
                     "annotations": [{"image_id": 1, "caption": " "}]}), r"annotations\[0\]: empty caption"),
        (json.dumps({"images": [{"id": 1, "file_name": shape_set.images[0]}, {"id": 2, "file_name": "x.png"}],
                     "annotations": [{"image_id": 1, "caption": "a"}]}), r"image id 2 \(x\.png\) has no captions"),
        (json.dumps({"images": [{"filename": "nope.png", "sentences": [{"raw": "a"}]}]}),
         r"images\[0\]: image 'nope\.png' not found"),
    ]
    for body, message in cases:
        path.write_text(body)
        with pytest.raises(ConfigError, match=message):
            load_retrieval_dataset(path, image_root=shape_set.root)


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_wds_folders_are_named(shape_set: ShapeSet, tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / "test").mkdir(parents=True)
    png = shape_set.paths()[0].read_bytes()
    (root / "test" / "nshards.txt").write_text("2\n")
    _tar(root / "test" / "0.tar", {"s0.png": png, "s0.txt": b"a red circle"})
    with pytest.raises(ConfigError, match=r"says 2 shards, but .*1\.tar does not exist"):
        load_retrieval_dataset(root)
    (root / "test" / "nshards.txt").write_text("1\n")
    _tar(root / "test" / "0.tar", {"s0.png": png, "s0.txt": b"a red circle\n\nmore"})
    with pytest.raises(ConfigError, match=r"0\.tar: sample 's0': caption 2 of its \.txt is empty"):
        load_retrieval_dataset(root)
    _tar(root / "test" / "0.tar", {"s0.png": png, "s0.cls": b"3"})
    with pytest.raises(ConfigError, match=r"sample 's0' has no \.txt captions \(a classification sample\?"):
        load_retrieval_dataset(root)
    _tar(root / "test" / "0.tar", {"s0.txt": b"a caption"})
    with pytest.raises(ConfigError, match=r"sample 's0' has no image"):
        load_retrieval_dataset(root)
    with pytest.raises(ConfigError, match=r"no split 'val' \(splits: test\)"):
        load_retrieval_dataset(root, split="val")
    (root / "test" / "0.tar").write_bytes(b"not a tar at all" * 40)
    with pytest.raises(ConfigError, match=r"0\.tar: not a readable tar shard"):
        load_retrieval_dataset(root)


def test_unknown_files_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"x\.parquet: use a \.csv/\.txt"):
        load_retrieval_dataset(tmp_path / "x.parquet")
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_retrieval_dataset(tmp_path / "nothing.csv")
    with pytest.raises(ConfigError, match=r"no split 'test'|not a CLIP_benchmark wds/ folder"):
        load_retrieval_dataset(tmp_path)


# -- classification -------------------------------------------------------------------------------------------------

def test_class_folders_and_wds_give_the_same_labels(shape_set: ShapeSet, tmp_path: Path) -> None:
    folders = load_classification_dataset(write_class_folders(shape_set, tmp_path / "folders"))
    assert folders.classnames == tuple(sorted(shape_set.classnames))  # sorted folder order, "_" read as " "
    assert "blue circle" in folders.classnames and len(folders.images) == len(shape_set.images)
    for image, label in zip(folders.images, folders.labels):
        assert Path(image).parent.name == folders.classnames[label].replace(" ", "_")
    wds = load_classification_dataset(write_wds(shape_set, tmp_path / "wds" / "shapes", task="classification"))
    assert wds.classnames == tuple(shape_set.classnames) and wds.labels.tolist() == shape_set.labels
    assert wds.templates is None


def test_classnames_file_renames_the_folders(shape_set: ShapeSet, tmp_path: Path) -> None:
    root = write_class_folders(shape_set, tmp_path / "folders")
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"class {i}" for i in range(12)) + "\n\n")
    assert load_classification_dataset(root, classnames=names).classnames[3] == "class 3"
    names.write_text("one\ntwo\n")
    with pytest.raises(ConfigError, match=r"2 class names for the 12 class folders"):
        load_classification_dataset(root, classnames=names)
    names.write_text("one\n\ntwo\n")
    with pytest.raises(ConfigError, match=r"names\.txt:2: empty class name"):
        load_classnames(names)


def test_bad_class_folders_are_named(shape_set: ShapeSet, tmp_path: Path) -> None:
    root = write_class_folders(shape_set, tmp_path / "folders")
    (root / "zebra").mkdir()
    (root / "zebra" / "notes.txt").write_text("no pictures here")
    with pytest.raises(ConfigError, match=r"class folder .*zebra holds no images"):
        load_classification_dataset(root)
    with pytest.raises(ConfigError, match=r"has no class folders"):
        load_classification_dataset(root / "zebra")
    with pytest.raises(ConfigError, match=r"is not a folder"):
        load_classification_dataset(shape_set.paths()[0])


def test_bad_wds_labels_are_named(shape_set: ShapeSet, tmp_path: Path) -> None:
    root = write_wds(shape_set, tmp_path / "w", task="classification")
    (root / "classnames.txt").write_text("a\nb\n")
    with pytest.raises(ConfigError, match=r"has label 2, outside the 2 classes"):
        load_classification_dataset(root)
    (root / "classnames.txt").unlink()
    with pytest.raises(ConfigError, match=r"has no classnames\.txt; give the class names with --classnames"):
        load_classification_dataset(root)
    (root / "dataset_type.txt").write_text("multilabel\n")
    with pytest.raises(ConfigError, match=r"multilabel datasets"):
        load_classification_dataset(root)


def test_templates(tmp_path: Path) -> None:
    assert len(IMAGENET_TEMPLATES) == 80 and IMAGENET_TEMPLATES[0] == "a bad photo of a {c}."
    assert all("{c}" in t for t in IMAGENET_TEMPLATES) and len(set(IMAGENET_TEMPLATES)) == 80
    path = tmp_path / "t.txt"
    path.write_text("a {c}\n\na photo of a {c}, {with braces}\n")
    assert load_templates(path) == ["a {c}", "a photo of a {c}, {with braces}"]
    path.write_text("a {c}\na photo\n")
    with pytest.raises(ConfigError, match=r"t\.txt:2: template 'a photo' has no \{c\}"):
        load_templates(path)


def test_dataset_objects_check_themselves(shape_set: ShapeSet) -> None:
    p = shape_set.paths()
    with pytest.raises(ConfigError, match=r"has no caption"):
        RetrievalDataset([p[0], p[1]], ["a"], np.array([0]))
    with pytest.raises(ConfigError, match=r"caption #0 is empty"):
        RetrievalDataset([p[0]], [""], np.array([0]))
