"""One search's per-modality graph searches run side by side on the CPU's cores.

A search over every modality searches each modality's view in turn: at a
million items, three HNSW searches that together take most of the search's
time. usearch releases the GIL while it searches, so the views can be
searched at once, one per core. :class:`Fanout` does that for one store: the
calling thread and up to ``threads - 1`` workers take the jobs, largest
first, each from one shared list. A job never waits on another job or on a
lock, and a worker busy with another thread's search is not waited for, so
it only means the calling thread takes more of the jobs itself.

``threads=1`` runs every job in the calling thread, in order, as a store with
many concurrent searches may prefer: the work per search is the same either
way, only how much of it runs at once differs (``bench/search_threads.py``
measures both). A worker is started on first use, and again in a forked
child, where the parent's threads do not exist.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["Fanout", "usable_cpus"]

T = TypeVar("T")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform tells, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Fanout:
    """Runs a search's jobs on up to ``threads`` threads, the calling one included."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[tuple[int, Callable[[], T]]]) -> list[T]:
        """Each job's result, in the jobs' order; a job comes as (its expected cost, itself): largest taken first.

        Every job has finished, or failed, when this returns or raises (callers hold locks the jobs rely on);
        the first failure in the jobs' order is raised.
        """
        if self.threads == 1 or len(jobs) < 2:
            return [job() for _, job in jobs]
        order = iter(sorted(range(len(jobs)), key=lambda i: -jobs[i][0]))
        take = threading.Lock()
        results: list[T | None] = [None] * len(jobs)
        errors: list[tuple[int, BaseException]] = []

        def drain() -> None:
            while True:
                with take:
                    i = next(order, None)
                if i is None:
                    return
                try:
                    results[i] = jobs[i][1]()
                except BaseException as exc:  # (raised in the caller, after every job has stopped)
                    errors.append((i, exc))

        pool = self._workers()
        helpers: list[Future[None]] = [pool.submit(drain) for _ in range(min(self.threads, len(jobs)) - 1)]
        drain()
        # one still queued behind another search's jobs has nothing left to take: cancelled, and not waited for
        # (``wait`` counts a cancelled future as done only once a worker has dequeued it)
        busy = [helper for helper in helpers if not helper.cancel()]
        try:
            wait(busy)
        except BaseException:  # (an interrupt while waiting: a helper still searches a view the caller's locks guard)
            wait(busy)
            raise
        if errors:
            raise min(errors, key=lambda e: e[0])[1]
        return results  # type: ignore[return-value]  # (every slot was filled: no job failed)

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():  # (a forked child has none of the parent's threads)
                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="crossmodal-search")
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        """Stop the workers (after the jobs they hold); a later :meth:`run` starts them again."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=True)
