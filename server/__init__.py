"""Nanhu server package."""
