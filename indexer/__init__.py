"""Nanhu indexer package."""
