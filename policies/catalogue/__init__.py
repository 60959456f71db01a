"""Record-type catalogue: versioned JSON Schemas (package data) and their API.

The ``<record_type>.v<version>.json`` files next to this module are the
inter-provincial exchange format described in ``docs/exchange-format.md``.
"""

from policies.catalogue.catalogue import (
    CATALOGUE_FORMAT,
    Catalogue,
    RecordSchema,
    split_by_tier,
    validate,
)

__all__ = ["CATALOGUE_FORMAT", "Catalogue", "RecordSchema", "split_by_tier", "validate"]
