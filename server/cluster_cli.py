"""``nanhu cluster``: make, inspect, grow, rebalance, start and stop a sharded catalog.

    nanhu cluster init DIR --shards 4          # four empty shard catalogs and cluster.json
    nanhu ingest FOLDER --catalog DIR          # bulk registration, each work on its shard
    nanhu cluster start DIR --address auto     # the shard actors on the running Ray cluster
    nanhu serve --catalog DIR --cluster auto   # the gRPC front door over them
    nanhu cluster status DIR [--json]
    nanhu cluster add-shards DIR 2             # grow; then:
    nanhu cluster rebalance DIR                # safe to interrupt and run again
"""

from __future__ import annotations

import argparse
import json
import sys


def _open(args):
    from nanhu.server.cluster_core import open_view

    return open_view(args.dir, address=getattr(args, "address", None))


def cmd_init(args: argparse.Namespace) -> int:
    from nanhu.engine.cluster.layout import init_cluster

    layout = init_cluster(args.dir, args.shards)
    print(f"nanhu: cluster catalog {layout.root} with {layout.n_shards} shards "
          f"({', '.join(layout.shard_names)})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from nanhu.engine.cluster.rebalance import misplaced

    layout, view, _ = _open(args)
    stats = view.stats()
    wrong = sum(len(v) for v in misplaced(view, layout).values()) if not view.missing else None
    status = {"cluster": str(layout.root), "shards": layout.n_shards,
              "references": stats["references"], "hours": stats["hours"],
              "missing_shards": view.missing_names(), "misplaced": wrong,
              "rebalance_due": bool(layout.rebalance),
              "per_shard": [{**row, "name": layout.shard_names[row["shard"]],
                             "path": str(layout.shard_dir(row["shard"]))}
                            for row in stats["per_shard"]]}
    if args.json:
        print(json.dumps(status))
        return 0
    print(f"cluster {status['cluster']}: {status['shards']} shards, {status['references']} works, "
          f"{status['hours']:.2f} h")
    print(f"{'shard':<12} {'works':>8} {'hours':>10} {'generation':>10}  path")
    for row in status["per_shard"]:
        print(f"{row['name']:<12} {row['references']:>8} {row['hours']:>10.2f} "
              f"{row['generation']:>10}  {row['path']}")
    for name in status["missing_shards"]:
        print(f"{name:<12} {'-':>8} {'-':>10} {'-':>10}  NOT ANSWERING")
    if wrong:
        print(f"{wrong} works are not on their shard: run `nanhu cluster rebalance {args.dir}`")
    return 1 if status["missing_shards"] else 0


def cmd_add_shards(args: argparse.Namespace) -> int:
    from nanhu.engine.cluster.layout import add_shards

    layout = add_shards(args.dir, args.count)
    print(f"nanhu: {layout.root} now has {layout.n_shards} shards; run `nanhu cluster "
          f"rebalance {args.dir}` to move the works that now belong on the new ones")
    return 0


def cmd_rebalance(args: argparse.Namespace) -> int:
    from nanhu.engine.cluster.rebalance import rebalance

    layout, view, writes = _open(args)

    def progress(report, total: int) -> None:
        done = report.moved + report.already_there
        print(f"\rnanhu: rebalance {done}/{total} works moved", end="", file=sys.stderr,
              flush=True)

    report = rebalance(layout, view, writes, batch=args.batch, progress=progress)
    print(file=sys.stderr)
    print(json.dumps(report.to_dict()) if args.json else
          f"nanhu: {report.moved} works moved ({report.already_there} were already on their "
          f"new shard) in {report.seconds:.1f} s")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from nanhu.engine.cluster.layout import ClusterLayout
    from nanhu.server.cluster_ray import connect, start_actors

    layout = ClusterLayout.read(args.dir)
    connect(args.address)
    started = start_actors(layout, replicas=args.replicas, num_cpus=args.actor_cpus)
    print(f"nanhu: cluster {started['name']}: {started['actors']} actors up on {args.address}; "
          f"serve it with `nanhu serve --catalog {args.dir} --cluster {args.address}`")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from nanhu.engine.cluster.layout import ClusterLayout
    from nanhu.server.cluster_ray import connect, stop_actors

    layout = ClusterLayout.read(args.dir)
    connect(args.address)
    print(f"nanhu: {stop_actors(layout, replicas=args.replicas)} actors stopped")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="a sharded catalog: init, status, add-shards, "
                              "rebalance, start, stop", description=__doc__.split("\n\n")[0])
    actions = p.add_subparsers(dest="cluster_command", metavar="ACTION")

    s = actions.add_parser("init", help="make an empty cluster catalog")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--shards", type=int, required=True, help="how many shards")
    s.set_defaults(func=cmd_init)

    def with_address(sub, required: bool = False) -> None:
        sub.add_argument("dir", metavar="DIR", help="the cluster directory (cluster.json)")
        sub.add_argument("--address", default=None, required=required, metavar="ADDRESS",
                         help="Ray address whose shard actors to use (default: open the "
                              "shard directories here)")

    s = actions.add_parser("status", help="works and hours per shard, missing shards, "
                           "works off their shard")
    with_address(s)
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=cmd_status)

    s = actions.add_parser("add-shards", help="add empty shards (then rebalance)")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("count", type=int, metavar="N")
    s.set_defaults(func=cmd_add_shards)

    s = actions.add_parser("rebalance", help="move every work to the shard the placement "
                           "rule names (safe to interrupt and run again)")
    with_address(s)
    s.add_argument("--batch", type=int, default=50, help="works moved per commit")
    s.add_argument("--json", action="store_true", help="the report as one JSON object")
    s.set_defaults(func=cmd_rebalance)

    for name, func, text in (("start", cmd_start, "start the shard actors on a Ray cluster"),
                             ("stop", cmd_stop, "stop the shard actors")):
        s = actions.add_parser(name, help=text)
        with_address(s, required=True)
        s.add_argument("--replicas", type=int, default=1, help="read replicas per shard")
        if name == "start":
            s.add_argument("--actor-cpus", type=float, default=0.0,
                           help="CPUs Ray reserves for each actor (0: schedule anywhere)")
        s.set_defaults(func=func)
