"""A search's per-modality views searched at once: the same hits as one after another, every job finished."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from crossmodal.errors import ConfigError
from crossmodal.store import open_store
from crossmodal.stores.embedded.fanout import Fanout, usable_cpus
from crossmodal.stores.embedded.options import EmbeddedOptions

from .test_store import SpaceOnly, clustered, records

#: how long a test waits for something that happens at once when the code is right (a hang fails it)
PATIENCE_S = 30


def test_results_come_in_the_jobs_order_whatever_order_they_ran_in() -> None:
    fanout = Fanout(3)
    try:
        jobs = [(size, (lambda i=i: i * 10)) for i, size in enumerate([5, 50, 1, 500, 7])]
        assert fanout.run(jobs) == [0, 10, 20, 30, 40]
        assert Fanout(1).run(jobs) == [0, 10, 20, 30, 40]
    finally:
        fanout.close()


def test_jobs_run_at_once_on_more_threads_and_in_the_caller_on_one() -> None:
    meet = threading.Barrier(2, timeout=PATIENCE_S)  # passes only when both jobs are running at the same time
    fanout = Fanout(2)
    try:
        idents = fanout.run([(1, lambda: (meet.wait(), threading.get_ident())[1])] * 2)
    finally:
        fanout.close()
    assert len(set(idents)) == 2 and threading.get_ident() in idents
    assert Fanout(1).run([(1, threading.get_ident)] * 3) == [threading.get_ident()] * 3


def test_a_failure_is_raised_after_every_other_job_finished() -> None:
    started, finished = threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        finished.wait(0.2)  # (still running when the other job fails)
        finished.set()
        return 1

    def fail() -> int:
        assert started.wait(PATIENCE_S)
        raise ValueError("second")

    def fail_too() -> int:
        raise KeyError("third")

    fanout = Fanout(2)
    try:
        with pytest.raises(ValueError, match="second"):  # (the first failure in the jobs' order)
            fanout.run([(10, slow), (5, fail), (1, fail_too)])
        assert finished.is_set()
        assert fanout.run([(1, lambda: 2), (1, lambda: 3)]) == [2, 3]  # (and the store searches on)
    finally:
        fanout.close()


def test_a_worker_busy_with_another_search_is_not_waited_for() -> None:
    fanout = Fanout(2)
    release = threading.Event()
    fanout._workers().submit(release.wait)  # another search's job holds the only worker
    done: list[list[int]] = []
    caller = threading.Thread(target=lambda: done.append(fanout.run([(1, lambda: 1), (2, lambda: 2)])))
    caller.start()
    caller.join(PATIENCE_S)
    alive = caller.is_alive()
    release.set()
    caller.join()
    fanout.close()
    assert not alive and done == [[1, 2]]


def test_an_interrupt_while_waiting_still_lets_every_job_finish_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's locks guard the views its helpers search: it never gives them up under a running job."""
    from crossmodal.stores.embedded import fanout as module

    real_wait, finish, done = module.wait, threading.Event(), threading.Event()
    both_running, caller = threading.Barrier(2, timeout=PATIENCE_S), threading.current_thread()
    waits: list[int] = []

    def wait_interrupted_once(futures):  # type: ignore[no-untyped-def]
        waits.append(len(futures))
        if len(waits) == 1:
            raise KeyboardInterrupt  # (the worker's job is still running: it waits for ``finish``)
        finish.set()  # only a second wait lets it finish, so without one it is not done when the interrupt leaves
        return real_wait(futures)

    def job() -> int:
        both_running.wait()  # one job in the caller, the other in the worker: the worker's cannot be cancelled
        if threading.current_thread() is not caller:
            finish.wait(PATIENCE_S)
            done.set()
        return 1

    monkeypatch.setattr(module, "wait", wait_interrupted_once)
    fanout = Fanout(2)
    try:
        with pytest.raises(KeyboardInterrupt):
            fanout.run([(1, job), (1, job)])
        assert waits == [1, 1] and done.is_set()
    finally:
        finish.set()
        fanout.close()


def _search_in_child(fanout: Fanout, out: multiprocessing.Queue) -> None:
    out.put(fanout.run([(1, lambda: 1), (2, lambda: 2)]))


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the default start method on Linux only")
def test_a_forked_child_starts_its_own_workers() -> None:
    fanout = Fanout(2)
    try:
        assert fanout.run([(1, lambda: 0), (1, lambda: 0)]) == [0, 0]  # the parent's worker exists now
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_search_in_child, args=(fanout, out))
        child.start()
        child.join(PATIENCE_S)
        if child.is_alive():
            child.kill()
        assert child.exitcode == 0 and out.get(timeout=PATIENCE_S) == [1, 2]
    finally:
        fanout.close()


def test_the_option_defaults_to_the_usable_cpus_up_to_one_per_modality() -> None:
    assert EmbeddedOptions().threads == min(3, usable_cpus())
    assert EmbeddedOptions(search_threads=1).threads == 1
    assert EmbeddedOptions(search_threads="2").threads == 2
    for bad in (0, -1, "many"):
        with pytest.raises(ConfigError, match="search_threads"):
            EmbeddedOptions(search_threads=bad)


@pytest.mark.parametrize("where", [None, {"n": {"$gte": 300}}, {"n": {"$lt": 700}}], ids=["all", "70%", "70%-low"])
def test_views_searched_at_once_return_the_same_hits_and_scores_as_one_after_another(tmp_path: Path, where) -> None:
    vectors = clustered(1_200, 32, seed=3)
    path = tmp_path / "s"
    st = open_store(path, exact_limit=50)  # every modality (400 items each) on its HNSW view
    st.collection("c", model=SpaceOnly(32)).upsert(records(vectors))
    st.close()
    at_once, in_turn = open_store(path, search_threads=3), open_store(path, search_threads=1)
    try:
        assert at_once.backend.fanout.threads == 3 and in_turn.backend.fanout.threads == 1
        queries = clustered(40, 32, seed=4)
        for q in queries:
            a = [(h.id, h.score) for h in at_once.collection("c").search(vector=q, top_k=10, where=where)]
            b = [(h.id, h.score) for h in in_turn.collection("c").search(vector=q, top_k=10, where=where)]
            assert a == b and len(a) == 10
        # and they are the exact best: every score checked against numpy
        q = queries[0]
        keep = np.arange(len(vectors)) if where is None else np.array(
            [i for i in range(len(vectors)) if (i >= 300 if "$gte" in where["n"] else i < 700)])
        best = keep[np.argsort(-(vectors[keep] @ q), kind="stable")[:10]]
        hits = at_once.collection("c").search(vector=q, top_k=10, where=where)
        assert [h.id for h in hits] == [f"v{i}" for i in best]
    finally:
        at_once.close()
        in_turn.close()


def test_many_searching_threads_and_a_writer_share_one_store(tmp_path: Path) -> None:
    vectors = clustered(1_500, 16, seed=5)
    st = open_store(tmp_path / "s", exact_limit=50, search_threads=3)
    col = st.collection("c", model=SpaceOnly(16))
    col.upsert(records(vectors[:900]))
    errors: list[BaseException] = []
    queries = clustered(30, 16, seed=6)

    def search() -> None:
        try:
            for q in queries:
                for where in (None, {"n": {"$lt": 450}}):
                    hits = col.search(vector=q, top_k=5, where=where)
                    assert len(hits) == 5 and all(where is None or int(h.id[1:]) < 450 for h in hits)
        except BaseException as exc:  # (reported below, in the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    for start in range(900, 1_500, 100):  # the views catch up while the searches run
        col.upsert(records(vectors[start:start + 100], start))
    for t in threads:
        t.join(PATIENCE_S * 4)
    assert not any(t.is_alive() for t in threads) and not errors
    q = queries[0]
    best = np.argsort(-(vectors @ q), kind="stable")[:5]
    assert [h.id for h in col.search(vector=q, top_k=5)] == [f"v{i}" for i in best]
    st.close()
