"""ModelSpec and its parts validate themselves and read Hugging Face processor configs faithfully."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crossmodal.errors import ConfigError
from crossmodal.models.catalog import CATALOG
from crossmodal.models.spec import Fusion, ImagePreprocess, TextPreprocess


def test_processor_configs_of_the_three_families() -> None:
    clip = ImagePreprocess.from_processor_config({
        "size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
        "resample": 3, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    })
    assert (clip.resize, clip.size, clip.crop, clip.interpolation) == ("shortest", (224, 224), (224, 224), "bicubic")
    siglip = ImagePreprocess.from_processor_config({"size": {"height": 224, "width": 224}, "resample": 3,
                                                    "image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    assert (siglip.resize, siglip.crop, siglip.output_size) == ("squash", None, (224, 224))
    # OFA-Sys/chinese-clip: an int crop_size, but do_center_crop false
    chinese = ImagePreprocess.from_processor_config({"size": {"height": 224, "width": 224}, "crop_size": 224,
                                                     "do_center_crop": False, "resample": 3})
    assert chinese.crop is None and chinese.resize == "squash"
    legacy = ImagePreprocess.from_processor_config({"size": 224, "crop_size": 224, "do_center_crop": True})
    assert legacy.resize == "shortest" and legacy.crop == (224, 224)
    no_norm = ImagePreprocess.from_processor_config({"size": {"height": 8, "width": 8}, "do_normalize": False,
                                                     "do_rescale": False})
    assert no_norm.mean is None and no_norm.rescale is None


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ConfigError, match="does not crop"):
        ImagePreprocess.from_processor_config({"size": {"shortest_edge": 224}, "do_center_crop": False})
    with pytest.raises(ConfigError, match="unsupported size"):
        ImagePreprocess.from_processor_config({"size": {"longest_edge": 224}})
    with pytest.raises(ConfigError, match="interpolation"):
        ImagePreprocess(resize="squash", size=(8, 8), crop=None, interpolation="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="padding"):
        TextPreprocess("clip-bpe", 77, padding="left")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="image_weight"):
        Fusion(image_weight=1.5)
    with pytest.raises(ConfigError, match="family"):
        CATALOG["openai/clip-vit-base-patch32"].spec.with_(family="")


def test_a_family_name_is_checked_against_the_registry() -> None:
    """A spec names its family as data; the family registry refuses a name it does not hold, listing its own."""
    from crossmodal.errors import ModelLoadError
    from crossmodal.families import FAMILIES

    with pytest.raises(ModelLoadError, match="unknown model family 'blip'; expected one of clip, siglip, chinese_clip"):
        FAMILIES.get(CATALOG["openai/clip-vit-base-patch32"].spec.with_(family="blip").family)
    assert {entry.spec.family for entry in CATALOG.values()} <= set(FAMILIES.names())


def test_preprocessing_digest_changes_with_anything_that_changes_a_vector() -> None:
    spec = CATALOG["openai/clip-vit-base-patch32"].spec
    variants = [
        spec.with_(image=ImagePreprocess(resize="squash", size=(224, 224), crop=None)),
        spec.with_(text=TextPreprocess("clip-bpe", 64)),
        spec.with_(dim=768),
    ]
    digests = {spec.preprocessing_digest(), *(v.preprocessing_digest() for v in variants)}
    assert len(digests) == 4
    # ...and not with the things that don't (description, sources)
    assert spec.with_(description="x", sources=()).preprocessing_digest() == spec.preprocessing_digest()


def test_crop_rounding_and_rgb_stage_are_spec_fields_that_change_the_space() -> None:
    spec = CATALOG["openai/clip-vit-base-patch32"].spec
    image = spec.image
    assert (image.crop_rounding, image.rgb) == ("floor", "before_resize")  # the Hugging Face processors' rules
    # Models that do not set them keep the fingerprint they had before the fields existed.
    assert "crop_rounding" not in image.digest_fields() and "rgb" not in image.digest_fields()
    digests = {spec.preprocessing_digest(),
               spec.with_(image=replace(image, crop_rounding="half_even")).preprocessing_digest(),
               spec.with_(image=replace(image, rgb="after_resize")).preprocessing_digest()}
    assert len(digests) == 3
    with pytest.raises(ConfigError, match="crop_rounding"):
        replace(image, crop_rounding="ceil")
    with pytest.raises(ConfigError, match="rgb"):
        replace(image, rgb="never")
