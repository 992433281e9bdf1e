"""The derived state a search reads first: read again exactly when the database may have changed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from crossmodal import Record
from crossmodal.store import open_store
from crossmodal.stores.embedded.derived import SearchStates, search_state

from .test_store import SpaceOnly


def _state(col, states: SearchStates):
    with col.backend.db.read() as conn:
        return states(conn), search_state(conn, col.backend.cid)


def test_the_state_is_reused_until_any_connection_writes(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    col = st.collection("c", model=SpaceOnly(4))
    col.upsert([Record("a", "image", "a.jpg", np.ones(4, dtype=np.float32))])
    states = SearchStates(col.backend.cid)
    first, fresh = _state(col, states)
    assert first == fresh and first[0] == {"image": 1}
    assert _state(col, states)[0] is first  # nothing changed: the same state, not read again
    # a write on this thread's own connection (which PRAGMA data_version does not see)
    col.upsert([Record("b", "text", "b", np.ones(4, dtype=np.float32))])
    own, fresh = _state(col, states)
    assert own is not first and own == fresh and own[0] == {"image": 1, "text": 1}
    # a write through another connection: another store opened on the same directory (as another process would)
    other = open_store(tmp_path / "s")
    other.collection("c").delete(["a"])
    other.close()
    theirs, fresh = _state(col, states)
    assert theirs is not own and theirs == fresh and theirs[0].get("image", 0) == 0 and theirs[1] != own[1]
    # a write by another thread of this process (its own connection)
    t = threading.Thread(target=lambda: col.upsert([Record("c", "pair", "c.jpg", np.ones(4, dtype=np.float32))]))
    t.start()
    t.join()
    again, fresh = _state(col, states)
    assert again is not theirs and again == fresh and again[0]["pair"] == 1
    st.close()


def test_each_thread_reads_its_own_connections_state(tmp_path: Path) -> None:
    writer = open_store(tmp_path / "s")
    writer.collection("c", model=SpaceOnly(4)).upsert([Record("a", "image", "a.jpg", np.ones(4, dtype=np.float32))])
    writer.close()
    st = open_store(tmp_path / "s")  # its connections never write: equal versions and change counts
    col = st.collection("c")
    states = SearchStates(col.backend.cid)
    mine, _ = _state(col, states)
    seen: list = []
    t = threading.Thread(target=lambda: seen.append(_state(col, states)))
    t.start()
    t.join()
    theirs, fresh = seen[0]
    assert theirs is not mine and theirs == fresh  # another connection: never handed this one's state
    st.close()
