"""Nanhu's gRPC service: a thin translation layer over ``engine``, plus auth and limits.

    app        create_server(): servicers, health, reflection, TLS, graceful stop
    servicers  nanhu.v1 messages in, engine calls out (via service / jobs), messages back
    service    catalog snapshots for reads, the single writer, tenancy checks
    jobs       what worker processes run: fingerprinting, screening (fingerprint + match)
    work       the worker pool, the concurrency limiter, the upload spool
    auth       API keys (hashed keys file), principals and roles
    status     the one table from engine exceptions to gRPC status codes; per-call logs,
               request ids, messages without server paths
    logs       timestamped text or JSON log lines carrying the call's request id
    metrics    Prometheus metrics and the /metrics endpoint
    convert    engine objects <-> nanhu.v1 messages
    client     NanhuClient, a small Python client
    cli        `nanhu serve`, `nanhu keys`

See docs/server.md.
"""
