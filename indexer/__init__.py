"""Bulk catalog registration: manifests, parallel fingerprinting, resume, reports, and Ray.

``nanhu ingest`` (:mod:`indexer.cli`) runs :func:`indexer.ingest.run_ingest`. Importing this
package is cheap: the engine is imported by the modules that need it.
"""
