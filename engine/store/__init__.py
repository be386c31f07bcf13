"""Storage behind narrow interfaces: audio postings segments (and, as they move here, the
catalog and vector segments)."""
