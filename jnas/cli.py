"""The ``jnas`` command: search, compare, list, query, describe, train, data."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from jnas.errors import JnasError


def _parse_sets(items: list[str]) -> dict:
    opts = {}
    for item in items or []:
        if "=" not in item:
            raise JnasError(f"--set: got {item!r}, expected key=value")
        k, v = item.split("=", 1)
        opts[k.strip()] = v.strip()
    return opts


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="seed", file=sys.stderr, leave=False)

    def update(done: int):
        bar.update(done - bar.n)

    return update, bar.close


def cmd_search(args) -> int:
    from jnas.runs.compare import plot, table
    from jnas.runs.search import search

    if args.budget < 1:
        raise JnasError(f"--budget: got {args.budget}, expected a positive integer")
    if args.seeds < 1:
        raise JnasError(f"--seeds: got {args.seeds}, expected a positive integer")
    if args.float64:
        import jax

        jax.config.update("jax_enable_x64", True)
    strategies = [s for s in args.strategy.split(",") if s]
    options = _parse_sets(args.set)
    results = []
    for name in strategies:
        chunk = math.ceil(args.seeds / 10) if args.progress and args.seeds >= 10 else None
        update, close = _progress_bar(args.seeds, f"{name} on {args.benchmark}", chunk is not None)
        try:
            res = search(
                args.benchmark, name, args.budget, seeds=args.seeds, metric=args.metric, fidelity=args.fidelity,
                options=options if len(strategies) == 1 else _options_for(name, options), seed0=args.seed0,
                prng=args.prng, float64=args.float64, chunk=chunk, progress=update,
            )
        finally:
            close()
        out = Path(args.out) if len(strategies) == 1 else Path(args.out) / name
        res.save(out)
        results.append(res)
        print(f"wrote {out}/summary.json", file=sys.stderr)
    print(table(results))
    if args.plot:
        print(f"plot: {plot(results, args.plot)}", file=sys.stderr)
    return 0


def _options_for(name: str, options: dict) -> dict:
    """With several strategies, pass each only the options it declares."""
    from jnas.strategies import get_strategy

    known = {o.name for o in get_strategy(name).options}
    return {k: v for k, v in options.items() if k in known}


def cmd_compare(args) -> int:
    from jnas.runs.compare import load_all, plot, table

    results = load_all(args.dirs)
    print(table(results))
    if args.plot:
        print(f"plot: {plot(results, args.plot, labels=[Path(d).name for d in args.dirs])}", file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from jnas import benchmarks, spaces, strategies

    print("spaces:     " + ", ".join(spaces.names()))
    print("strategies: " + ", ".join(strategies.names()))
    for name in strategies.names():
        for o in strategies.get_strategy(name).options:
            print(f"  {name} --set {o.name}={o.default}  ({o.help}; {o.expected})")
    print("benchmarks: " + ", ".join(benchmarks.names()))
    if args.metrics:
        for name in benchmarks.names():
            b = benchmarks.get_benchmark(name)
            print(f"{name} (search default {b.search_metric[0]}@{b.search_metric[1]})")
            for m in b.metrics.values():
                fid = "" if m.fidelity is None else f"@{m.fidelity}"
                print(f"  {m.name}{fid}: {m.description} [{m.unit}] coverage {m.coverage}/{b.n_rows}, "
                      f"optimum {m.optimum:.4f}")
    else:
        print("metrics:    jnas list --metrics (loads every benchmark table)")
    return 0


def cmd_query(args) -> int:
    import json

    import jax

    from jnas.benchmarks import get_benchmark

    bench = get_benchmark(args.benchmark)
    arch = bench.space.from_string(args.arch)
    batch = jax.tree.map(lambda x: x[None], arch)
    row = int(bench.rows(batch)[0])
    if row < 0:
        raise JnasError(f"--arch: {args.arch!r} is not in {bench.name}")
    out = {"benchmark": bench.name, "arch": bench.space.to_string(arch), "index": int(bench.official([row])[0])}
    for metric, fid in bench.metrics:
        name = metric if fid is None else f"{metric}@{fid}"
        v = float(bench.column(metric, fid)[row])
        out[name] = v if v == v else None  # NaN (not covered) -> null
    print(json.dumps(out, indent=2))
    return 0


def _literal(text: str):
    """``"3"`` -> 3, ``"0.1"`` -> 0.1, ``"true"`` -> True, anything else stays a string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _typed_sets(items: list[str]) -> dict:
    return {k: _literal(v) for k, v in _parse_sets(items).items()}


def cmd_describe(args) -> int:
    import json

    from jnas.runs.training import describe_architecture

    info = describe_architecture(args.space, args.arch, dataset=args.dataset, seed=args.seed,
                                 options=_typed_sets(args.set))
    print(json.dumps(info))
    return 0


def cmd_train(args) -> int:
    from tqdm import tqdm

    from jnas.runs.training import parse_arch, train_architecture, training_config

    if args.epochs < 1:
        raise JnasError(f"--epochs: got {args.epochs}, expected a positive integer")
    parse_arch(args.space, args.arch)  # bad input fails before the progress bar starts
    training_config(args.epochs, args.seed, _typed_sets(args.config))

    bar = tqdm(total=args.epochs, desc=f"train {args.space}", unit="epoch", file=sys.stderr,
               disable=not args.progress)

    def on_epoch(rec: dict) -> None:
        test = "" if rec.get("test_acc") is None else f"  test acc {rec['test_acc']:6.2f}%"
        bar.update(1)
        bar.write(f"epoch {rec['epoch']:3d}  loss {rec['train_loss']:.4f}  train acc {rec['train_acc']:6.2f}%"
                  f"{test}  lr {rec['lr']:.4g}  ({rec['seconds']:.1f} s)", file=sys.stdout)

    try:
        record = train_architecture(args.space, args.arch, data=args.data, epochs=args.epochs, out=args.out,
                                    seed=args.seed, options=_typed_sets(args.set),
                                    config_overrides=_typed_sets(args.config), on_epoch=on_epoch)
    finally:
        bar.close()
    print(f"final train acc {record['train_acc']:.2f}%  test acc {record['test_acc']:.2f}%  "
          f"params {record['params']:,}  ({record['wall_seconds']:.0f} s)  -> {Path(args.out) / 'result.json'}")
    return 0


def cmd_prepare(args) -> int:
    from jnas.train.data import prepare

    print(prepare(args.what, data_dir=args.dest))
    return 0


def cmd_data(args) -> int:
    if args.what != "nb201":
        raise JnasError(f"data {args.action}: got {args.what!r}, expected nb201 (NAS-Bench-Graph ships in its package)")
    from jnas.benchmarks.fetch import fetch_nb201, hash_sources

    if args.action == "hashes":
        for src, digest in hash_sources():
            print(f"{digest}  {src.name}  {src.url()}")
        return 0
    for p in fetch_nb201(dest=Path(args.dest) if args.dest else None):
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jnas", description="Neural architecture search on JAX.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run a strategy on a tabular benchmark over many seeds")
    s.add_argument("--benchmark", required=True, help="e.g. nb201/cifar10, nbgraph/cora (see `jnas list`)")
    s.add_argument("--strategy", required=True, help="rs, re, ls; several as a comma list (each to OUT/<name>)")
    s.add_argument("--budget", type=int, required=True, help="queries per seed")
    s.add_argument("--seeds", type=int, default=1, help="independent runs (vmapped)")
    s.add_argument("--out", required=True, help="result folder")
    s.add_argument("--metric", default=None, help="search metric (default: the benchmark's validation metric)")
    s.add_argument("--fidelity", type=int, default=None, help="fidelity of the search metric (epochs)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="strategy option (repeatable)")
    s.add_argument("--seed0", type=int, default=0, help="first seed (seed i uses key seed0 + i)")
    s.add_argument("--prng", default="hash", help="hash (fast, default) or threefry")
    s.add_argument("--float64", action="store_true", help="gather full-precision values (enables jax x64)")
    s.add_argument("--plot", default=None, help="write best-so-far curves to this PNG")
    s.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    s.set_defaults(func=cmd_search)

    c = sub.add_parser("compare", help="table and curves of result folders")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    c.add_argument("--plot", default=None, help="write mean best-so-far curves (IQR bands, log x) to this PNG")
    c.set_defaults(func=cmd_compare)

    q = sub.add_parser("query", help="every metric of one architecture")
    q.add_argument("--benchmark", required=True)
    q.add_argument("--arch", required=True, help="architecture string in the space's notation")
    q.set_defaults(func=cmd_query)

    de = sub.add_parser("describe", help="params, FLOPs and activation bytes of one network (JSON; no training)")
    de.add_argument("--space", required=True, help="nb201, nb101, darts, convnet, convnet-small, nago, rnag")
    de.add_argument("--arch", required=True, help="architecture string in the space's notation")
    de.add_argument("--dataset", default="cifar10", help="cifar10 (default), cifar100 or imagenet16-120")
    de.add_argument("--seed", type=int, default=0, help="generator seed of a nago/rnag network")
    de.add_argument("--set", action="append", metavar="KEY=VALUE", help="network option, e.g. channels=36")
    de.set_defaults(func=cmd_describe)

    t = sub.add_parser("train", help="train one architecture on real data; writes OUT/result.json")
    t.add_argument("--space", required=True, help="nb201, nb101, darts, convnet, convnet-small, nago, rnag")
    t.add_argument("--arch", required=True, help="architecture string in the space's notation")
    t.add_argument("--data", default="cifar10_subset",
                   help="cifar10_subset ($JNAS_DATA_DIR/cifar10_subset.npz), a prepared TFDS name, or an .npz path")
    t.add_argument("--epochs", type=int, required=True)
    t.add_argument("--out", required=True, help="result folder (holds checkpoints: a rerun resumes)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="network option, e.g. channels=8")
    t.add_argument("--config", action="append", metavar="KEY=VALUE",
                   help="training option (TrainConfig field), e.g. batch_size=128 or lr=0.05")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(func=cmd_train)

    ls = sub.add_parser("list", help="spaces, benchmarks, strategies, metrics")
    ls.add_argument("--metrics", action="store_true", help="also list every benchmark's metrics")
    ls.set_defaults(func=cmd_list)

    d = sub.add_parser("data", help="benchmark data")
    dsub = d.add_subparsers(dest="action", required=True)
    f = dsub.add_parser("fetch", help="download upstream files, verify sha256, rebuild tables")
    f.add_argument("what", help="nb201")
    f.add_argument("--dest", default=None, help="folder (default: $JNAS_DATA_DIR or the user cache)")
    f.set_defaults(func=cmd_data)
    h = dsub.add_parser("hashes", help="maintainers: download upstream files and print their sha256 (reads nothing)")
    h.add_argument("what", help="nb201")
    h.set_defaults(func=cmd_data)
    pr = dsub.add_parser("prepare", help="one-time: turn an image dataset into TFDS array_record files")
    pr.add_argument("what", help="cifar10_subset, an .npz path, or a TFDS dataset (cifar10: needs jnas[prepare])")
    pr.add_argument("--dest", default=None, help="TFDS data dir (default: jnas's cache for arrays, TFDS's otherwise)")
    pr.set_defaults(func=cmd_prepare)
    return p


def _persistent_compile_cache() -> None:
    """Keep compiled programs (initialisers, train steps) across ``jnas`` calls in the user cache.

    Off when ``JNAS_NO_COMPILE_CACHE`` is set (the tests do); a user's own
    ``JAX_COMPILATION_CACHE_DIR`` is left to jax.
    """
    import os

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.environ.get("JNAS_NO_COMPILE_CACHE"):
        return
    import jax

    from jnas.paths import user_cache

    jax.config.update("jax_compilation_cache_dir", str(user_cache() / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("describe", "train"):
        _persistent_compile_cache()
    try:
        return args.func(args)
    except JnasError as e:
        print(f"jnas: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
