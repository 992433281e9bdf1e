"""The default ONNX runtime never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_onnx_runtime_never_imports_torch(tiny_clip_onnx_dir: Path, images_dir: Path) -> None:
    script = (
        "import sys, crossmodal\n"
        f"m = crossmodal.load_model({str(tiny_clip_onnx_dir)!r})\n"
        f"m.embed_texts(['a dog']); m.embed_images([{str(images_dir / 'formats' / 'cat.jpg')!r}])\n"
        f"m.embed_pairs([{str(images_dir / 'formats' / 'cat.jpg')!r}], ['a cat'])\n"
        "from crossmodal.cli.main import cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'torchvision'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
