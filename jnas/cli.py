"""The ``jnas`` command: search, compare, list, query, describe, train, supernet, data."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from jnas.errors import Interrupted, JnasError, is_number


def _parse_sets(items: list[str], flag: str = "--set") -> dict:
    opts = {}
    for item in items or []:
        if "=" not in item:
            raise JnasError(f"{flag}: got {item!r}, expected key=value")
        k, v = item.split("=", 1)
        opts[k.strip()] = v.strip()
    return opts


def _progress_bar(total: int, desc: str, enabled: bool):
    """``(update(n_done, note), close)`` of a seeds bar; ``note="compiling"`` shows while XLA compiles."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="seed", file=sys.stderr, leave=False)

    def update(done: int, note: str | None = None):
        bar.set_postfix_str("compiling…" if note == "compiling" else "", refresh=False)
        bar.update(done - bar.n)
        bar.refresh()

    return update, bar.close


def _strategy_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",")]
    if not all(names):
        raise JnasError(f"--strategy: got {text!r}, expected one or more strategy names separated by commas")
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise JnasError(f"--strategy: {dup!r} is listed twice")
    return names


def _split_options(names: list[str], options: dict) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Each strategy's share of ``--set`` options, and for each key the strategies it applies to.

    A key that no listed strategy declares is an error naming it.
    """
    from jnas.strategies import get_strategy

    known = {n: {name for o in get_strategy(n).options for name in (o.name, *getattr(o, "aliases", ()))}
             for n in names}
    applies = {k: [n for n in names if k in known[n]] for k in options}
    if len(names) > 1:
        for k, where in applies.items():
            if not where:
                valid = sorted(set().union(*known.values()))
                raise JnasError(f"--set {k}: unknown option for strategies {', '.join(names)}; "
                                f"valid options: {', '.join(valid) or 'none'}")
    shares = {n: ({k: v for k, v in options.items() if k in known[n]} if len(names) > 1 else options)
              for n in names}
    return shares, applies


def cmd_search(args) -> int:
    from jnas.runs.compare import table
    from jnas.runs.folder import prepare_folder
    from jnas.runs.search import default_chunk, plan_search, run_plan

    if args.budget < 1:
        raise JnasError(f"--budget: got {args.budget}, expected a positive integer")
    if args.seeds < 1:
        raise JnasError(f"--seeds: got {args.seeds}, expected a positive integer")
    strategies = _strategy_list(args.strategy)
    sets = _parse_sets(args.set)
    if "resample" in sets:  # NAGO's report of a recommendation is a flag of the search, not a strategy option
        raise JnasError("--set resample: not a strategy option; resampling the recommended generator "
                        f"configuration is --resample {sets['resample']} (with --evaluator train --space nago|rnag)")
    shares, applies = _split_options(strategies, sets)
    target = _search_target(args)
    if args.float64:  # process-wide: only once every flag has been accepted
        import jax

        jax.config.update("jax_enable_x64", True)
    # everything is checked before anything runs: a bad option of the last strategy costs nothing
    plans = [
        plan_search(target, name, args.budget, seeds=args.seeds, metric=args.metric, fidelity=args.fidelity,
                    options=shares[name], seed0=args.seed0, prng=args.prng, float64=args.float64,
                    chunk=default_chunk(args.seeds), allow_test_metric=args.allow_test_metric,
                    objectives=_objectives_flag(args.objectives), evaluation=_evaluation_flags(args))
        for name in strategies
    ]
    if args.plot:
        _check_plot_path(args.plot)
    out = prepare_folder(args.out)
    if len(plans) > 1:
        _open_parent_folder(out, plans, args.overwrite)
        for k, where in applies.items():
            if len(where) < len(strategies):
                print(f"--set {k} applies to {', '.join(where)} only", file=sys.stderr)
    results = []
    for plan in plans:
        name = plan.strategy.name
        folder = out if len(plans) == 1 else out / name
        if plan.benchmark.traceable:
            update, close = _progress_bar(args.seeds, f"{name} on {plan.benchmark.name}", args.progress)
        else:
            update, close = _evaluation_bar(args.seeds * plan.strategy.n_queries, f"{name} on {plan.benchmark.name}",
                                            args.progress)
        try:
            res = run_plan(plan, folder, overwrite=args.overwrite, progress=update)
        finally:
            close()
        results.append(res)
        done = "read back (the run was already complete)" if res.origin == "read" else "wrote"
        print(f"{done} {folder}/summary.json", file=sys.stderr)
        if args.resample:
            _resample(res, plan.benchmark, args.resample, folder)
    print(table(results))
    if args.plot:
        from jnas.runs.compare import plot

        print(f"plot: {plot(results, args.plot)}", file=sys.stderr)
    return 0


def _resample(result, evaluator, n: int, folder) -> None:
    """Train ``n`` fresh networks of each seed's recommended generator configuration; print mean ± SE."""
    from jnas.runs.resample import RESAMPLE_FILE, resample_run

    for s, rec in enumerate(resample_run(result, evaluator, n, folder)):
        se = "" if rec["test_acc_se"] is None else f" ± {rec['test_acc_se']:.2f}"
        mean = "-" if rec["test_acc_mean"] is None else f"{rec['test_acc_mean']:.2f}{se}"
        print(f"seed {s}: {rec['arch']}: test acc over {rec['n']} fresh networks ({rec['epochs']} epochs): "
              f"{mean} %, {rec['failed']} failed", file=sys.stderr)
    print(f"wrote {folder}/{RESAMPLE_FILE}", file=sys.stderr)


def _evaluation_flags(args) -> dict:
    """How a training search's evaluations run (checked by ``jnas.runs.search.check_evaluation``)."""
    return {"workers": args.workers, "ray_address": args.ray_address, "mode": args.mode, "retries": args.retries,
            "eval_timeout": args.eval_timeout}


def _objectives_flag(text: str | None):
    """``--objectives a,b`` as given (checked against the benchmark by ``plan_search``)."""
    if text is None:
        return None
    return [t.strip() for t in text.split(",")]


#: ``jnas search`` flags that only a training search reads, with their defaults
_TRAIN_FLAGS = {"space": None, "data": "cifar10_subset", "epochs": None, "model": None, "config": None,
                "valid_size": "0.1", "train_seed": 0, "resample": None, "networks": 1}


def _search_target(args):
    """The benchmark name of a table search, or the ``TrainingEvaluator`` of ``--evaluator train``."""
    given = [f"--{k.replace('_', '-')}" for k, d in _TRAIN_FLAGS.items() if getattr(args, k) != d]
    if args.evaluator != "supernet" and args.supernet is not None:
        raise JnasError("--supernet: applies only with --evaluator supernet")
    if args.evaluator == "supernet":
        if args.supernet is None:
            raise JnasError("--supernet: missing (--evaluator supernet needs the folder of a finished "
                            "`jnas supernet` run)")
        # --space may name a variant the supernet can score (darts-blocks on a darts supernet)
        given = [g for g in given if g != "--space"]
        if args.benchmark is not None or given:
            flag = "--benchmark" if args.benchmark is not None else given[0]
            raise JnasError(f"{flag}: does not apply with --evaluator supernet (the run in --supernet fixes space, "
                            "data and network)")
        if args.float64:
            raise JnasError("--float64: applies only to table searches")
        if args.space is not None:
            from jnas.spaces import get_space

            get_space(args.space)  # an unknown name fails before the supernet loads
        from jnas.runs.supernet import load_supernet_run

        evaluator = load_supernet_run(args.supernet)
        return evaluator if args.space is None else evaluator.for_space(args.space)
    if args.evaluator == "table":
        if args.benchmark is None:
            raise JnasError("--benchmark: missing (e.g. nb201/cifar10; or --evaluator train --space ...)")
        if given:
            raise JnasError(f"{given[0]}: applies only with --evaluator train (this search reads --benchmark)")
        return args.benchmark
    if args.benchmark is not None:
        raise JnasError("--benchmark: a training search takes --space and --data, not --benchmark")
    if args.space is None or args.epochs is None:
        raise JnasError(f"--{'space' if args.space is None else 'epochs'}: missing (--evaluator train needs "
                        "--space and --epochs)")
    if args.float64:
        raise JnasError("--float64: applies only to table searches")
    if args.epochs < 1:
        raise JnasError(f"--epochs: got {args.epochs}, expected a positive integer")
    if args.fidelity is not None and not 1 <= args.fidelity <= args.epochs:
        raise JnasError(f"--fidelity: got {args.fidelity}, expected 1..{args.epochs} (at most --epochs, "
                        "the schedule trained)")
    if args.resample is not None:
        from jnas.spaces import get_space

        if args.resample < 1:
            raise JnasError(f"--resample: got {args.resample}, expected a positive integer (networks per "
                            "recommended configuration)")
        if not get_space(args.space).generated:
            raise JnasError(f"--resample: space {args.space!r} has one network per architecture; resampling draws "
                            "fresh networks from a generator (--space nago or rnag)")
        if args.objectives is not None:
            raise JnasError("--resample: a multi-objective search recommends a front, not one configuration")
    return _training_evaluator(args)


def _training_evaluator(args):
    from jnas.benchmarks.training import TrainingEvaluator
    from jnas.runs.training import check_model_options, training_config

    valid = _literal(args.valid_size)
    if not is_number(valid):
        raise JnasError(f"--valid-size: got {args.valid_size!r}, expected a fraction in (0, 1) or a count")
    model = _typed_sets(args.model, "--model")
    check_model_options(args.space, model)
    overrides = _typed_sets(args.config, "--config")
    for key, flag in (("seed", "--train-seed"), ("epochs", "--epochs")):
        if key in overrides:
            raise JnasError(f"--config {key}: set it with {flag}, not --config")
    config = training_config(args.epochs, args.train_seed, overrides)
    checkpoints = Path(args.out) / "checkpoints"  # per strategy folder: set again by the runner
    return TrainingEvaluator(args.space, args.data, config=config, model_options=model, valid_size=valid,
                             checkpoint_dir=checkpoints, networks=args.networks)


def _evaluation_bar(total: int, desc: str, enabled: bool):
    """``(update(info), close)`` of an evaluations bar showing the current architecture and the best value."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="eval", file=sys.stderr, leave=False)

    def update(info: dict):
        best = "-" if info["best"] is None else f"{info['best']:.4g}"
        arch = info["arch"] if len(info["arch"]) <= 60 else info["arch"][:57] + "..."
        bar.set_postfix_str(f"best {best}  {arch}", refresh=False)
        bar.update(info["done"] - bar.n)

    return update, bar.close


def _check_plot_path(path: str) -> None:
    """A ``--plot`` path whose folder cannot be written fails before the search, not after it."""
    from jnas.runs.compare import check_writable_plot

    check_writable_plot(path)


def _open_parent_folder(out: Path, plans, overwrite: bool) -> None:
    """The folder of a several-strategy search holds one subfolder per strategy and their shared spec."""
    from jnas.runs.folder import ResultFolder

    spec = {"kind": "tabular-search-group", "strategies": [p.strategy.name for p in plans],
            **{p.strategy.name: p.spec for p in plans}}
    parent = ResultFolder(out, spec, extra_files=("checkpoints",))
    if parent.held_spec() is None and any((out / n).exists() for n in ("summary.json", "trajectory.npz")):
        if not overwrite:
            raise JnasError(f"--out: {str(out)!r} holds the result of a single search; "
                            "use another folder or add --overwrite")
    parent.open(overwrite)


def cmd_compare(args) -> int:
    from jnas.runs.compare import check_writable_plot, folder_labels, load_all, mismatch_warning, plot, table

    if args.plot:
        check_writable_plot(args.plot)
    elif args.x is not None:
        raise JnasError("--x: chooses the plot's axis; give --plot FILE too")
    results = load_all(args.dirs)
    warning = mismatch_warning(results)
    if warning:
        print(f"jnas: warning: {warning}", file=sys.stderr)
    labels = folder_labels(args.dirs)
    print(table(results, labels))
    if args.plot:
        print(f"plot: {plot(results, args.plot, labels=labels, x=args.x)}", file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from jnas import benchmarks, spaces, strategies

    print("spaces:     " + ", ".join(spaces.names()))
    print("strategies: " + ", ".join(strategies.names()))
    for name in strategies.names():
        for o in strategies.get_strategy(name).options:
            print(f"  {name} --set {o.name}={o.default}  ({o.help}; {o.expected})")
    from jnas.models.supernet import NETWORK_OPTIONS
    from jnas.train.oneshot_methods import EARLY_STOP_OPTIONS, METHODS

    print("one-shot methods (jnas supernet): " + ", ".join(METHODS))
    for name, m in METHODS.items():
        for o in m.options:
            print(f"  {name} --set {o.name}={o.default}  ({o.expected})")
    for o in EARLY_STOP_OPTIONS:
        print(f"  any method --set {o.name}={o.default}  ({o.expected}; DARTS+ early stopping)")
    for space, opts in NETWORK_OPTIONS.items():
        print(f"  supernet {space} --model " + " --model ".join(f"{k}={v}" for k, v in opts.items()))
    print("benchmarks: " + ", ".join(benchmarks.names()))
    if args.metrics:
        for name in benchmarks.names():
            b = benchmarks.get_benchmark(name)
            metric, fid = b.search_metric
            print(f"{name} (search default {metric}{'' if fid is None else f'@{fid}'})")
            for m in b.metrics.values():
                fid = "" if m.fidelity is None else f"@{m.fidelity}"
                unit = f" [{m.unit}]" if m.unit else ""
                print(f"  {m.name}{fid}: {m.description}{unit} coverage {m.coverage}/{b.n_rows}, "
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


def _typed_sets(items: list[str], flag: str = "--set") -> dict:
    return {k: _literal(v) for k, v in _parse_sets(items, flag).items()}


def _model_sets(args) -> dict:
    """Network options of ``describe``/``train``: ``--model``, or the deprecated ``--set`` (with a note)."""
    if args.set:
        print("jnas: note: --set for network options is deprecated here; use --model KEY=VALUE "
              "(in `jnas search`, --set sets strategy options)", file=sys.stderr)
    model = _typed_sets(args.model, "--model")
    old = _typed_sets(args.set)
    both = sorted(set(model) & set(old))
    if both:
        raise JnasError(f"--model {both[0]}: also given with --set; give it once, with --model")
    return {**old, **model}


def cmd_describe(args) -> int:
    import json

    from jnas.runs.training import describe_architecture

    info = describe_architecture(args.space, args.arch, dataset=args.dataset, seed=args.seed,
                                 options=_model_sets(args))
    print(json.dumps(info))
    return 0


def cmd_train(args) -> int:
    from tqdm import tqdm

    from jnas.runs.training import check_model_options, parse_arch, train_architecture, training_config
    from jnas.train.loop import CheckpointMismatch

    if args.epochs < 1:
        raise JnasError(f"--epochs: got {args.epochs}, expected a positive integer")
    parse_arch(args.space, args.arch)  # bad input fails before the progress bar starts
    training_config(args.epochs, args.seed, _typed_sets(args.config))
    model = _model_sets(args)
    check_model_options(args.space, model)

    # One bar on stderr, drawn once per epoch and gone at the end (only on a terminal: a log gets no bar);
    # each epoch's line goes to stdout once.
    bar = tqdm(total=args.epochs, desc=f"train {args.space}", unit="epoch", file=sys.stderr, leave=False,
               mininterval=0, disable=None if args.progress else True)

    def on_epoch(rec: dict) -> None:
        test = "" if rec.get("test_acc") is None else f"  test acc {rec['test_acc']:6.2f}%"
        bar.clear()
        print(f"epoch {rec['epoch']:3d}  loss {rec['train_loss']:.4f}  train acc {rec['train_acc']:6.2f}%"
              f"{test}  lr {rec['lr']:.4g}  ({rec['seconds']:.1f} s)", flush=True)
        bar.update(rec["epoch"] - bar.n)  # a resumed run starts past epoch 0
        finished[0] = rec["epoch"]

    finished = [0]
    try:
        record = train_architecture(args.space, args.arch, data=args.data, epochs=args.epochs, out=args.out,
                                    seed=args.seed, options=model,
                                    config_overrides=_typed_sets(args.config), on_epoch=on_epoch)
    except CheckpointMismatch as e:
        raise JnasError(f"--out {args.out} holds a checkpoint of a different run ({'; '.join(e.differences)}); "
                        "use another --out or delete it") from None
    except KeyboardInterrupt:
        kept = (f"epochs 1..{finished[0]} are checkpointed in {Path(args.out) / 'checkpoints'}; rerun the same "
                "command to resume" if finished[0] else "no epoch had finished")
        raise Interrupted(f"interrupted: training {args.space} for {args.epochs} epochs: {kept}") from None
    finally:
        bar.close()
    resumed = f"  resumed after epoch {record['resumed_from']}" if record["resumed_from"] else ""
    print(f"final train acc {record['train_acc']:.2f}%  test acc {record['test_acc']:.2f}%  "
          f"params {record['params']:,}  ({record['wall_seconds']:.0f} s){resumed}  "
          f"-> {Path(args.out) / 'result.json'}")
    return 0


def cmd_supernet(args) -> int:
    from tqdm import tqdm

    from jnas.runs.supernet import check_supernet_args, run_supernet
    from jnas.train.loop import CheckpointMismatch

    method_opts, model, config = _typed_sets(args.set), _typed_sets(args.model, "--model"), _typed_sets(
        args.config, "--config")
    check_supernet_args(args.space, args.method, args.epochs, method_opts, model, config, args.seed)
    # one bar per epoch over its steps (stderr, terminals only); one line per epoch on stdout
    state = {"bar": None, "epoch": 0, "done": 0}

    def on_step(i: int, n: int, m: dict) -> None:
        if state["bar"] is None:
            state["bar"] = tqdm(total=n, desc=f"epoch {state['epoch'] + 1}/{args.epochs}", unit="step",
                                file=sys.stderr, leave=False, disable=None if args.progress else True)
        bar = state["bar"]
        bar.set_postfix_str(f"train {m['train_loss']:.3f}  val {m['val_loss']:.3f}", refresh=False)
        bar.update(i - bar.n)

    def on_epoch(rec: dict) -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None
        state["epoch"] = state["done"] = rec["epoch"]
        acc = rec.get("nb201_cifar10_test_acc")
        looked = "" if acc is None else f"  cifar10 test {acc:.2f}%"
        print(f"epoch {rec['epoch']:3d}  train loss {rec['train_loss']:.4f} acc {rec['train_acc']:6.2f}%  "
              f"val loss {rec['val_loss']:.4f} acc {rec['val_acc']:6.2f}%  ({rec['seconds']:.1f} s)  "
              f"{rec['derived_arch']}{looked}", flush=True)

    try:
        record = run_supernet(args.space, args.method, data=args.data, epochs=args.epochs, out=args.out,
                              seed=args.seed, method_options=method_opts, model_options=model,
                              config_overrides=config, on_epoch=on_epoch, on_step=on_step)
    except CheckpointMismatch as e:
        raise JnasError(f"--out {args.out} holds a checkpoint of a different run ({'; '.join(e.differences)}); "
                        "use another --out or delete it") from None
    except KeyboardInterrupt:
        kept = (f"epochs 1..{state['done']} are checkpointed in {Path(args.out) / 'checkpoints'}; rerun the same "
                "command to resume" if state["done"] else "no epoch had finished")
        raise Interrupted(f"interrupted: {args.method} on {args.space}: {kept}") from None
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    looked = record.get("nb201_test_acc")
    extra = "" if not looked else "  nb201 test " + "  ".join(
        f"{d} {'-' if v is None else f'{v:.2f}%'}" for d, v in looked.items())
    resumed = f"  resumed after epoch {record['resumed_from']}" if record["resumed_from"] else ""
    if record.get("early_stop"):
        resumed += f"  stopped after epoch {record['stopped_at_epoch']} ({record['early_stop']})"
    print(f"derived {record['derived_arch']}{extra}  ({record['wall_seconds']:.0f} s){resumed}  "
          f"-> {Path(args.out) / 'result.json'}")
    if record.get("nb201_lookup_error"):
        print(f"jnas: note: no NB201 look-up ({record['nb201_lookup_error']})", file=sys.stderr)
    return 0


def cmd_prepare(args) -> int:
    from jnas.train.data import prepare

    print(prepare(args.what, data_dir=args.dest))
    return 0


def cmd_data(args) -> int:
    if args.action == "status":
        from jnas.benchmarks.datadir import status_lines

        print("\n".join(status_lines()[0]))
        return 0
    if args.what != "nb201":
        raise JnasError(f"data {args.action}: got {args.what!r}, expected nb201 (NAS-Bench-Graph ships in its package)")
    from jnas.benchmarks.fetch import check_base_url, fetch_nb201, hash_sources
    from jnas.benchmarks.sources import GITHUB_RAW

    if len(args.mirror or []) > 1:
        raise JnasError(f"--mirror: given {len(args.mirror)} times, expected one URL (jnas never switches hosts)")
    bases = [check_base_url(m, "--mirror") for m in args.mirror or []] or None
    if args.action == "hashes":
        for src, digest, size in hash_sources(base_urls=bases):
            print(f"{digest}  {size:>9}  {src.name}  {src.url(bases[0] if bases else GITHUB_RAW)}")
        return 0
    for p in fetch_nb201(dest=Path(args.dest) if args.dest else None, base_urls=bases):
        print(p)
    return 0


class _Formatter(argparse.HelpFormatter):
    """Help wrapped at spaces only: hyphenated names (``anasod-bo``) stay whole, so they can be searched for."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _strategy_names() -> list[str]:
    from jnas.strategies import names

    return names()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jnas", description="Neural architecture search on JAX.",
                                formatter_class=_Formatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run strategies on a tabular benchmark (many seeds) or by real training",
                       formatter_class=_Formatter)
    s.add_argument("--benchmark", default=None, help="e.g. nb201/cifar10, nbgraph/cora (see `jnas list`)")
    s.add_argument("--evaluator", choices=("table", "train", "supernet"), default="table",
                   help="table: look values up in --benchmark (default); train: train every queried network; "
                        "supernet: score with the inherited weights of the trained supernet in --supernet")
    s.add_argument("--supernet", default=None, metavar="DIR",
                   help="folder of a finished `jnas supernet` run (with --evaluator supernet)")
    s.add_argument("--strategy", required=True,
                   help=f"one of {', '.join(_strategy_names())}; several as a comma list (each to OUT/<name>)")
    s.add_argument("--budget", type=int, required=True,
                   help="queries per seed (multi-fidelity strategies: full evaluations' worth of cost in epochs, "
                        "e.g. 150 = 150 x 200 epochs on nb201/cifar10)")
    s.add_argument("--seeds", type=int, default=1, help="independent runs (vmapped)")
    s.add_argument("--out", required=True, help="result folder")
    s.add_argument("--metric", default=None, help="search metric (default: the benchmark's validation metric)")
    s.add_argument("--fidelity", type=int, default=None,
                   help="fidelity of the search metric (epochs); alone, it applies to the default metric")
    s.add_argument("--objectives", default=None, metavar="A,B[,C]",
                   help="multi-objective search (mobo, nsga2, rs): two or three comma-separated metrics, e.g. "
                        "valid_acc@200,edgegpu_latency (see jnas list --metrics); excludes --metric")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="strategy option (repeatable)")
    s.add_argument("--seed0", type=int, default=0, help="first seed (seed i uses key seed0 + i)")
    s.add_argument("--prng", default="hash", help="hash (fast, default) or threefry")
    s.add_argument("--float64", action="store_true", help="gather full-precision values (enables jax x64)")
    s.add_argument("--plot", default=None, help="write best-so-far curves to this PNG")
    s.add_argument("--overwrite", action="store_true",
                   help="replace a different run in --out (default: refuse; the same command resumes)")
    s.add_argument("--allow-test-metric", action="store_true",
                   help="let --metric be a test metric (recorded in summary.json; "
                        "searches never look at test data otherwise)")
    s.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    tr = s.add_argument_group("training search (--evaluator train)")
    tr.add_argument("--space", default=None, help="search space whose networks are trained, e.g. nb201 (with "
                    "--evaluator supernet: a variant the supernet scores, darts-blocks on a darts supernet)")
    tr.add_argument("--data", default="cifar10_subset", help="dataset (as for `jnas train`)")
    tr.add_argument("--epochs", type=int, default=None, help="training schedule and default fidelity")
    tr.add_argument("--model", action="append", metavar="KEY=VALUE", help="network option, e.g. channels=8")
    tr.add_argument("--config", action="append", metavar="KEY=VALUE", help="training option, e.g. batch_size=128")
    tr.add_argument("--valid-size", default="0.1",
                    help="held-out part of the training set searched on: a fraction (default 0.1) or a count")
    tr.add_argument("--train-seed", type=int, default=0, help="seed of every network's training run")
    tr.add_argument("--networks", type=int, default=1, metavar="N",
                    help="networks drawn per configuration of a generator space (nago, rnag), metrics averaged "
                         "(default 1, as NAGO's search)")
    tr.add_argument("--resample", type=int, default=None, metavar="N",
                    help="after the search, train N fresh networks drawn from each seed's recommended generator "
                         "configuration (nago, rnag) to the final schedule and report test accuracy mean ± SE "
                         "(NAGO's protocol); written to resample.json")
    pe = s.add_argument_group("parallel evaluation (searches that train; Ray: pip install 'jnas[ray]')")
    pe.add_argument("--workers", type=int, default=None, metavar="N",
                    help="run evaluations as Ray tasks on a local Ray runtime of N CPUs started here (with "
                         "--ray-address: at most N tasks at once on that cluster)")
    pe.add_argument("--ray-address", default=None, metavar="ADDRESS",
                    help="join a running Ray cluster: auto (the one this machine belongs to) or host:port")
    pe.add_argument("--mode", default="sync", choices=("sync", "async"),
                    help="sync: evaluate each step's batches together, then tell (results independent of the "
                         "worker count); async: keep N evaluations running per seed, ask anew as each finishes "
                         "(running ones are pending points; batch_size 1)")
    pe.add_argument("--retries", type=int, default=None, metavar="N",
                    help="try a failed evaluation (raised, NaN, worker lost, timed out) again up to N times before "
                         "recording it as a failure (default: 2 on Ray, 0 in this process)")
    pe.add_argument("--eval-timeout", type=float, default=None, metavar="SECONDS",
                    help="time limit per evaluation on Ray: past it the task is cancelled and the attempt failed")
    s.set_defaults(func=cmd_search)

    c = sub.add_parser("compare", help="table and curves of result folders")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    c.add_argument("--plot", default=None, metavar="FILE",
                   help="write best-so-far test curves to this image (median over seeds, band: 25-75th percentile, "
                        "log x; format from the suffix: .png, .pdf, .svg, ...)")
    c.add_argument("--x", default=None, choices=("queries", "cost"),
                   help="x axis of --plot: queries, or cost in full evaluations' worth of epochs (default: cost "
                        "when a multi-fidelity run is compared, else queries)")
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
    de.add_argument("--model", action="append", metavar="KEY=VALUE", help="network option, e.g. channels=36")
    de.add_argument("--set", action="append", metavar="KEY=VALUE", help="deprecated alias of --model")
    de.set_defaults(func=cmd_describe)

    t = sub.add_parser("train", help="train one architecture on real data; writes OUT/result.json")
    t.add_argument("--space", required=True, help="nb201, nb101, darts, convnet, convnet-small, nago, rnag")
    t.add_argument("--arch", required=True, help="architecture string in the space's notation")
    t.add_argument("--data", default="cifar10_subset",
                   help="cifar10_subset ($JNAS_DATA_DIR/cifar10_subset.npz), a prepared TFDS name, or an .npz path")
    t.add_argument("--epochs", type=int, required=True)
    t.add_argument("--out", required=True, help="result folder (holds checkpoints: a rerun resumes)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--model", action="append", metavar="KEY=VALUE", help="network option, e.g. channels=8")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="deprecated alias of --model")
    t.add_argument("--config", action="append", metavar="KEY=VALUE",
                   help="training option (TrainConfig field), e.g. batch_size=128 or lr=0.05")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(func=cmd_train)

    sn = sub.add_parser("supernet", help="one-shot search: train a weight-sharing supernet, derive a cell; "
                        "writes OUT/result.json")
    sn.add_argument("--space", required=True, help="nb201 or darts")
    sn.add_argument("--method", required=True,
                    help="darts, darts2 (second order), gdas, snas, pc-darts, pdarts or anasod-dnas")
    sn.add_argument("--data", default="cifar10_subset",
                    help="cifar10_subset (default), a prepared TFDS name, or an .npz path; the training split is "
                         "cut into a weight half and an architecture half")
    sn.add_argument("--epochs", type=int, required=True, help="search epochs (DARTS: 50; ANASOD-DNAS: 20)")
    sn.add_argument("--out", required=True, help="result folder (holds checkpoints: a rerun resumes)")
    sn.add_argument("--seed", type=int, default=0, help="seed of the weights, architecture init and data order")
    sn.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="method option, e.g. tau_min=0.5 (gdas) or arch_lr=1e-3")
    sn.add_argument("--model", action="append", metavar="KEY=VALUE",
                    help="supernet option: channels, cells_per_stage (nb201) or layers (darts)")
    sn.add_argument("--config", action="append", metavar="KEY=VALUE",
                    help="weight training option (TrainConfig field), e.g. batch_size=96 or bf16=true")
    sn.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    sn.set_defaults(func=cmd_supernet)

    ls = sub.add_parser("list", help="spaces, benchmarks, strategies, metrics")
    ls.add_argument("--metrics", action="store_true", help="also list every benchmark's metrics")
    ls.set_defaults(func=cmd_list)

    d = sub.add_parser("data", help="benchmark data")
    dsub = d.add_subparsers(dest="action", required=True)
    mirror_help = ("download from this mirror of raw.githubusercontent.com instead "
                   "(serves URL/<owner>/<repo>/<commit>/<path>; no fallback to GitHub)")
    f = dsub.add_parser("fetch", help="download upstream files, verify size and sha256, rebuild tables")
    f.add_argument("what", help="nb201")
    f.add_argument("--dest", default=None, help="folder (default: $JNAS_DATA_DIR or the user cache)")
    f.add_argument("--mirror", action="append", metavar="URL", help=mirror_help)
    f.set_defaults(func=cmd_data)
    h = dsub.add_parser("hashes", help="maintainers: download upstream files and print their sha256 (reads nothing)")
    h.add_argument("what", help="nb201")
    h.add_argument("--mirror", action="append", metavar="URL", help=mirror_help)
    h.set_defaults(func=cmd_data)
    st = dsub.add_parser("status", help="which data files are found, where, and how to get the missing ones")
    st.set_defaults(func=cmd_data)
    pr = dsub.add_parser("prepare", help="one-time: turn an image dataset into TFDS array_record files")
    pr.add_argument("what", help="cifar10_subset, an .npz path, or a TFDS dataset (cifar10: needs jnas[prepare])")
    pr.add_argument("--dest", default=None, help="TFDS data dir (default: jnas's cache for arrays, TFDS's otherwise)")
    pr.set_defaults(func=cmd_prepare)
    return p


def _persistent_compile_cache() -> None:
    """Keep compiled programs (search scans, initialisers, train steps) across ``jnas`` calls in the user cache.

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
    if args.command in ("describe", "train", "supernet", "search"):
        _persistent_compile_cache()
    try:
        return args.func(args)
    except Interrupted as e:
        print(f"jnas: {e}", file=sys.stderr)
        return 130
    except JnasError as e:
        print(f"jnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jnas: interrupted ({args.command})", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
