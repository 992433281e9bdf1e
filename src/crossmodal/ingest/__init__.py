"""Ingest: folders of images and text files -> a collection, incrementally and crash-safely.

:func:`ingest` walks the paths (:mod:`.discover`: regular files only, up to
a size limit; what cannot be read is reported), plans what each file should
hold (:mod:`.plan`) and embeds only what changed (:mod:`.run`):

* a file whose size and mtime match what was recorded is skipped unread;
* a file whose stamp changed is hashed; same content: only its stamp is
  updated ("unchanged"); new content: it is embedded again ("updated");
* a new file whose content matches an item whose file has disappeared is a
  move: the stored vector is reused, and the new item is stored and the old
  one deleted in one atomic write ("moved");
* a run only adds and updates what it is given: captions and metadata stored
  by earlier runs stay unless this run gives new ones for the file (see
  :mod:`.plan`); what a file no longer produces is removed ("removed");
* with ``prune``, items whose files are gone are deleted ("removed").

Images are decoded by workers while the model runs (``Model.iter_images``:
threads by default, since Pillow and ONNX Runtime release the GIL and threads
measured as fast as processes without the start-up cost; ``processes=True``
for worker processes), and every embedded batch is one committed transaction,
so a killed run loses at most the batch in flight and the next run carries
on. Bad files are reported at the end; they never stop the run.

Each image becomes an ``image`` item whose reference is its path relative to
the collection's root. A text file (.txt, .md) becomes one ``text`` item, or
one per non-empty line with ``lines=True``. With a captions file, each
captioned image also gets a ``text`` item (the caption) and a ``pair`` item
(image + caption).
"""

from __future__ import annotations

from . import plan
from .discover import DEFAULT_MAX_FILE_SIZE, SourceFile, discover, image_extensions
from .options import IngestOptions
from .report import IngestReport
from .run import adopt_root, ingest

__all__ = ["DEFAULT_MAX_FILE_SIZE", "IngestOptions", "IngestReport", "SourceFile", "adopt_root", "discover", "image_extensions", "ingest",
           "plan"]
