"""PostgreSQL + pgvector (``postgresql://...``, the ``postgres`` extra). See :mod:`.store`.

=================  ===========================================================
``store``          :class:`PgvectorStore`: the schema, its collections, check, close
``collection``     :class:`PgvectorCollection`: one table's writes, reads and search
``options``        :class:`PgvectorOptions`: URI query and keyword options
``schema``         versioned migrations, a collection's table and indexes
``sql``            metadata as JSONB, filters as JSON path predicates
``copy``           rows in PostgreSQL's binary COPY format
``boundary``       psycopg's errors as crossmodal's
=================  ===========================================================
"""

from ..base import require_extra

# the client libraries come with the extra; without them, importing this package says which extra to install
require_extra(("psycopg", "psycopg_pool", "pgvector.psycopg"), store="PostgreSQL", extra="postgres")

from .collection import PgvectorCollection  # noqa: E402
from .options import PgvectorOptions  # noqa: E402
from .store import PgvectorStore  # noqa: E402

__all__ = ["PgvectorCollection", "PgvectorOptions", "PgvectorStore"]
