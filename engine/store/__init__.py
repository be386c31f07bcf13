"""Storage behind narrow interfaces: audio postings segments (:mod:`engine.store.postings`) and
video keyframe vectors (:mod:`engine.store.vectors`, exact; ``vectors_compact*``, IVF-PQ codes),
local-feature segments (:mod:`engine.store.local_features`) and the catalog's parts
(``catalog_*``: formats and schema, records, reads, policies, conflicts, recovery, segment
writing), which :class:`engine.catalog.Catalog` composes."""
