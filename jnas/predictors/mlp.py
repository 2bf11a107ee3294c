"""BANANAS MLP ensemble (White et al., "BANANAS: Bayesian Optimization with
Neural Architectures for Neural Architecture Search").

``members`` fully-connected ReLU networks, identical except for their
initialisation key, each trained on the same data; their spread is the
predictive uncertainty. Paper defaults: 5 members of 10 hidden layers of width
20, Adam with learning rate 0.01, mean absolute error, on the path encoding.
These nets are tiny (≈5k weights on the NB201 path encoding), so the
defaults are cheap even on CPU: the cost is ``steps`` sequential updates, and
the hidden layers run as one ``lax.scan`` so that depth does not lengthen
compilation; ``layers``/``width`` can be lowered freely.

Training is full-batch by default (``batch_size=None``): each step uses every
real row. ``batch_size=B`` draws ``B`` real rows per step instead. Targets are
standardised with the mean and std of the real rows and predictions mapped
back, so ``predict`` is in the units of ``y``. Features are a ``float[n, d]``
array or, for wide sparse encodings, a ``MultiHot`` (``path_multihot``): the
same model, its first layer a gather instead of a ``d``-column matmul. Rows where ``mask`` is False,
and real rows with non-finite targets, take no part.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jnas.encodings.multihot import MultiHot
from jnas.errors import bad_argument, check_int, check_positive
from jnas.predictors.base import Predictor, full_mask

LOSSES = ("mae", "mse")


def init_mlp(key: jax.Array, n_features: int, layers: int, width: int) -> dict:
    """One network: ``layers`` hidden ReLU layers of ``width`` units and a linear output.

    ``{"w_in" float[d, width], "b_in" float[width], "w_hid" float[layers-1, width, width],
    "b_hid" float[layers-1, width], "w_out" float[width], "b_out" float[]}``. The
    identical hidden layers are stacked so that they run as one ``lax.scan``
    (compile time does not grow with depth). He-normal weights (variance
    2 / fan-in keeps a deep ReLU stack's activations from shrinking), zero biases.
    """
    n_in, n_hid = n_features * width, (layers - 1) * width * width
    # one draw sliced into every matrix: a single PRNG call site compiles much faster on CPU
    flat = jax.random.normal(key, (n_in + n_hid + width,), jnp.float32)
    return {
        "w_in": flat[:n_in].reshape(n_features, width) * jnp.sqrt(2.0 / n_features),
        "b_in": jnp.zeros((width,), jnp.float32),
        "w_hid": flat[n_in : n_in + n_hid].reshape(layers - 1, width, width) * jnp.sqrt(2.0 / width),
        "b_hid": jnp.zeros((layers - 1, width), jnp.float32),
        "w_out": flat[n_in + n_hid :] * jnp.sqrt(1.0 / width),  # no ReLU after the output
        "b_out": jnp.zeros((), jnp.float32),
    }


def mlp_apply(net: dict, X) -> jax.Array:
    """Raw outputs ``float[n]`` of one network on features ``X float[n, d]`` (an array or a ``MultiHot``)."""
    first = X.matmul(net["w_in"]) if isinstance(X, MultiHot) else X @ net["w_in"]
    h = jax.nn.relu(first + net["b_in"])
    h, _ = jax.lax.scan(lambda h, wb: (jax.nn.relu(h @ wb[0] + wb[1]), None), h, (net["w_hid"], net["b_hid"]))
    return h @ net["w_out"] + net["b_out"]


def _check_features(X, n: int | None = None):
    if isinstance(X, MultiHot):
        if X.ndim != 2 or (n is not None and X.shape[0] != n):
            raise bad_argument("X", X.shape, f"{'n' if n is None else n} rows of MultiHot features")
        return X
    if isinstance(X, (tuple, list, dict)):
        raise bad_argument("X", type(X).__name__, "a float[n, d] feature matrix (e.g. the path encoding)")
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise bad_argument("X", X.shape, "a float[n, d] feature matrix (e.g. the path encoding)")
    if n is not None and X.shape[0] != n:
        raise bad_argument("X", X.shape, f"{n} rows (one per target in y)")
    return X.astype(jnp.float32)


class MLPEnsemble(Predictor):
    """Ensemble of MLP regressors on vector features; ``predict`` gives the members' mean and variance.

    Parameters
    ----------
    members: ensemble size (paper: 5).
    layers, width: hidden layers and their width (paper: 10 × 20).
    loss: ``"mae"`` (paper) or ``"mse"``, on standardised targets.
    steps: Adam steps per member (full-batch steps are epochs).
    lr: Adam learning rate (paper: 0.01), constant.
    batch_size: ``None`` for full-batch training, else rows drawn per step.
    """

    name = "mlp_ensemble"

    def __init__(
        self,
        members: int = 5,
        layers: int = 10,
        width: int = 20,
        loss: str = "mae",
        steps: int = 500,
        lr: float = 0.01,
        batch_size: int | None = None,
    ):
        members, layers, width, steps = (
            check_int(arg, val, 1, expected="a positive integer")
            for arg, val in (("members", members), ("layers", layers), ("width", width), ("steps", steps))
        )
        if loss not in LOSSES:
            raise bad_argument("loss", loss, "'mae' or 'mse'")
        lr = check_positive("lr", lr)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1, expected="None or a positive integer")
        self.members, self.layers, self.width, self.loss = members, layers, width, loss
        self.steps, self.lr, self.batch_size = steps, lr, batch_size

    def init(self, key: jax.Array, n_features: int) -> dict:
        """Untrained ensemble parameters for features of width ``n_features`` (the pytree ``fit`` returns)."""
        nets = jax.vmap(lambda k: init_mlp(k, n_features, self.layers, self.width))(jax.random.split(key, self.members))
        return {"nets": nets, "scale": jnp.array([0.0, 1.0])}

    def fit(self, key: jax.Array, X, y: jax.Array, mask: jax.Array | None = None) -> dict:
        """Train every member on features ``X float[n, d]`` and targets ``y float[n]``.

        Returns ``{"nets": init_mlp pytree with a leading members axis, "scale": float[2] (mean, std of y)}``.
        """
        y = jnp.asarray(y)
        if y.ndim != 1:
            raise bad_argument("y", y.shape, "a float[n] vector")
        X = _check_features(X, y.shape[0])
        mask = full_mask(y, None if mask is None else jnp.asarray(mask))
        if mask.shape != y.shape:
            raise bad_argument("mask", mask.shape, f"a bool[{y.shape[0]}] vector like y")
        y = y.astype(jnp.float32)
        valid = mask.astype(bool) & jnp.isfinite(y)
        # garbage in unused rows must not reach a 0-weight as NaN
        X = X.keep_rows(valid) if isinstance(X, MultiHot) else jnp.where(valid[:, None], X, 0.0)
        cnt = jnp.maximum(valid.sum(), 1)
        mu = jnp.where(valid, y, 0.0).sum() / cnt
        sd = jnp.sqrt(jnp.where(valid, (y - mu) ** 2, 0.0).sum() / cnt)
        sd = jnp.where(sd > 0, sd, 1.0)
        z = jnp.where(valid, (y - mu) / sd, 0.0)

        err = jnp.abs if self.loss == "mae" else jnp.square
        bs = self.batch_size
        opt = optax.adam(self.lr)
        order = jnp.argsort(~valid, stable=True)  # real rows first, in their order

        def loss_fn(net, k):
            if bs is None:
                return jnp.where(valid, err(mlp_apply(net, X) - z), 0.0).sum() / cnt
            # draws in rank space: masked rows change neither the rows nor the random stream
            r = jnp.floor(jax.random.uniform(k, (bs,)) * valid.sum()).astype(jnp.int32)
            idx = order[jnp.clip(r, 0, y.shape[0] - 1)]
            return jnp.where(valid.any(), err(mlp_apply(net, X[idx]) - z[idx]).mean(), 0.0)

        def train_one(k):
            k_init, k_train = jax.random.split(k)
            net = init_mlp(k_init, X.shape[1], self.layers, self.width)

            def step(carry, ks):
                p, s = carry
                g = jax.grad(loss_fn)(p, ks)
                upd, s = opt.update(g, s, p)
                return (optax.apply_updates(p, upd), s), None

            # full-batch steps draw nothing: no per-step keys to split
            keys = None if bs is None else jax.random.split(k_train, self.steps)
            (net, _), _ = jax.lax.scan(step, (net, opt.init(net)), keys, length=self.steps)
            return net

        nets = jax.vmap(train_one)(jax.random.split(key, self.members))
        return {"nets": nets, "scale": jnp.stack([mu, sd])}

    def predict_members(self, params: dict, X) -> jax.Array:
        """Every member's prediction, ``float[members, m]`` in the units of ``y`` (for Thompson sampling)."""
        X = _check_features(X)
        raw = jax.vmap(mlp_apply, in_axes=(0, None))(params["nets"], X)
        return raw * params["scale"][1] + params["scale"][0]

    def predict(self, params: dict, X) -> tuple[jax.Array, jax.Array]:
        """Mean and variance (over members, ``ddof=0``) of the members' predictions, ``float[m]`` each."""
        p = self.predict_members(params, X)
        return p.mean(0), p.var(0)
