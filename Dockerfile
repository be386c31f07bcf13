# syntax=docker/dockerfile:1
# Nanhu's gRPC service. `docker compose up -d` (compose.yaml) runs it with its catalog on a
# volume; docs/deploy.md has the first key, TLS, metrics and upgrades.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: nanhu and its dependencies in a virtual environment ------------------------------
# Every dependency ships wheels (PyAV and FAISS bundle their native libraries), so no compiler
# is needed; the stage exists to keep the sources, pip and its caches out of the image.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/nanhu
WORKDIR /src
# the whole tree (minus .dockerignore), so the build follows the packaging (pyproject.toml, and
# setup.py, which installs the folders as nanhu.engine, nanhu.server, ...)
COPY . .
RUN /opt/nanhu/bin/pip install --no-cache-dir .

# --- runtime: the environment, the health probe, an unprivileged user ------------------------
FROM ${PYTHON_IMAGE} AS runtime
# tini as PID 1 forwards SIGTERM to `nanhu serve` (which drains calls in flight) and reaps the
# worker processes' children
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 nanhu \
    && useradd --system --uid 10001 --gid nanhu --home-dir /var/lib/nanhu --shell /usr/sbin/nologin nanhu \
    && install -d -o nanhu -g nanhu -m 0750 /var/lib/nanhu
COPY --from=build /opt/nanhu /opt/nanhu
COPY deploy/healthcheck.py /opt/nanhu/healthcheck.py
ENV PATH=/opt/nanhu/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NANHU_CATALOG=/var/lib/nanhu/catalog \
    NANHU_KEYS=/var/lib/nanhu/keys.json \
    NANHU_HEALTH_ADDRESS=127.0.0.1:50051
WORKDIR /var/lib/nanhu
# the catalog and the keys file: state that must outlive the container
VOLUME ["/var/lib/nanhu"]
USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/nanhu/healthcheck.py"]
ENTRYPOINT ["tini", "--", "nanhu"]
# Listening beyond loopback needs a keys file: make one first (docs/deploy.md).
CMD ["serve", "--listen", "0.0.0.0:50051", "--auth", "/var/lib/nanhu/keys.json", "--log-format", "json"]
