"""Distributed ingest on Ray Data: ``crossmodal index --ray [ADDRESS] PATH|MANIFEST...``.

The driver (this module) loads the model once to learn its space, opens or
creates the collection, and plans the work (:mod:`~crossmodal.distributed.plan`:
the same items single-machine ingest makes, minus those already stored).
Ray Data then streams the rows through three stages
(:mod:`~crossmodal.distributed.stages`)::

    rows (blocks) -> prepare: read + hash + decode + resize   CPU tasks
                  -> Embedder: the model, one load per actor   GPU actors when the cluster has GPUs
                  -> Writer: upsert by id, in batches          writer actors, one store connection each

and reports progress as Ray Data does. The same code runs on a laptop
(``ray.init()`` starts a local cluster on this machine's cores) and on a
cluster (``--ray auto`` inside it, or ``--ray ray://HEAD:10001``).

Only server stores (PostgreSQL + pgvector, a Qdrant server) can take the
writes: the embedded store is a directory on one machine's disk (other nodes
cannot reach it) with one writer at a time (a SQLite write lock, and HNSW
files derived per process), so parallel writers would only queue, and
Qdrant's local mode is one process by design. Index into a server store, then
``crossmodal store copy`` it into an embedded store if you want one; on one
machine, plain ``crossmodal index`` already decodes on every core.

Fault tolerance comes from ids: every item's id is derived from its reference
(or given), the writer upserts by id, and Ray retries a task whose worker died
(and restarts a dead actor), so a retried batch rewrites the same rows; a
restarted job skips what is stored and embeds only the rest.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, RuntimeUnavailable
from ..ingest import IngestReport, adopt_root
from ..ingest.options import IngestOptions
from ..loader import LoadOptions
from ..stores.uri import backend_class
from .plan import plan_inputs

__all__ = ["RayOptions", "Resources", "check_server_store", "ray_ingest", "resources_for"]


def check_server_store(uri: str) -> None:
    """ConfigError (saying why) unless ``uri`` names a store that many machines can write to at once (a store
    class that is ``shared``); nothing is opened."""
    store = backend_class(uri)
    if store.shared:
        return
    raise ConfigError(
        f"--ray needs a server store (postgresql://... or qdrant://HOST:PORT), not {store.kind} ({uri}): Ray workers "
        "on other machines cannot reach a store on this machine's disk, and it takes one writer at a time. Index into "
        "PostgreSQL or Qdrant and `crossmodal store copy` it into an embedded store, or use `crossmodal index` "
        "without --ray (it already decodes images on every core of this machine)")


@dataclass(frozen=True)
class Resources:
    """How the stages use the cluster."""

    actors: int
    actor_cpus: float
    actor_gpus: float
    prepare_cpus: float = 0.5
    writers: int = 1
    writer_cpus: float = 0.25

    @property
    def device(self) -> str | None:
        return "cuda" if self.actor_gpus else None


def resources_for(cluster: dict[str, float], *, actors: int | None = None, actor_cpus: float | None = None,
                  writers: int = 1) -> Resources:
    """One model actor per GPU when the cluster has GPUs; otherwise CPU actors that leave half the cores to decoding."""
    gpus = int(cluster.get("GPU", 0))
    cpus = max(1.0, float(cluster.get("CPU", 1)))
    if gpus:
        return Resources(actors=actors or gpus, actor_cpus=actor_cpus or 1.0, actor_gpus=1.0, writers=writers)
    per = actor_cpus or max(1.0, min(4.0, cpus // 4))
    return Resources(actors=actors or max(1, int(cpus // (2 * per))), actor_cpus=per, actor_gpus=0.0,
                     writers=writers)


def _connect(address: str | None) -> bool:
    """Join or start Ray; True when this call started it (so it is shut down at the end)."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeUnavailable("--ray needs Ray Data: pip install 'crossmodal[ray]'") from exc
    if ray.is_initialized():
        return False
    target = None if address in (None, "", "local") else address
    ray.init(address=target)
    return True


@dataclass(frozen=True)
class RayOptions:
    """How a distributed ingest uses Ray: where it runs, its actors, write batches, and progress bars.

    ``address``: None or ``"local"`` starts Ray on this machine (unless it is already running in this
    process), ``"auto"`` joins the cluster this machine belongs to, ``"ray://HEAD:10001"`` connects as a Ray
    client. ``actors`` / ``actor_cpus``: model actors and the cores each takes (default: one actor per GPU, or
    half the cores); ``writers``: writer actors; ``write_batch``: rows per write.
    """

    address: str | None = None
    write_batch: int = 256
    actors: int | None = None
    actor_cpus: float | None = None
    writers: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.write_batch < 1 or self.writers < 1:
            raise ConfigError(f"write_batch and writers must be at least 1, got {self.write_batch} and {self.writers}")
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"actors must be at least 1, got {self.actors}")


#: rows per model actor batch when the ingest options give no batch size
DEFAULT_BATCH = 32


def ray_ingest(
    store: str,
    collection: str,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    model: str,
    load: LoadOptions | None = None,
    options: IngestOptions | None = None,
    ray: RayOptions | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> IngestReport:
    """Index ``inputs`` (folders, files, CSV/Parquet manifests) into ``collection`` of a server ``store`` on Ray.

    ``load``: how to load ``model`` (:class:`~crossmodal.loader.LoadOptions`), on the driver and on every model
    actor (each actor on its own device and cores). ``options``: what to index and how (``batch_size`` is rows per model actor batch;
    decoding workers are Ray's tasks, so ``workers`` and ``processes`` do not apply; ``prune`` is refused).
    Returns the same report as single-machine ingest (added, updated, skipped, failed).
    """
    from ..collection import model_source
    from ..loader import load_model
    from ..store import open_store

    started = time.perf_counter()
    opts, ray = options or IngestOptions(), ray or RayOptions()
    if opts.prune:
        raise ConfigError("prune does not combine with a distributed ingest; run a single-machine ingest with "
                          "prune to drop items whose files are gone")
    check_server_store(store)
    load_options = load or LoadOptions()
    loaded = load_model(model, options=load_options)
    with open_store(store, **dict(store_options or {})) as st:
        col = st.collection(collection, model=loaded)
        adopt_root(col, inputs)
        plan = plan_inputs(col, inputs, opts)
    report = IngestReport(unchanged=plan.unchanged, files=plan.files, failed=list(plan.failed))
    if plan.rows:
        source = model_source(loaded)
        cfg, max_pixels, draft = loaded.spec.image, loaded.max_pixels, loaded.mode == "fast"
        del loaded  # the actors load their own
        _run(plan.rows, report, ray, store=store, collection=collection, store_options=dict(store_options or {}),
             model=source, load_options=load_options, cfg=cfg, max_pixels=max_pixels, draft=draft,
             image_weight=opts.image_weight, batch_size=opts.batch_size or DEFAULT_BATCH)
    report.seconds = time.perf_counter() - started
    return report


def _tables(rows: list[Any], blocks: int) -> list[Any]:
    """The work rows as Arrow tables of one fixed schema (a block of only texts still has typed columns)."""
    import pyarrow as pa

    schema = pa.schema([("id", pa.string()), ("modality", pa.string()), ("reference", pa.string()),
                        ("text", pa.string()), ("source", pa.string()), ("stamp", pa.string()),
                        ("metadata", pa.string()), ("content_hash", pa.string()), ("location", pa.string()),
                        ("caption_key", pa.string()), ("existed", pa.bool_())])
    size = -(-len(rows) // blocks)
    return [pa.Table.from_pylist([r.to_dict() for r in rows[i:i + size]], schema=schema)
            for i in range(0, len(rows), size)]


def _run(rows: list[Any], report: IngestReport, options: RayOptions, *, store: str, collection: str,
         store_options: dict[str, Any], model: str, load_options: LoadOptions, cfg: Any, max_pixels: int | None,
         draft: bool, image_weight: float | None, batch_size: int) -> None:
    started_ray = _connect(options.address)
    import ray
    import ray.data

    from .stages import Embedder, Writer, prepare

    context = ray.data.DataContext.get_current()
    bars = context.enable_progress_bars
    context.enable_progress_bars = options.progress
    try:
        res = resources_for(ray.cluster_resources(), actors=options.actors, actor_cpus=options.actor_cpus,
                            writers=options.writers)
        blocks = max(1, min(len(rows) // max(1, batch_size) + 1, 4096))
        ds: Any = ray.data.from_arrow(_tables(rows, blocks))
        ds = ds.map_batches(prepare, fn_kwargs={"cfg": cfg, "max_pixels": max_pixels, "draft": draft},
                            batch_size=max(1, batch_size // 2), batch_format="pyarrow", num_cpus=res.prepare_cpus)
        actor_load = load_options.with_(device=res.device, threads=max(1, int(res.actor_cpus)))
        ds = ds.map_batches(Embedder, fn_constructor_kwargs={"model": model, "image_weight": image_weight,
                                                             "load": actor_load},
                            batch_size=batch_size, batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=res.actors),
                            num_cpus=res.actor_cpus, num_gpus=res.actor_gpus or None)
        ds = ds.map_batches(Writer, fn_constructor_kwargs={"store": store, "collection": collection,
                                                           "store_options": store_options},
                            batch_size=options.write_batch, batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=res.writers),
                            num_cpus=res.writer_cpus)
        for row in ds.iter_rows():
            report.added += int(row["added"])
            report.updated += int(row["updated"])
            report.failed += [(str(where), str(why)) for where, why in json.loads(row["failures"])]
    finally:
        context.enable_progress_bars = bars
        if started_ray:
            ray.shutdown()
