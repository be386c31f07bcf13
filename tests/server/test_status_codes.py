"""Errors the engine raises for the cluster's moving state reach callers as retryable codes."""

from __future__ import annotations

import grpc

from nanhu.engine import errors
from nanhu.server.status import RETRYABLE, status_for


def test_a_catalog_that_kept_moving_under_a_query_is_unavailable_and_retryable():
    moved = errors.CatalogMoved("shard-001 moved to generation 9 during the query")
    assert status_for(moved) == grpc.StatusCode.UNAVAILABLE
    assert isinstance(moved, RETRYABLE)
    assert status_for(errors.CatalogCorrupt("x")) == grpc.StatusCode.DATA_LOSS
