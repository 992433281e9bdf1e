"""Image batches for the vision tower: decoded and preprocessed ahead of inference, in input order.

:class:`ImagePipeline` turns a stream of image inputs into :class:`PixelBatch`
objects: float32 (n, 3, H, W) tensors ready for the runtime, the stream
positions of their rows, and the inputs that failed (as the
:class:`InputError` each raised, so a batch can go on without them).

With ``workers > 0`` decoding, resizing and normalizing run on a pool while
the caller runs inference on the previous batch, and :meth:`ImagePipeline.encode`
also runs the encoder one batch ahead of the caller, so whatever the caller
does with a batch (writing it to a store) overlaps the next one's inference.
At most ``prefetch + 1`` batches are read from the input ahead of the one
being consumed, so a generator of 100k paths is never read far ahead.

The pool is made of threads by default: Pillow releases the GIL while it
decodes and resizes, and so does the runtime while it infers, so threads
overlap as well as processes do here, with no start-up cost, no pickling,
and no re-import of the caller's ``__main__`` module (which makes a script
without an ``if __name__ == "__main__"`` guard fail under the ``spawn`` and
``forkserver`` start methods). Each thread writes its image straight into its
row of the batch tensor the runtime receives, so no pixel is copied between
preprocessing and the session. ``processes=True`` uses worker processes
instead (for decoders that hold the GIL); they return uint8 arrays that the
caller normalizes into the batch tensor. Each worker process watches the
process that started it and exits the moment it dies, so a killed ingest
(``kill -9`` included) leaves no decoder behind; the multiprocessing helper
processes (fork server, resource tracker) then see their last client gone
and exit too.

``fast=True`` (the ``fast`` precision mode) lets JPEG decoding downscale in
the DCT domain when the source is at least twice the input size (Pillow's
``draft``), and resizes only the part of the image that the center crop keeps.
Both change pixels slightly, so ``exact`` never uses them.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .errors import ConfigError, ImageDecodeError, InputError
from .models.spec import ImagePreprocess
from .preprocessing.images import ImageTransform, _resize_shape, crop_offsets, describe_input

__all__ = ["ImagePipeline", "PixelBatch", "auto_batch_size", "auto_workers", "available_cores", "prepare_image"]

Prepared = tuple[str, "np.ndarray | InputError"]


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def auto_workers(cores: int | None = None, device: str | None = None) -> int:
    """Decode workers for ``cores`` CPUs.

    On CPU, half of the cores, 1 to 4: decoding and resizing a web-sized JPEG
    costs about 3 ms, inferring it with ViT-B/32 about 90 ms of CPU (fp32) or
    30 ms (int8), so one worker keeps up with two cores and the other cores
    are better spent on inference; large photos cost more to decode, hence
    more workers on larger machines. With a GPU doing the inference, every
    core but one decodes (up to 16).
    """
    cores = available_cores() if cores is None else cores
    if device is not None and device.startswith("cuda"):
        return max(1, min(16, cores - 1))
    return max(1, min(4, cores // 2))


def auto_batch_size(device: str | None = None) -> int:
    """Images per inference call: 8 on CPU (larger batches are no faster per image
    there and only add latency and memory), 128 on a GPU (texts: at least 64)."""
    return 128 if device is not None and device.startswith("cuda") else 8


# --------------------------------------------------------------------------- one image


def _fast_resize(transform: ImageTransform, img: Image.Image) -> np.ndarray:
    """Resize only the region the center crop keeps (the same filter positions, up to rounding)."""
    cfg = transform.cfg
    height, width = _resize_shape(img.height, img.width, cfg)
    if cfg.crop is None or cfg.crop[0] > height or cfg.crop[1] > width:
        return transform.resize(img)
    ch, cw = cfg.crop
    top, left = crop_offsets(height, width, cfg.crop, cfg.crop_rounding)
    sx, sy = img.width / width, img.height / height
    box = (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy)
    img = transform.to_rgb(img, resized=False)
    return np.asarray(transform.to_rgb(img.resize((cw, ch), resample=transform.resample, box=box), resized=True))


def _draft_size(cfg: ImagePreprocess) -> tuple[int, int]:
    # Pillow's draft keeps both sides at least this large, so the resize after it only shrinks.
    h, w = cfg.size
    return (w, h)


def _resized(item: Any, transform: ImageTransform, max_pixels: int | None, fast: bool) -> np.ndarray:
    image = transform.load(item, max_pixels=max_pixels, draft=_draft_size(transform.cfg) if fast else None)
    if fast:
        return _fast_resize(transform, image)
    return transform.resize(image)


def _guarded(name: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or the InputError that names the input (a decoder bug must not kill the batch)."""
    try:
        return fn()
    except InputError as exc:
        return exc
    except Exception as exc:
        return ImageDecodeError(f"cannot decode image {name}: {type(exc).__name__}: {exc}", input=name)


_TRANSFORMS: dict[ImagePreprocess, ImageTransform] = {}


def _transform(cfg: ImagePreprocess) -> ImageTransform:
    # A per-process memo of immutable lookup tables; it holds no state that changes a result.
    transform = _TRANSFORMS.get(cfg)
    if transform is None:
        transform = _TRANSFORMS[cfg] = ImageTransform(cfg)
    return transform


def prepare_image(item: Any, cfg: ImagePreprocess, max_pixels: int | None, fast: bool = False) -> Prepared:
    """Decode and resize (and crop) one input to uint8 (H, W, 3); errors are returned, not raised."""
    name = describe_input(item)
    result = _guarded(name, lambda: np.ascontiguousarray(_resized(item, _transform(cfg), max_pixels, fast)))
    return name, result


def _exit_with(parent: int) -> None:
    """Block until process ``parent`` has ended, then end this process at once."""
    try:
        fd = os.pidfd_open(parent)  # Linux 5.3+: readable once the process has exited, and never another's
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
            time.sleep(0.2)
    os._exit(1)


def _watch_parent(parent: int) -> None:
    """Worker initializer: a daemon thread ends the worker when ``parent`` (the pool's owner) dies.

    Without it a killed owner leaves its workers waiting for work forever (each holds the write end of the task
    queue, so none ever sees it close), and with them the fork server and resource tracker they keep alive.
    """
    threading.Thread(target=_exit_with, args=(parent,), name="crossmodal-owner-watch", daemon=True).start()


def _prepare_chunk(items: list[Any], cfg: ImagePreprocess, max_pixels: int | None, fast: bool) -> list[Prepared]:
    return [prepare_image(item, cfg, max_pixels, fast) for item in items]


# --------------------------------------------------------------------------- batches


@dataclass
class PixelBatch:
    """Model-ready pixels for some inputs of a stream."""

    pixels: np.ndarray  # float32 (n, 3, H, W), C-contiguous
    indices: list[int]  # stream position of each row
    failures: list[tuple[int, str, InputError]] = field(default_factory=list)  # (position, name, error)


@dataclass
class _Pending:
    indices: list[int]
    names: list[str]
    pixels: np.ndarray
    results: list[Any]  # per input: None (done), an InputError, or a Future of either


class ImagePipeline:
    """Order-preserving, overlapped image preparation; use as a context manager.

    ``workers``: size of the pool (``None``: :func:`auto_workers`; ``0``:
    everything runs inline in the caller's thread, nothing is read ahead).
    """

    def __init__(
        self,
        cfg: ImagePreprocess,
        *,
        batch_size: int = 8,
        workers: int | None = None,
        max_pixels: int | None = None,
        fast: bool = False,
        prefetch: int = 2,
        processes: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if workers is not None and workers < 0:
            raise ConfigError(f"workers must be >= 0, got {workers}")
        self.cfg = cfg
        self.transform = _transform(cfg)
        self.batch_size = batch_size
        self.workers = auto_workers() if workers is None else workers
        self.max_pixels = max_pixels
        self.fast = fast
        self.prefetch = max(0, prefetch) if self.workers else 0
        self.processes = processes
        self._pool: Executor | None = None
        self._ahead: ThreadPoolExecutor | None = None

    def __enter__(self) -> ImagePipeline:
        if self.workers > 0 and self.processes:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_watch_parent,
                                             initargs=(os.getpid(),))
        elif self.workers > 0:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="crossmodal-decode")
        return self

    def __exit__(self, *exc: object) -> None:
        for pool in (self._ahead, self._pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._ahead = None

    # -- submitting -------------------------------------------------------------

    def _fill(self, item: Any, out: np.ndarray) -> InputError | None:
        """Decode, resize and normalize ``item`` into ``out`` (a row of the batch tensor)."""
        name = describe_input(item)
        resized = _guarded(name, lambda: _resized(item, self.transform, self.max_pixels, self.fast))
        if isinstance(resized, InputError):
            return resized
        self.transform.normalize(resized, out=out)
        return None

    def _submit(self, chunk: list[tuple[int, Any]]) -> _Pending:
        h, w = self.transform.output_size
        pending = _Pending([i for i, _ in chunk], [describe_input(x) for _, x in chunk],
                           np.empty((len(chunk), 3, h, w), dtype=np.float32), [])
        pool = self._pool
        if pool is None:
            pending.results = [self._fill(item, pending.pixels[slot]) for slot, (_, item) in enumerate(chunk)]
        elif self.processes:
            pending.results = [pool.submit(_prepare_chunk, [x for _, x in chunk], self.cfg, self.max_pixels, self.fast)]
        else:
            for slot, (_, item) in enumerate(chunk):
                if isinstance(item, Image.Image):
                    # The caller's own object: never touched from two threads at once.
                    pending.results.append(self._fill(item, pending.pixels[slot]))
                else:
                    pending.results.append(pool.submit(self._fill, item, pending.pixels[slot]))
        return pending

    def _collect(self, pending: _Pending) -> PixelBatch:
        if self.processes and pending.results and isinstance(pending.results[0], Future):
            errors: list[InputError | None] = []
            for slot, (_, prepared) in enumerate(pending.results[0].result()):
                if isinstance(prepared, InputError):
                    errors.append(prepared)
                else:
                    self.transform.normalize(prepared, out=pending.pixels[slot])
                    errors.append(None)
        else:
            errors = [r.result() if isinstance(r, Future) else r for r in pending.results]
        good = [slot for slot, err in enumerate(errors) if err is None]
        failures = [(pending.indices[s], pending.names[s], err) for s, err in enumerate(errors) if err is not None]
        pixels = pending.pixels
        if failures:
            pixels = np.ascontiguousarray(pixels[good])
        return PixelBatch(pixels, [pending.indices[s] for s in good], failures)

    # -- streaming ----------------------------------------------------------------

    def batches(self, items: Iterable[Any]) -> Iterator[PixelBatch]:
        """Prepared batches of ``items``, in input order."""
        stream = enumerate(items)
        queue: collections.deque[_Pending] = collections.deque()
        exhausted = False
        while True:
            while not exhausted and len(queue) <= self.prefetch:
                chunk = list(itertools.islice(stream, self.batch_size))
                if chunk:
                    queue.append(self._submit(chunk))
                exhausted = len(chunk) < self.batch_size
            if not queue:
                return
            yield self._collect(queue.popleft())

    def encode(self, items: Iterable[Any], encoder: Callable[[np.ndarray], np.ndarray]) -> Iterator[tuple[PixelBatch, np.ndarray | None]]:
        """``(batch, encoder(batch.pixels))`` in input order (``None`` when no row of a batch could be decoded).

        With a pool, batch k+1 is encoded on a background thread while the
        caller handles batch k.
        """
        batches = self.batches(items)
        if self._pool is None:
            for batch in batches:
                yield batch, encoder(batch.pixels) if batch.indices else None
            return
        if self._ahead is None:
            self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crossmodal-encode")
        ahead = self._ahead

        def start(batch: PixelBatch) -> tuple[PixelBatch, Future[np.ndarray] | None]:
            return batch, ahead.submit(encoder, batch.pixels) if batch.indices else None

        running: collections.deque[tuple[PixelBatch, Future[np.ndarray] | None]] = collections.deque()
        for batch in batches:
            running.append(start(batch))
            if len(running) > 1:
                done, future = running.popleft()
                yield done, future.result() if future is not None else None
        while running:
            done, future = running.popleft()
            yield done, future.result() if future is not None else None
