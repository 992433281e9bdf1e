"""Visualized-BGE's image preprocessing, as data for the shared image transform.

The reference (EVA-CLIP's eval transform) is ``Resize(224, BICUBIC)`` on the
short side, ``CenterCrop(224)``, ``convert('RGB')``, ``ToTensor``, ``Normalize``
with OpenAI's mean and std. Its two differences from the CLIP image processors
are fields of :class:`~crossmodal.models.spec.ImagePreprocess`, not code here:
the crop offset rounds half to even (``crop_rounding="half_even"``) and the RGB
conversion comes after the resize (``rgb="after_resize"``).
:class:`~crossmodal.preprocessing.images.ImageTransform` applies them, bit for
bit equal to the reference on decoded images.

Decoding is crossmodal's, as for every model, and deliberately differs from
the reference's bare ``Image.open``: EXIF orientation is applied (a phone photo
is embedded upright), and 16/32-bit images are scaled to 8 bits instead of
clipped (Pillow's conversion turns most 16-bit photos white).
"""

from __future__ import annotations

from ..models.spec import ImagePreprocess

__all__ = ["OPENAI_MEAN", "OPENAI_STD", "visualized_image"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def visualized_image(size: int = 224) -> ImagePreprocess:
    """The preprocessing of a Visualized-BGE whose vision tower takes ``size`` pixels."""
    return ImagePreprocess(resize="shortest", size=(size, size), crop=(size, size), interpolation="bicubic",
                           mean=OPENAI_MEAN, std=OPENAI_STD, crop_rounding="half_even", rgb="after_resize")
