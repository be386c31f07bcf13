"""A cluster catalog on disk: ``cluster.json`` and one ordinary catalog directory per shard.

::

    CLUSTER/
      cluster.json          {"format": 1, "placement": "jump-sha256-v1", "audio_params": {...},
                             "shards": [{"name": "shard-000", "path": "shard-000"}, ...],
                             "rebalance": null | {"from_shards": N, "started_at": T}}
      shard-000/            an embedded catalog (manifest.json, meta.sqlite, segments)
      shard-001/
      ...

A shard's ``path`` is relative to the cluster directory or absolute: on a real cluster each
shard lives on the local disk of the node that serves it and the path is that node's
(docs/cluster.md). ``cluster.json`` is replaced atomically (write, fsync, rename), so a crash
leaves the old layout or the new one. Every shard is written by one writer at a time (the
catalog's own lock), and each of its commits follows the embedded catalog's rules.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.placement import PLACEMENT, shard_of
from nanhu.engine.errors import AlreadyExists, CatalogCorrupt, InvalidArgument, NotFound
from nanhu.engine.store.catalog_schema import audio_params_from_dict

CLUSTER_FORMAT = 1
LAYOUT_FILE = "cluster.json"
MAX_SHARDS = 1024


def is_cluster(path: str | Path) -> bool:
    """True when ``path`` holds a cluster catalog (a ``cluster.json``)."""
    return (Path(path) / LAYOUT_FILE).is_file()


@dataclass
class ClusterLayout:
    """The shards of a cluster catalog and the rule that places references on them."""

    root: Path
    shard_names: list[str]
    shard_paths: list[str]
    audio_params: dict
    rebalance: dict | None = None
    placement: str = PLACEMENT
    extra: dict = field(default_factory=dict)

    @property
    def n_shards(self) -> int:
        return len(self.shard_names)

    def shard_dir(self, shard: int) -> Path:
        path = Path(self.shard_paths[shard])
        return path if path.is_absolute() else self.root / path

    def shard_for(self, ref_id: str) -> int:
        """The shard that holds (or will hold) ``ref_id`` under the current layout."""
        return shard_of(ref_id, self.n_shards)

    # --- disk ---------------------------------------------------------------------------------
    @classmethod
    def read(cls, root: str | Path) -> ClusterLayout:
        root = Path(root)
        path = root / LAYOUT_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"{root}: no cluster catalog here (make one with `nanhu cluster "
                           "init DIR --shards N`)") from None
        except (OSError, ValueError) as exc:
            raise CatalogCorrupt(f"{path}: unreadable cluster layout ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != CLUSTER_FORMAT:
            raise CatalogCorrupt(f"{path}: cluster layout format {data.get('format')!r} is not "
                                 f"{CLUSTER_FORMAT} (made by another Nanhu)"
                                 if isinstance(data, dict) else f"{path}: not a cluster layout")
        if data.get("placement") != PLACEMENT:
            raise CatalogCorrupt(f"{path}: placement {data.get('placement')!r} is not {PLACEMENT}")
        shards = data.get("shards") or []
        try:
            names = [str(s["name"]) for s in shards]
            paths = [str(s["path"]) for s in shards]
        except (KeyError, TypeError) as exc:
            raise CatalogCorrupt(f"{path}: shard entry without name or path ({exc})") from exc
        if not names:
            raise CatalogCorrupt(f"{path}: a cluster needs at least one shard")
        return cls(root=root, shard_names=names, shard_paths=paths,
                   audio_params=dict(data.get("audio_params") or {}),
                   rebalance=data.get("rebalance"),
                   extra={k: v for k, v in data.items() if k not in {
                       "format", "placement", "shards", "audio_params", "rebalance"}})

    def write(self) -> None:
        data = {"format": CLUSTER_FORMAT, "placement": self.placement,
                "audio_params": self.audio_params,
                "shards": [{"name": n, "path": p} for n, p in zip(self.shard_names,
                                                                   self.shard_paths)],
                "rebalance": self.rebalance, **self.extra}
        tmp = self.root / f".{LAYOUT_FILE}.tmp"
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / LAYOUT_FILE)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_count(n_shards: int) -> None:
    if not 1 <= n_shards <= MAX_SHARDS:
        raise InvalidArgument(f"a cluster has 1 to {MAX_SHARDS} shards (got {n_shards})")


def init_cluster(root: str | Path, n_shards: int, *,
                 audio_params: AudioParams | None = None) -> ClusterLayout:
    """Make an empty cluster catalog of ``n_shards`` shards under ``root``."""
    _check_count(n_shards)
    root = Path(root)
    if is_cluster(root):
        raise AlreadyExists(f"{root}: a cluster catalog is already here")
    if (root / "manifest.json").exists():
        raise InvalidArgument(f"{root}: an embedded catalog is here; give an empty directory")
    root.mkdir(parents=True, exist_ok=True)
    params = audio_params or AudioParams()
    names = [f"shard-{i:03d}" for i in range(n_shards)]
    for name in names:
        Catalog(root / name, writable=True, create=True, audio_params=params).close()
    layout = ClusterLayout(root=root, shard_names=names, shard_paths=list(names),
                           audio_params=params.to_dict())
    layout.write()
    return layout


def add_shards(root: str | Path, n_new: int) -> ClusterLayout:
    """Grow the cluster by ``n_new`` empty shards, made with the fingerprint parameters
    ``cluster.json`` records, and mark a rebalance as due: until
    ``nanhu cluster rebalance`` has run, references sit on their old shards and reads look
    for them on every shard (:class:`~nanhu.engine.cluster.view.ShardedCatalog`)."""
    layout = ClusterLayout.read(root)
    _check_count(layout.n_shards + n_new)
    if n_new < 1:
        raise InvalidArgument("add at least one shard")
    params = audio_params_from_dict(layout.audio_params, layout.root / LAYOUT_FILE)
    for i in range(layout.n_shards, layout.n_shards + n_new):
        name = f"shard-{i:03d}"
        Catalog(layout.root / name, writable=True, create=True, audio_params=params).close()
        layout.shard_names.append(name)
        layout.shard_paths.append(name)
    layout.rebalance = {"due": True, "since": time.time()}
    layout.write()
    return layout


def open_local_view(root: str | Path):
    """The cluster at ``root`` as one read-only catalog, its shards opened in this process
    (:class:`~nanhu.engine.cluster.view.ShardedCatalog` over a
    :class:`~nanhu.engine.cluster.view.LocalFanout`)."""
    from nanhu.engine.cluster.view import LocalFanout, ShardedCatalog

    layout = ClusterLayout.read(root)
    return ShardedCatalog(LocalFanout([layout.shard_dir(s) for s in range(layout.n_shards)]),
                          name=str(layout.root), shard_names=layout.shard_names)
