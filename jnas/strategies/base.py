"""The strategy protocol and the kit every strategy is built from.

Protocol: a pure ask/tell state machine with fixed-capacity state.
``state = s.init(key)``; ``archs, state = s.ask(state, key)``;
``state = s.tell(state, archs, values)``. ``archs`` carries a leading batch
axis of ``s.batch_size``; ``values`` is ``float[batch_size]`` (multi-objective:
``float[batch_size, M]``) and is *maximised* (the runner negates lower-is-better metrics). A NaN value is a
failed evaluation; what it counts as is the strategy's ``on_failure`` policy
and the search goes on. All three functions are jittable, so a run on a
device-resident benchmark is one ``lax.scan`` and seeds ``vmap``.

The kit (``Strategy``) does the bookkeeping every strategy needs, once:

* options: declared ``Option``s, parsed and checked, with ``aliases``
  (``batch_option``: the batch size is always ``batch_size``; ``q``,
  ``per_iteration``, ``k`` are accepted where a strategy declares them);
  ``failure_option``: the ``on_failure`` policy;
* construction: ``validate()`` (cross-option checks, cheap), the
  ``budget <= space size`` check for strategies with ``repeats = False``,
  ``n_steps``/``capacity``, then ``setup()`` (the expensive, one-off work:
  models, encodings of the whole space, trees);
* state: ``State(history, inner)``; ``history`` is a ``history.History``
  (count, best/worst finite value, and, by class flag, every told
  architecture and value and the set of queried architectures); ``inner``
  is the strategy's own pytree;
* ``init``/``ask``/``tell`` wrap the strategy's ``_init``/``_ask``/``_tell``:
  ``tell`` records the batch in the history, applies ``on_failure`` and hands
  the filled values to ``_tell``.

A strategy that predates the kit may still override ``init``/``ask``/``tell``
itself (its state is then its own); see docs/architecture.md, "How to add a
strategy".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jnas.errors import JnasError
from jnas.spaces.base import Space
from jnas.strategies import history as hist
from jnas.strategies.history import History

#: what a failed evaluation (NaN) counts as, by ``on_failure`` value
FAILURE_POLICIES = {
    "-inf": "a failed evaluation (NaN) counts as -inf: it never wins a comparison",
    "worst": "a failed (non-finite) evaluation counts as the worst finite value told so far (0 before any)",
}


@dataclasses.dataclass(frozen=True)
class Option:
    """A strategy option settable with ``--set name=value`` (or ``--set alias=value``)."""

    name: str
    type: type
    default: Any
    expected: str  # human description used in errors, e.g. "an integer >= 2"
    check: Callable[[Any], bool] = lambda v: True
    help: str = ""
    aliases: tuple[str, ...] = ()  # other accepted names (older spellings); settings() reports ``name``
    #: ``(condition on the strategy, what it says)``: an option set by the user where the condition is false
    #: would be silently ignored, so it is refused instead (e.g. ``gp_warmup`` without ``gp_samples``)
    applies: tuple[Callable[[Any], bool], str] | None = None


def batch_option(default: int = 1, aliases: tuple[str, ...] = (), help: str = "queries per step") -> Option:
    """The canonical batch-size option ``batch_size`` (``aliases``: the strategy's older names for it)."""
    return Option("batch_size", int, default, "an integer >= 1", lambda v: v >= 1, help, aliases=tuple(aliases))


def failure_option(default: str = "-inf", choices: tuple[str, ...] = tuple(FAILURE_POLICIES)) -> Option:
    """The ``on_failure`` option: how a failed evaluation counts (``FAILURE_POLICIES``)."""
    return Option("on_failure", str, default, f"one of {', '.join(choices)}", lambda v: v in choices,
                  "what a failed evaluation counts as: " + "; ".join(f"{c}: {FAILURE_POLICIES[c]}" for c in choices))


def failed_to_worst(values: jax.Array) -> jax.Array:
    """Map failed evaluations (NaN) to -inf so they never win a comparison (``on_failure="-inf"``)."""
    return jnp.where(jnp.isnan(values), -jnp.inf, values)


def fill_failures(policy: str, values: jax.Array, worst: jax.Array) -> jax.Array:
    """``values`` with failures replaced by ``policy`` (``FAILURE_POLICIES``); ``worst``: worst finite value told."""
    if policy == "-inf":
        return failed_to_worst(values)
    if policy == "worst":
        return jnp.where(jnp.isfinite(values), values, jnp.where(jnp.isfinite(worst), worst, 0).astype(values.dtype))
    raise ValueError(f"on_failure: unknown policy {policy!r}")


class State(NamedTuple):
    """State of a kit strategy: the shared ``History`` and the strategy's own pytree."""

    history: History
    inner: Any


class Strategy:
    """Base class: validated options, the space, the budget and the shared bookkeeping.

    Subclasses declare ``options`` and implement ``_ask`` (and usually
    ``_init``, ``_tell``); class flags say what the kit keeps for them:

    * ``repeats`` (default True): False if the strategy never queries an
      architecture twice on an enumerable space; then ``budget > space.size``
      is refused at construction, with one message for every such strategy;
    * ``keeps_history``: keep every told architecture and value in
      ``state.history`` (``capacity`` rows);
    * ``tracks_queried``: keep the set of told architectures
      (``history.seen``);
    * ``on_failure``: the failure policy when the strategy declares no
      ``failure_option`` (its values are unused, e.g. random search);
    * ``objectives``: ``"single"`` (default), ``"multi"`` (needs two or more)
      or ``"any"``. With ``n_objectives = M > 1`` (a constructor keyword)
      ``tell`` receives ``values float[batch_size, M]``, every objective
      maximised, and the history keeps them so; ``known_objectives`` (a
      constructor keyword) gives the objectives that are counted from the
      architecture, for every architecture of an enumerable space;
    * ``multi_fidelity``: the strategy chooses the fidelity of every query
      (``fidelity_of``); it needs ``fidelities`` (a constructor keyword: the
      fidelities the evaluator offers for the search metric, ascending), its
      ``budget`` counts full evaluations' worth of cost, and ``plan_steps``
      decides how many queries that buys (``n_queries``, ``query_cost``);
    * ``asynchronous`` (default True): ``ask`` leaves the strategy's own
      state unchanged (only ``tell`` moves it), so a search may ask again
      while earlier asks are still being evaluated (``--mode async``); False
      for strategies whose ``ask`` keeps what their ``tell`` needs (a
      selected leaf, a walk's position) or that follow a fixed schedule.
    """

    name: str = ""
    options: tuple[Option, ...] = ()
    batch_size: int = 1
    repeats: bool = True
    keeps_history: bool = False
    tracks_queried: bool = False
    on_failure: str = "-inf"
    objectives: str = "single"
    multi_fidelity: bool = False
    asynchronous: bool = True

    def __init__(self, space: Space, budget: int, *, n_objectives: int = 1, known_objectives=None,
                 fidelities=None, **opts):
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise JnasError(f"budget: got {budget!r}, expected a positive integer")
        if isinstance(n_objectives, bool) or not isinstance(n_objectives, int) or n_objectives < 1:
            raise JnasError(f"n_objectives: got {n_objectives!r}, expected a positive integer")
        if n_objectives > 1 and self.objectives == "single":
            raise JnasError(f"objectives: strategy {self.name!r} optimises one objective, got {n_objectives}")
        if n_objectives == 1 and self.objectives == "multi":
            raise JnasError(f"objectives: strategy {self.name!r} needs two or more objectives, got one")
        self.space = space
        self.budget = budget
        self.n_objectives = n_objectives
        #: ``{objective position: float[space.size]}``: objectives counted from the architecture (parameters,
        #: FLOPs), maximised, by space index; a model-based strategy computes them instead of modelling them
        self.known_objectives = dict(known_objectives or {})
        if any(not 0 <= j < n_objectives for j in self.known_objectives):
            raise JnasError(f"known_objectives: got positions {sorted(self.known_objectives)}, expected positions "
                            f"of the {n_objectives} objectives")
        if self.multi_fidelity:
            if not fidelities:
                raise JnasError(f"fidelities: strategy {self.name!r} chooses a fidelity for every query and needs "
                                "the fidelities the evaluator offers")
            self.offered_fidelities = tuple(sorted(int(f) for f in fidelities))
        self._set_options(opts)
        self.validate()
        self.check_budget()
        self.n_steps = self.plan_steps()
        self.capacity = self.n_steps * self.batch_size
        self.setup()

    # ----- construction ---------------------------------------------------------------
    def _set_options(self, opts: dict) -> None:
        known = {o.name: o for o in self.options}
        alias_of = {a: o.name for o in self.options for a in o.aliases}
        given: dict[str, tuple[str, Any]] = {}
        for k, v in opts.items():
            canon = k if k in known else alias_of.get(k)
            if canon is None:
                valid = ", ".join(o.name + (f" (alias {', '.join(o.aliases)})" if o.aliases else "")
                                  for o in self.options) or "none"
                raise JnasError(f"--set {k}: unknown option for strategy {self.name!r}; valid options: {valid}")
            if canon in given:
                other = given[canon][0]
                raise JnasError(f"--set {k}: the same option as {other} ({canon}); give one of them, not both")
            given[canon] = (k, v)
        for o in self.options:
            typed, v = given.get(o.name, (o.name, o.default))
            try:
                v = o.type(v)
            except (TypeError, ValueError):
                raise JnasError(f"--set {typed}: got {v!r}, expected {o.expected}") from None
            if not o.check(v):
                raise JnasError(f"--set {typed}: got {v!r}, expected {o.expected}")
            setattr(self, o.name, v)
            for a in o.aliases:  # older spellings stay readable (``s.q``, ``s.per_iteration``)
                setattr(self, a, v)
        for o in self.options:
            if o.name in given and o.applies is not None and not o.applies[0](self):
                raise JnasError(f"--set {given[o.name][0]}: has no effect unless {o.applies[1]}")

    def validate(self) -> None:
        """Cross-option and option/space checks (override); raise ``JnasError``. Cheap, builds nothing."""

    def check_budget(self) -> None:
        """Refuse ``budget > space.size`` on an enumerable space for a strategy that never repeats."""
        sp = self.space
        if not self.repeats and sp.enumerable and self.budget > sp.size:
            raise JnasError(
                f"budget: got {self.budget}, expected at most {sp.size} "
                f"(the size of space {sp.name!r}; {self.name} never repeats an architecture)"
            )

    def plan_steps(self) -> int:
        """How many ``ask`` steps the budget buys (override): ``ceil(budget / batch_size)``."""
        return math.ceil(self.budget / self.batch_size)

    @property
    def n_queries(self) -> int:
        """Queries a run makes: the budget, or for a multi-fidelity strategy what its budget of cost buys."""
        return self.budget

    def setup(self) -> None:
        """One-off work before the first ``init`` (override): build models, encode the space, build trees."""

    def check_metric(self, info) -> None:
        """Refuse a search metric the strategy cannot use (override; ``info`` is a ``MetricInfo``).

        Called by ``jnas.runs.search`` before a run, so a wrong pairing is a one-line error, not a wrong result.
        """

    def settings(self) -> dict:
        """The option values in force, by canonical name (JSON-ready)."""
        return {o.name: getattr(self, o.name) for o in self.options}

    # ----- the protocol -----------------------------------------------------------------
    def init(self, key: jax.Array) -> State:
        """``State(empty history, self._init(key))``."""
        return State(self.empty_history(), self._init(key))

    def ask(self, state: State, key: jax.Array):
        """``(archs, state)``: ``self._ask``; the history is unchanged."""
        archs, inner = self._ask(state, key)
        n = jax.tree.leaves(archs)[0].shape[0]
        if n != self.batch_size:
            raise ValueError(f"{self.name}: _ask returned {n} architectures, expected batch_size={self.batch_size}")
        return archs, State(state.history, inner)

    def tell(self, state: State, archs, values: jax.Array) -> State:
        """Record the batch in the history, apply ``on_failure``, then ``self._tell``."""
        h = hist.record(self.space, state.history, archs, values)
        filled = self.fill_failures(jnp.asarray(values).astype(h.best.dtype), h)
        return State(h, self._tell(State(h, state.inner), archs, filled))

    def fidelity_of(self, state: State) -> jax.Array:
        """``int32[batch_size]``: the fidelity of each architecture ``ask`` just returned (``state`` is the
        state it returned); only multi-fidelity strategies choose one."""
        raise NotImplementedError(f"{self.name}: not a multi-fidelity strategy")

    # ----- what a strategy implements ------------------------------------------------------
    def _init(self, key: jax.Array):
        """The strategy's own initial state (a pytree; default: none)."""
        return ()

    def _ask(self, state: State, key: jax.Array):
        """``(archs, inner)``: ``batch_size`` architectures (leading axis) and the new inner state."""
        raise NotImplementedError

    def _tell(self, state: State, archs, values: jax.Array):
        """The new inner state. ``state.history`` already holds this batch (its rows are
        ``count - batch_size .. count - 1``); ``values`` are the told values after ``on_failure``."""
        return state.inner

    # ----- helpers for strategies ---------------------------------------------------------
    def empty_history(self) -> History:
        """An empty history shaped by the class flags."""
        return hist.empty(self.space, self.capacity, keep=self.keeps_history, track=self.tracks_queried,
                          n_objectives=self.n_objectives)

    def fill_failures(self, values: jax.Array, h: History) -> jax.Array:
        """``values`` with failures replaced per ``self.on_failure`` (``worst``: the history's worst so far)."""
        return fill_failures(self.on_failure, values, h.worst)

    def observations(self, state: State):
        """``(archs, values, mask)`` of the history: values after ``on_failure`` (-inf in rows not yet
        told) and ``mask`` marking told rows with a finite value (what a surrogate is fit on)."""
        h = state.history
        live = hist.live(h)
        if self.n_objectives > 1:  # rows ``[capacity, M]``: a row is usable when every objective is finite
            vals = jnp.where(live[:, None], self.fill_failures(h.values, h), -jnp.inf)
            return h.archs, vals, live & jnp.isfinite(vals).all(axis=1)
        vals = jnp.where(live, self.fill_failures(h.values, h), -jnp.inf)
        return h.archs, vals, live & jnp.isfinite(vals)

    def seen(self, state: State, archs) -> jax.Array:
        """``bool[n]``: which of a batch of architectures were told before (needs ``tracks_queried``)."""
        return hist.seen(self.space, state.history, archs)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"<strategy {self.name}({opts}) on {self.space.name}, budget {self.budget}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


def stack1(arch):
    """Add a leading batch axis of 1 to an architecture pytree."""
    return jax.tree.map(lambda x: x[None], arch)


def unstack1(archs):
    """Drop the leading batch axis of 1."""
    return jax.tree.map(lambda x: x[0], archs)


def select(pred, a, b):
    """Pytree ``where``: ``a`` if ``pred`` else ``b`` (scalar predicate)."""
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)
