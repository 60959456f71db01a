"""Keep CPython's cyclic garbage collector off a long-running process's hot path.

A gateway or simulation worker starts by building a large, long-lived heap
(identities, certificates, compiled policies, protobuf descriptors, caches)
and then serves requests that each allocate thousands of short-lived
objects, nearly all freed by reference counting as soon as the request ends.
With CPython's defaults the collector still runs a young-generation pass
every 700 allocations and, every so often, a full pass that re-traverses the
whole start-up heap. :func:`settle_heap` moves what start-up built into the
permanent generation (``gc.freeze``) and collects the young generation every
:data:`YOUNG_THRESHOLD` allocations. Reference cycles are still collected,
only less often. The gain under load is measured in docs/benchmarks.md.
"""

from __future__ import annotations

import gc
from typing import Final

#: Allocations between young-generation passes (CPython's default is 700).
YOUNG_THRESHOLD: Final = 10_000


def settle_heap() -> None:
    """Call once start-up is done: collect, freeze what is left, raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
