"""jnas's GP (jitted L-BFGS ML-II) against BoTorch's ``SingleTaskGP``: fit time, EI time, and the optimum reached.

Data (both sides): 200 distinct NB201 architectures drawn uniformly (seed 0) from ``nb201/cifar10``,
features ``jnas.encodings.adjacency_onehot`` (30-dim 0/1 codes, as ``bo`` uses), targets the
benchmark's search metric (200-epoch validation accuracy), all in float64. jnas gets the raw targets
``y`` and standardises them itself (mean, population std); BoTorch gets the same standardised
``z = (y - mean) / std`` and no input or outcome transform, so both fit one model to one data set.

Model, like for like: Matérn 5/2 with ONE shared lengthscale (no ARD), an outputscale (kernel
variance), Gaussian noise and a zero mean, every hyperparameter in the same box: lengthscale
[0.1, 10] (``jnas.strategies.bo.ONEHOT_LENGTHSCALE``), outputscale [0.5, 5], noise [1e-6, 1e-1].

* jnas: ``GP(input_bounds=(0, 1), lengthscale_bounds=(0.1, 10))``, default L-BFGS (at most 100
  iterations, SciPy's gtol/ftol tests), ``restarts=1`` (one start, like BoTorch) and ``restarts=4``
  (jnas's default: 4 starts, one after another on CPU, under ``vmap`` on an
  accelerator). Each box is a log-sigmoid map of an unconstrained value.
* BoTorch: ``SingleTaskGP(X, z, covar_module=ScaleKernel(MaternKernel(nu=2.5,
  lengthscale_constraint=Interval(0.1, 10)), outputscale_constraint=Interval(0.5, 5)),
  likelihood=GaussianLikelihood(noise_constraint=Interval(1e-6, 1e-1)), mean_module=ZeroMean(),
  outcome_transform=None)``, fitted by ``fit_gpytorch_mll(ExactMarginalLogLikelihood(...))``
  (SciPy L-BFGS-B). The bench REMOVES BoTorch's default hyperparameter priors (and its learnable
  constant mean and ``Standardize`` outcome transform) so that both sides maximise the same
  objective, the log marginal likelihood. gpytorch's ``Interval`` is a linear-sigmoid map: the
  same box, another parameterisation, the same optimum.

Checks: jnas's ``log_marginal_likelihood`` evaluated at both sides' fitted hyperparameters; jnas's
(restarts=4, and restarts=1) must be >= BoTorch's - 1e-6 (PASS/FAIL, each). EI: both sides conditioned
on BoTorch's fitted hyperparameters (jnas through ``gp.condition``); jnas works in target units, so
its EI is divided by the target std. EI must agree to 1e-6 relative on the candidates whose EI is at
least 1% of the largest, and both must pick the same argmax. Deeper in the Gaussian tail the
relative error grows: jnas's 1e-8 diagonal jitter (x64) is not small against a fitted noise near
1e-6, and the two closed forms cancel differently; the bench records that too, and the error of a
jitter-free jnas GP. The exit status is 1 if any check fails (after the record is written).

Timing (medians over ``--reps`` repetitions, sides alternating within each repetition, 2 threads
for torch): jnas fit steady state (the jitted ``fit`` called again on the same shapes; the
compile + first call is reported apart), BoTorch fit (a fresh model each repetition); EI over
100,000 random NB201 codes (drawn with replacement, seed 1): jnas ``expected_improvement`` on
``gp.predict`` jitted, against BoTorch's analytic ``ExpectedImprovement`` on the candidates as
``(100000, 1, 30)`` under ``torch.no_grad()`` (first calls reported apart). Diagnostics: seconds per
LML + gradient evaluation on each side and the evaluations each optimiser makes.

Prints a table and writes ``bench/results/gp.json`` (machine, date, versions, every number).
BoTorch (and torch, gpytorch) are imported here only (``pip install -e .[bench]``); jnas does not
depend on them.

    JNAS_DATA_DIR=... python bench/gp.py [--reps 7] [--n 200] [--candidates 100000]
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # before anything builds an array

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from machine import summary as machine_summary  # noqa: E402

from jnas.acquisition import expected_improvement  # noqa: E402
from jnas.benchmarks import get_benchmark  # noqa: E402
from jnas.encodings import adjacency_onehot  # noqa: E402
from jnas.predictors.gp import GP  # noqa: E402
from jnas.strategies.bo import ONEHOT_LENGTHSCALE  # noqa: E402

OUTPUTSCALE = (0.5, 5.0)
NOISE = (1e-6, 1e-1)
LML_TOL = 1e-6
EI_RTOL = 1e-6
EI_SUBSET = 1e-2  # the EI check covers the candidates with EI >= this fraction of the largest


def ei_errors(ei_j: np.ndarray, ei_b: np.ndarray, floor: float) -> float:
    """Largest relative EI difference over the candidates whose BoTorch EI is at least ``floor`` x the largest."""
    sel = ei_b >= floor * ei_b.max()
    return float(np.max(np.abs(ei_j[sel] - ei_b[sel]) / ei_b[sel]))


def encode(space, idx: np.ndarray) -> np.ndarray:
    """``float64[len(idx), 30]`` one-hot codes of the architectures with enumeration indices ``idx``."""
    archs = jax.vmap(space.from_index)(jnp.asarray(idx))
    return np.asarray(jax.vmap(lambda a: adjacency_onehot(space, a))(archs), np.float64), archs


def load_data(bench, n: int, n_cands: int):
    sp = bench.space
    idx = np.random.default_rng(0).choice(sp.size, n, replace=False)
    X, archs = encode(sp, idx)
    rows = np.asarray(bench.rows(archs))
    y = bench.column(*bench.search_metric)[rows]
    if np.any(rows < 0) or not np.all(np.isfinite(y)):
        raise SystemExit("some training architectures have no finite search-metric value")
    cands, _ = encode(sp, np.random.default_rng(1).integers(0, sp.size, n_cands))
    return X, y, cands


def make_gp(restarts: int) -> GP:
    return GP(kernel="matern52", input_bounds=(0.0, 1.0), lengthscale_bounds=ONEHOT_LENGTHSCALE,
              outputscale_bounds=OUTPUTSCALE, noise_bounds=NOISE, optimizer="lbfgs", restarts=restarts)


def hypers_jnas(params) -> dict:
    return {"lengthscale": float(params.lengthscale[0, 0]), "outputscale": float(params.outputscale[0]),
            "noise": float(params.noise[0])}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------- BoTorch side


def botorch_model(Xt, zt):
    from botorch.models import SingleTaskGP
    from gpytorch.constraints import Interval
    from gpytorch.kernels import MaternKernel, ScaleKernel
    from gpytorch.likelihoods import GaussianLikelihood
    from gpytorch.means import ZeroMean

    # no priors anywhere (gpytorch's modules have none unless given): the objective is the plain LML
    covar = ScaleKernel(MaternKernel(nu=2.5, lengthscale_constraint=Interval(*ONEHOT_LENGTHSCALE)),
                        outputscale_constraint=Interval(*OUTPUTSCALE))
    lik = GaussianLikelihood(noise_constraint=Interval(*NOISE))
    return SingleTaskGP(Xt, zt[:, None], likelihood=lik, covar_module=covar, mean_module=ZeroMean(),
                        outcome_transform=None, input_transform=None).to(Xt)


def botorch_fit(Xt, zt, callback=None):
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model = botorch_model(Xt, zt)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    kwargs = {} if callback is None else {"optimizer_kwargs": {"callback": callback}}
    fit_gpytorch_mll(mll, **kwargs)
    return model, mll


def hypers_botorch(model) -> dict:
    return {"lengthscale": float(model.covar_module.base_kernel.lengthscale.item()),
            "outputscale": float(model.covar_module.outputscale.item()),
            "noise": float(model.likelihood.noise.item())}


def botorch_own_lml(model, mll) -> float:
    """gpytorch's log marginal likelihood at the model's hyperparameters (summed, not averaged over rows)."""
    import torch

    model.train()
    with torch.no_grad():
        val = mll(model(*model.train_inputs), model.train_targets).item() * model.train_targets.shape[-1]
    model.eval()
    return val


# ---------------------------------------------------------------- diagnostics


def jnas_diagnostics(X, y, key, reps: int) -> dict:
    """Seconds per jitted LML (+ gradient) at the box centre, and the objective evaluations (with and without
    gradient) of L-BFGS from each of the starts a ``restarts=4`` fit with ``key`` uses (the first is the
    box centre, the ``restarts=1`` start), each run alone and counted with host callbacks."""
    gp = make_gp(4)
    x, z, valid, *_ = gp._prepare(jnp.asarray(X), jnp.asarray(y), None)
    lml = gp._lml_fn(x, z, valid, unit=True)  # L-BFGS's coordinates: t = sigmoid(v) in the unit box
    p = gp.n_hyperparameters(X.shape[1])
    starts = jax.nn.sigmoid(jnp.concatenate([jnp.zeros((1, p)), jax.random.uniform(
        key, (gp.restarts - 1, p), minval=-2.0, maxval=2.0)]))  # as GP._ml2
    v0 = starts[0]
    vg = jax.jit(jax.value_and_grad(lambda v: -lml(v)))
    jax.block_until_ready(vg(v0))
    t_vg = statistics.median(timed(lambda: jax.block_until_ready(vg(v0)))[0] for _ in range(reps))
    f_only = jax.jit(lambda v: -lml(v))
    jax.block_until_ready(f_only(v0))
    t_f = statistics.median(timed(lambda: jax.block_until_ready(f_only(v0)))[0] for _ in range(reps))

    counts = {"value": 0, "value_and_grad": 0}

    def bump(kind):
        def cb():
            counts[kind] += 1
        return cb

    @jax.custom_jvp
    def counted(v):  # plain evaluation (the line search's trial points)
        jax.debug.callback(bump("value"))
        return -lml(v)

    @counted.defjvp
    def counted_jvp(primals, tangents):  # differentiated evaluation (value_and_grad at accepted points)
        jax.debug.callback(bump("value_and_grad"))
        return jax.jvp(lambda v: -lml(v), primals, tangents)

    def objective(v):
        loss = counted(v)
        return jnp.where(jnp.isfinite(loss), loss, jnp.inf)

    run = jax.jit(lambda v: gp._lbfgs_run(objective, v))
    jax.block_until_ready(run(v0))
    per_start = []
    for i in range(starts.shape[0]):
        counts.update(value=0, value_and_grad=0)
        _, (v, loss) = timed(lambda i=i: jax.block_until_ready(run(starts[i])))
        jax.effects_barrier()
        ls, os_, nz = gp._unpack(v, X.shape[1], unit=True)
        per_start.append({"start": [float(t) for t in starts[i]], "iterations": counts["value_and_grad"] - 1,
                          "value_and_grad_evals": counts["value_and_grad"], "value_only_evals": counts["value"],
                          "lml": -float(loss), "lengthscale": float(ls[0]), "outputscale": float(os_),
                          "noise": float(nz)})
    return {"seconds_per_lml_and_grad": t_vg, "seconds_per_lml": t_f, "lbfgs_max_iterations": gp.steps,
            "lbfgs_per_start": per_start}


def botorch_diagnostics(Xt, zt, reps: int) -> dict:
    """Seconds per LML + gradient (BoTorch's loss closure) at the initial point, and the L-BFGS-B iterations
    and closure calls of one fit."""
    from botorch.optim.closures import get_loss_closure_with_grads
    from botorch.optim.utils import get_parameters
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model = botorch_model(Xt, zt)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    closure = get_loss_closure_with_grads(mll, parameters=get_parameters(mll, requires_grad=True))
    closure()
    t_vg = statistics.median(timed(closure)[0] for _ in range(reps))

    iters = [0]
    calls = [0]
    model2 = botorch_model(Xt, zt)
    mll2 = ExactMarginalLogLikelihood(model2.likelihood, model2)
    forward = mll2.forward

    def counting_forward(*a, **k):
        calls[0] += 1
        return forward(*a, **k)

    mll2.forward = counting_forward
    from botorch.fit import fit_gpytorch_mll

    fit_gpytorch_mll(mll2, optimizer_kwargs={"callback": lambda params, res: iters.__setitem__(0, iters[0] + 1)})
    return {"seconds_per_lml_and_grad": t_vg, "lbfgsb_iterations": iters[0], "lml_and_grad_evals": calls[0]}


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="nb201/cifar10")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gp.json"))
    args = ap.parse_args()

    import botorch
    import gpytorch
    import torch

    torch.set_num_threads(2)
    warnings.filterwarnings("ignore", module="botorch")
    warnings.filterwarnings("ignore", module="linear_operator")
    load = os.getloadavg()[0]
    bench = get_benchmark(args.benchmark)
    X, y, cands = load_data(bench, args.n, args.candidates)
    z = (y - y.mean()) / y.std()  # population std, as jnas's GP._targets
    Xj, yj, cj = jnp.asarray(X), jnp.asarray(y), jnp.asarray(cands)
    Xt, zt = torch.tensor(X, dtype=torch.float64), torch.tensor(z, dtype=torch.float64)
    ct = torch.tensor(cands, dtype=torch.float64).unsqueeze(1)  # (m, 1, d): one point per q-batch
    key = jax.random.key(0)

    # ---- fits: compile + first call, then alternating steady-state repetitions
    gps = {r: make_gp(r) for r in (1, 4)}
    fits = {r: jax.jit(gps[r].fit) for r in (1, 4)}
    compile_s, jparams = {}, {}
    for r in (1, 4):
        compile_s[r], jparams[r] = timed(lambda r=r: jax.block_until_ready(fits[r](key, Xj, yj)))
    t_bt_first, (bt_model, bt_mll) = timed(lambda: botorch_fit(Xt, zt))
    t_fit = {"jnas_r1": [], "jnas_r4": [], "botorch": []}
    for _ in range(args.reps):
        for r in (1, 4):
            t_fit[f"jnas_r{r}"].append(timed(lambda r=r: jax.block_until_ready(fits[r](key, Xj, yj)))[0])
        t_fit["botorch"].append(timed(lambda: botorch_fit(Xt, zt))[0])

    # ---- the optimum: jnas's LML at every side's hyperparameters
    hyp = {"jnas_r1": hypers_jnas(jparams[1]), "jnas_r4": hypers_jnas(jparams[4]), "botorch": hypers_botorch(bt_model)}
    gp = gps[4]
    lml = {k: float(gp.log_marginal_likelihood(Xj, yj, h["lengthscale"], h["outputscale"], h["noise"]))
           for k, h in hyp.items()}
    lml_gpytorch = botorch_own_lml(bt_model, bt_mll)
    passed = {k: lml[k] >= lml["botorch"] - LML_TOL for k in ("jnas_r1", "jnas_r4")}

    # ---- EI on 100,000 candidates with BoTorch's hyperparameters on both sides
    from botorch.acquisition.analytic import ExpectedImprovement

    h = hyp["botorch"]
    cond = gp.condition(Xj, yj, h["lengthscale"], h["outputscale"], h["noise"])

    @jax.jit
    def jnas_ei(params, c, best):
        mean, var = gp.predict(params, c)
        return expected_improvement(mean, var, best)

    best_y = jnp.asarray(y.max())
    bt_model.eval()
    acq = ExpectedImprovement(bt_model, best_f=float(z.max()))

    def bt_ei():
        with torch.no_grad():
            return acq(ct)

    t_ei_first_j, ei_j = timed(lambda: jax.block_until_ready(jnas_ei(cond, cj, best_y)))
    t_ei_first_b, ei_b = timed(bt_ei)
    t_ei = {"jnas": [], "botorch": []}
    for _ in range(args.reps):
        t_ei["jnas"].append(timed(lambda: jax.block_until_ready(jnas_ei(cond, cj, best_y)))[0])
        t_ei["botorch"].append(timed(bt_ei)[0])
    ei_j = np.asarray(ei_j) / y.std()  # target units -> standardised units
    ei_b = ei_b.numpy()
    # gpytorch factors K + noise I as it is; jnas adds a 1e-8 jitter (x64), which against a fitted noise near
    # 1e-6 moves the variance at the training points by a fraction of a percent and, through the Gaussian
    # tail, the tiny EI values of the candidates far below the incumbent. The same model without the jitter
    # shows what is left: float round-off and the two closed forms' cancellation deep in the tail.
    gp0 = GP(kernel="matern52", input_bounds=(0.0, 1.0), lengthscale_bounds=ONEHOT_LENGTHSCALE,
             outputscale_bounds=OUTPUTSCALE, noise_bounds=NOISE, jitter=0.0)
    cond0 = gp0.condition(Xj, yj, h["lengthscale"], h["outputscale"], h["noise"])
    ei_j0 = np.asarray(expected_improvement(*gp0.predict(cond0, cj), best_y)) / y.std()
    ei_cmp = {
        "subset": f"candidates with BoTorch EI >= {EI_SUBSET:g} x max",
        "subset_size": int(np.sum(ei_b >= EI_SUBSET * ei_b.max())),
        "max_rel_err_subset": ei_errors(ei_j, ei_b, EI_SUBSET),
        "max_rel_err_ei_above_1e-8_max": ei_errors(ei_j, ei_b, 1e-8),
        "max_abs_err_over_max_ei": float(np.max(np.abs(ei_j - ei_b)) / ei_b.max()),
        "argmax_agrees": bool(np.argmax(ei_j) == np.argmax(ei_b)),
        "jitter0_max_rel_err_subset": ei_errors(ei_j0, ei_b, EI_SUBSET),
        "jitter0_max_rel_err_ei_above_1e-8_max": ei_errors(ei_j0, ei_b, 1e-8),
        "rtol": EI_RTOL,
    }
    ei_ok = ei_cmp["max_rel_err_subset"] <= EI_RTOL and ei_cmp["argmax_agrees"]
    ei_cmp["result"] = "PASS" if ei_ok else "FAIL"

    # ---- where the time goes
    diag = {"jnas": jnas_diagnostics(X, y, key, args.reps * 3), "botorch": botorch_diagnostics(Xt, zt, args.reps * 3)}

    med = {k: statistics.median(v) for k, v in {**t_fit, **{f"ei_{k}": v for k, v in t_ei.items()}}.items()}
    rows = [
        ("fit, restarts=1 (steady)", med["jnas_r1"], med["botorch"]),
        ("fit, restarts=4 (steady)", med["jnas_r4"], med["botorch"]),
        (f"EI, {args.candidates:,} cands (steady)", med["ei_jnas"], med["ei_botorch"]),
    ]
    print(f"{args.benchmark}: {args.n} random architectures, one-hot (d={X.shape[1]}), float64, "
          f"median of {args.reps}; BoTorch {botorch.__version__} without priors")
    print(f"{'workload':34} {'jnas s':>9} {'botorch s':>10} {'ratio':>7}")
    for name, j, b in rows:
        print(f"{name:34} {j:9.4f} {b:10.4f} {b / j:6.1f}x")
    print(f"first calls: jnas fit compile+run r=1 {compile_s[1]:.2f} s, r=4 {compile_s[4]:.2f} s; "
          f"BoTorch first fit {t_bt_first:.2f} s; EI jnas compile+run {t_ei_first_j:.2f} s, "
          f"BoTorch first {t_ei_first_b:.2f} s")
    print("hyperparameters (lengthscale, outputscale, noise) and jnas LML there:")
    for k, hh in hyp.items():
        print(f"  {k:8} {hh['lengthscale']:9.5f} {hh['outputscale']:8.5f} {hh['noise']:10.3e}  LML {lml[k]:.6f}")
    print(f"  gpytorch's own LML at BoTorch's optimum: {lml_gpytorch:.6f}")
    for k, ok in passed.items():
        print(f"optimum check {k}: LML {lml[k]:.6f} >= BoTorch {lml['botorch']:.6f} - {LML_TOL:g}: "
              f"{'PASS' if ok else 'FAIL'}")
    print(f"EI agreement (BoTorch's hyperparameters on both sides): max rel. err {ei_cmp['max_rel_err_subset']:.2e} "
          f"on the {ei_cmp['subset_size']:,} candidates with EI >= {EI_SUBSET:g} x max, same argmax "
          f"{ei_cmp['argmax_agrees']}: {ei_cmp['result']}")
    print(f"  all EI > 1e-8 x max: rel. err {ei_cmp['max_rel_err_ei_above_1e-8_max']:.2e} (jnas jitter 1e-8), "
          f"{ei_cmp['jitter0_max_rel_err_ei_above_1e-8_max']:.2e} without it "
          f"(subset {ei_cmp['jitter0_max_rel_err_subset']:.2e}); max abs. err / max EI "
          f"{ei_cmp['max_abs_err_over_max_ei']:.2e}")
    dj, db = diag["jnas"], diag["botorch"]
    print(f"per evaluation: jnas LML+grad {dj['seconds_per_lml_and_grad'] * 1e3:.2f} ms (LML alone "
          f"{dj['seconds_per_lml'] * 1e3:.2f} ms), BoTorch LML+grad {db['seconds_per_lml_and_grad'] * 1e3:.2f} ms")
    print(f"BoTorch L-BFGS-B: {db['lbfgsb_iterations']} iterations, {db['lml_and_grad_evals']} LML+grad evaluations")
    print(f"jnas L-BFGS (at most {dj['lbfgs_max_iterations']} iterations) from each start of the restarts=4 fit, "
          "run alone (start 0 = the restarts=1 fit):")
    for i, st in enumerate(dj["lbfgs_per_start"]):
        print(f"  start {i}: {st['iterations']:3d} iterations, {st['value_and_grad_evals']:3d} LML+grad + "
              f"{st['value_only_evals']:3d} LML-only, LML {st['lml']:.6f}")

    record = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine_summary(),
        "load_average_start": load, "python": platform.python_version(), "jax": jax.__version__,
        "torch": torch.__version__, "botorch": botorch.__version__, "gpytorch": gpytorch.__version__,
        "torch_threads": torch.get_num_threads(), "benchmark": args.benchmark,
        "search_metric": list(bench.search_metric), "n_train": args.n, "n_features": int(X.shape[1]),
        "n_candidates": args.candidates, "reps": args.reps, "dtype": "float64",
        "model": {"kernel": "matern52", "ard": False, "lengthscale_bounds": list(ONEHOT_LENGTHSCALE),
                  "outputscale_bounds": list(OUTPUTSCALE), "noise_bounds": list(NOISE), "mean": "zero",
                  "botorch_priors": "removed (none on any hyperparameter), no input/outcome transform",
                  "targets": "jnas: raw y (standardised internally); BoTorch: z = (y - mean) / population std"},
        "seconds": {
            "fit_steady_median": {"jnas_restarts1": med["jnas_r1"], "jnas_restarts4": med["jnas_r4"],
                                  "botorch": med["botorch"]},
            "fit_all": t_fit,
            "fit_first_call": {"jnas_restarts1_compile_and_run": compile_s[1],
                               "jnas_restarts4_compile_and_run": compile_s[4], "botorch": t_bt_first},
            "ei_steady_median": {"jnas": med["ei_jnas"], "botorch": med["ei_botorch"]},
            "ei_all": t_ei,
            "ei_first_call": {"jnas_compile_and_run": t_ei_first_j, "botorch": t_ei_first_b},
        },
        "ratio_botorch_over_jnas": {"fit_restarts1": med["botorch"] / med["jnas_r1"],
                                    "fit_restarts4": med["botorch"] / med["jnas_r4"],
                                    "ei": med["ei_botorch"] / med["ei_jnas"]},
        "targets": {"fit_5x_restarts1": med["botorch"] / med["jnas_r1"] >= 5,
                    "fit_5x_restarts4": med["botorch"] / med["jnas_r4"] >= 5,
                    "ei_5x": med["ei_botorch"] / med["ei_jnas"] >= 5},
        "hyperparameters": hyp,
        "jnas_lml_at": lml, "gpytorch_lml_at_botorch_optimum": lml_gpytorch,
        "optimum_check": {"tolerance": LML_TOL, "jnas_restarts1": "PASS" if passed["jnas_r1"] else "FAIL",
                          "jnas_restarts4": "PASS" if passed["jnas_r4"] else "FAIL"},
        "ei_check": ei_cmp,
        "diagnostics": diag,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")
    if not (all(passed.values()) and ei_ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
