"""Candidate sampling for predictor-based NAS (Mauch et al., 2020) redone on NAS-Bench-201 CIFAR-10.

The paper's study on NAS-Bench-101, here on ``nb201/cifar10`` (search metric
``valid_acc@200``; cells as 8-node DAGs with ops as nodes). Strategy ``pbnas``
(Algorithm 1: |T0| = 4 random cells, then K = 4 cells per step, a GCN ranking
predictor retrained every step) with the candidate set S' drawn as

* the whole space (N' = |S| = 15,625), uniform samples of N' = 1000 and 100,
* gradient ("ML") sampling and evolutionary sampling (Algorithm 2), N' = 100 and 1000,

plus random search as the reference. Measured, over ``--seeds`` runs of
``--budget`` queries:

(a) the validation error of the proposed candidates C (every cell the
    predictor chose, i.e. all queries after the random start, pooled over
    seeds and steps) — histograms per sampler;
(b) the sample-efficiency gain (eqs. 14–15) of C over the whole space,
    ``10 log10(E_S[τ] / E_C[τ])`` with ``E[τ] = (K + 1)/(M + 1)``, as a function
    of J_target, and its split into ``gain_e`` (S' over S) and ``gain_p`` (C over
    S') for the subset samplers (eqs. 16–17; S' = the eligible candidates of
    every step, pooled like C);
(c) convergence: best-so-far validation error and the test error of the
    best-by-validation cell, mean and standard deviation over seeds.

Errors are ``1 - accuracy/100``. Writes ``experiments/results/predictor_sampling.json``
and ``predictor_sampling_{hist,gain,split,convergence}.png``.

    python experiments/predictor_sampling.py [--seeds 20] [--budget 100] [--gcn-steps 60]

The default run (20 seeds x 100 queries x 7 settings, 60 GCN steps per search
step) takes about 10–15 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jnas.benchmarks import get_benchmark
from jnas.metrics import expected_trials_curve, gain_db
from jnas.runs.results import summarise
from jnas.runs.runner import RunRecord, _split, run_tabular, seed_keys
from jnas.strategies import make_strategy
from jnas.strategies.pbnas import PredictorBasedNAS

BENCH = "nb201/cifar10"
SETTINGS = (  # (label, sampler, N')
    ("pb-space", "space", None),
    ("pb-uniform-1000", "uniform", 1000),
    ("pb-uniform-100", "uniform", 100),
    ("pb-ml-1000", "ml", 1000),
    ("pb-ml-100", "ml", 100),
    ("pb-ev-1000", "evolutionary", 1000),
    ("pb-ev-100", "evolutionary", 100),
)


def run_recording(strategy: PredictorBasedNAS, bench, seeds: int):
    """Like ``run_tabular`` (same keys), also returning the table rows of every step's eligible S'.

    Returns ``(RunRecord, cand_rows int32[seeds, steps, N'] or None)``; -1 marks
    ineligible candidates. The whole-space sampler returns None (S' = S minus T).
    """
    key_metric = bench.search_metric
    n_steps = -(-strategy.budget // strategy.batch_size)
    record_cands = strategy.sampler != "space"

    def one_seed(key):
        k_init, k_steps = _split(key, n_steps)

        def step(state, k):
            archs, state, prop = strategy.propose(state, k)
            rows = bench.rows(archs)
            vals = bench.query_rows(rows, key_metric)
            state = strategy.tell(state, archs, vals)
            cand = jnp.where(prop.eligible, bench.rows(prop.candidates), -1) if record_cands else jnp.zeros((0,))
            return state, (rows, vals, cand)

        _, (rows, vals, cand) = jax.lax.scan(step, strategy.init(k_init), k_steps)
        b = strategy.budget
        return rows.reshape(-1)[:b], vals.reshape(-1)[:b], cand

    t0 = time.perf_counter()
    rows, vals, cand = jax.jit(jax.vmap(one_seed))(seed_keys(seeds))
    rows, vals, cand = np.asarray(rows), np.asarray(vals), np.asarray(cand)
    rec = RunRecord(rows, vals, time.perf_counter() - t0)
    return rec, (cand if record_cands else None)


def curve_stats(x: np.ndarray) -> dict:
    return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist()}


def finite_or_none(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a)]


def fmt(x) -> str:
    return "-inf" if x is None else f"{x:.1f}"


def gain(tau_a, tau_b):
    """``gain_db`` with ``-inf`` (no candidate reaches the target) left quiet; JSON shows it as null."""
    with np.errstate(divide="ignore"):
        return gain_db(tau_a, tau_b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--gcn-steps", type=int, default=60)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "predictor_sampling.json"))
    args = ap.parse_args()
    t_start = time.perf_counter()
    bench = get_benchmark(BENCH)
    val_err_all = 1.0 - bench.column(*bench.search_metric) / 100.0
    test_err_all = 1.0 - bench.column(*bench.test_metric) / 100.0
    n_space = val_err_all.size
    j_grid = np.linspace(val_err_all.min(), 0.20, 150)
    tau_s = expected_trials_curve(val_err_all, j_grid, higher_is_better=False)
    # reference J_targets: the best 0.1 %, 1 % and 10 % of the space
    j_ref = {f"top{q * 100:g}%": float(np.quantile(val_err_all, q)) for q in (0.001, 0.01, 0.1)}
    n_init, k = 4, 4

    out = {
        "benchmark": BENCH,
        "search_metric": "valid_acc@200",
        "seeds": args.seeds,
        "budget": args.budget,
        "n_init": n_init,
        "k": k,
        "gcn_steps": args.gcn_steps,
        "j_grid": j_grid.tolist(),
        "j_ref": j_ref,
        "oracle": {
            "val_error": float(val_err_all.min()),
            "test_error_of_best_val": float(test_err_all[np.argmin(val_err_all)]),
            "test_error": float(test_err_all.min()),
        },
        "settings": {},
    }
    hist_bins = np.linspace(val_err_all.min(), 0.30, 45)
    out["hist_bins"] = hist_bins.tolist()

    def record_setting(label, strat, rec, cand):
        res = summarise(rec, bench, strat, bench.search_metric)
        best_val = 1.0 - res.trajectory["best_search"] / 100.0
        best_test = 1.0 - res.trajectory["best_test"] / 100.0
        start = n_init if label != "random" else 0
        start = -(-start // k) * k
        c = 1.0 - rec.values[:, start:].reshape(-1) / 100.0
        tau_c = expected_trials_curve(c, j_grid, higher_is_better=False)
        entry = {
            "options": strat.settings(),
            "wall_seconds": rec.wall_seconds,
            "proposals": int(c.size),
            "proposal_val_error_mean": float(np.nanmean(c)),
            "proposal_val_error_median": float(np.nanmedian(c)),
            "hist": np.histogram(np.clip(c, None, hist_bins[-1]), hist_bins)[0].tolist(),
            "gain_db": finite_or_none(gain(tau_s, tau_c)),
            "gain_at": {},
            "val_error": curve_stats(best_val),
            "test_error": curve_stats(best_test),
            "final_val_error_mean": float(best_val[:, -1].mean()),
            "final_test_error_mean": float(best_test[:, -1].mean()),
            "final_test_error_se": float(best_test[:, -1].std(ddof=1) / np.sqrt(best_test.shape[0])),
            "found_val_optimum_fraction": res.summary["found_optimum_fraction"],
        }
        ref_tau_s = expected_trials_curve(val_err_all, list(j_ref.values()), higher_is_better=False)
        ref_tau_c = expected_trials_curve(c, list(j_ref.values()), higher_is_better=False)
        entry["gain_at"] = dict(zip(j_ref, finite_or_none(gain(ref_tau_s, ref_tau_c))))
        # 90 % interval over seeds: resample whole runs (proposals of one run are not independent)
        per_seed = 1.0 - rec.values[:, start:] / 100.0
        rng = np.random.default_rng(0)
        boot = np.array([
            gain(ref_tau_s, expected_trials_curve(per_seed[rng.integers(0, per_seed.shape[0], per_seed.shape[0])],
                                                  list(j_ref.values()), higher_is_better=False))
            for _ in range(500)
        ])
        lo, hi = np.percentile(np.where(np.isfinite(boot), boot, -np.inf), [5, 95], axis=0)
        entry["gain_at_ci90"] = {name: finite_or_none([a, b]) for name, a, b in zip(j_ref, lo, hi)}
        if cand is not None:
            sub = cand[:, start // k :].reshape(-1)
            sub = 1.0 - bench.column(*bench.search_metric)[sub[sub >= 0]] / 100.0
            tau_sub = expected_trials_curve(sub, j_grid, higher_is_better=False)
            entry["subset_size_mean"] = float(sub.size / (cand.shape[0] * (cand.shape[1] - start // k)))
            entry["gain_e_db"] = finite_or_none(gain(tau_s, tau_sub))
            entry["gain_p_db"] = finite_or_none(gain(tau_sub, tau_c))
            entry["subset_val_error_mean"] = float(sub.mean())
            ref_tau_sub = expected_trials_curve(sub, list(j_ref.values()), higher_is_better=False)
            entry["gain_e_at"] = dict(zip(j_ref, finite_or_none(gain(ref_tau_s, ref_tau_sub))))
            entry["gain_p_at"] = dict(zip(j_ref, finite_or_none(gain(ref_tau_sub, ref_tau_c))))
        out["settings"][label] = entry
        g = entry["gain_at"]
        print(
            f"{label:16} {rec.wall_seconds:6.1f}s  proposals: mean err {entry['proposal_val_error_mean']:.4f}  "
            f"gain dB @top0.1%/1%/10%: {fmt(g['top0.1%'])}, {fmt(g['top1%'])}, {fmt(g['top10%'])}  "
            f"final val err {entry['final_val_error_mean']:.4f}  test err {entry['final_test_error_mean']:.4f}"
            f" ± {entry['final_test_error_se']:.4f}  found opt {entry['found_val_optimum_fraction']:.2f}",
            flush=True,
        )

    rs = make_strategy("rs", bench.space, args.budget)
    record_setting("random", rs, run_tabular(rs, bench, args.seeds), None)
    for label, sampler, n_c in SETTINGS:
        opts = {"sampler": sampler, "n_init": n_init, "k": k, "gcn_steps": args.gcn_steps}
        if n_c is not None:
            opts["n_candidates"] = n_c
        strat = make_strategy("pbnas", bench.space, args.budget, **opts)
        rec, cand = run_recording(strat, bench, args.seeds)
        record_setting(label, strat, rec, cand)
    out["wall_seconds_total"] = time.perf_counter() - t_start
    out["space_size"] = n_space
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({out['wall_seconds_total']:.0f} s)")
    plot(out, path.parent)


def plot(out: dict, folder: Path):
    """The four figures of the study (the paper's Figs. 2/6, 3/7, 8, 4/5/9/10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = out["settings"]
    colors = {
        "random": "0.5", "pb-space": "C0", "pb-uniform-1000": "C1", "pb-uniform-100": "C2",
        "pb-ml-1000": "C3", "pb-ml-100": "C4", "pb-ev-1000": "C5", "pb-ev-100": "C6",
    }
    bins = np.asarray(out["hist_bins"])
    mid = 0.5 * (bins[1:] + bins[:-1])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    groups = (("random", "pb-space", "pb-uniform-1000", "pb-uniform-100"),
              ("random", "pb-space", "pb-ml-1000", "pb-ml-100", "pb-ev-1000", "pb-ev-100"))
    for ax, group in zip(axes, groups):
        for lab in group:
            h = np.asarray(st[lab]["hist"], float)
            ax.step(mid, h / h.sum(), where="mid", color=colors[lab], label=lab)
        ax.set_xlabel("validation error of proposed candidates")
        ax.legend()
    axes[0].set_ylabel("fraction")
    fig.suptitle("nb201/cifar10: q(J_v) of the proposals")
    fig.tight_layout()
    fig.savefig(folder / "predictor_sampling_hist.png", dpi=120)
    plt.close(fig)

    j = np.asarray(out["j_grid"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, group in zip(axes, groups):
        for lab in group[1:]:
            g = np.asarray([np.nan if v is None else v for v in st[lab]["gain_db"]])
            ax.plot(j, g, color=colors[lab], label=lab)
        ax.set_xlabel("J_target (validation error)")
        ax.legend()
    axes[0].set_ylabel("gain [dB]")
    fig.suptitle("nb201/cifar10: sample-efficiency gain over drawing from the whole space")
    fig.tight_layout()
    fig.savefig(folder / "predictor_sampling_gain.png", dpi=120)
    plt.close(fig)

    labs = [lab for lab in st if "gain_e_db" in st[lab]]
    fig, axes = plt.subplots(1, len(labs), figsize=(3.2 * len(labs), 3.4), sharey=True)
    for ax, lab in zip(np.atleast_1d(axes), labs):
        for key, name in (("gain_db", "gain"), ("gain_e_db", "gain_e (S')"), ("gain_p_db", "gain_p (predictor)")):
            ax.plot(j, [np.nan if v is None else v for v in st[lab][key]], label=name)
        ax.set_title(lab, fontsize=9)
        ax.set_xlabel("J_target")
    np.atleast_1d(axes)[0].set_ylabel("dB")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "predictor_sampling_split.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    q = np.arange(1, out["budget"] + 1)
    for ax, key, oracle in ((axes[0], "val_error", out["oracle"]["val_error"]),
                            (axes[1], "test_error", out["oracle"]["test_error_of_best_val"])):
        for lab, e in st.items():
            m, s = np.asarray(e[key]["mean"]), np.asarray(e[key]["std"])
            ax.plot(q, m, color=colors[lab], label=lab)
            ax.fill_between(q, m - s, m + s, color=colors[lab], alpha=0.08)
        ax.axhline(oracle, color="k", ls="--", lw=0.8, label="oracle")
        ax.set_xlabel("queries")
        ax.set_ylabel(f"best-so-far {key.replace('_', ' ')}")
        ax.set_ylim(oracle - 0.002, oracle + 0.03)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"nb201/cifar10: convergence over {out['seeds']} runs (mean ± std)")
    fig.tight_layout()
    fig.savefig(folder / "predictor_sampling_convergence.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
