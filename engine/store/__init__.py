"""Storage behind narrow interfaces: audio postings segments (:mod:`engine.store.postings`) and
the catalog's parts (``catalog_*``: formats and schema, records, reads, policies, conflicts,
recovery, segment writing), which :class:`engine.catalog.Catalog` composes; vector segments
are still in :mod:`engine.vectors`."""
