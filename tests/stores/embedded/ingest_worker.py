"""A child process for the crash tests: ingests a folder into an embedded store, printing progress.

Run as ``python ingest_worker.py STORE FOLDER``. The parent kills it with SIGKILL at random points.
"""

from __future__ import annotations

import json
import sys
import time

from crossmodal.ingest import ingest
from crossmodal.store import open_store
from crossmodal.testing.fake_tokens import fake_token_model

#: small limits so that a few hundred items already exercise the HNSW files (build, catch up, save)
STORE_OPTIONS = {"exact_limit": 40, "sync_every": 12}


def main() -> None:
    store_path, folder = sys.argv[1], sys.argv[2]
    store = open_store(store_path, **STORE_OPTIONS)
    col = store.collection("crash", model=fake_token_model(dim=16, batch_size=4))  # texts get sparse + multi-vectors

    def progress(done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)
        time.sleep(0.01)  # give the parent time to pick its moment; the kill lands here or in the next batch

    report = ingest(col, [folder], workers=0, batch_size=4, progress=progress)
    store.close()
    print("done " + json.dumps(report.to_dict()), flush=True)


if __name__ == "__main__":
    main()
