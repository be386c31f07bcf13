"""Nanhu's public API: ``nanhu/v1/*.proto`` and the Python code generated from it (``proto.gen``)."""
