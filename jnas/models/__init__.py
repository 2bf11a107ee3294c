"""Flax (NNX) networks built from architecture arrays.

``build_network(space, arch, num_classes=..., rngs=...)`` returns an
``nnx.Module`` whose ``__call__(x)`` maps float images ``[B, H, W, C]``
(NHWC) to logits ``[B, num_classes]``. Train/eval behaviour (BatchNorm
statistics, drop-path) follows flax's mode switch (``model.train()`` /
``model.eval()``). Each space's module exposes ``build(arch, *, num_classes,
rngs, **options)``; a space may reuse another's module through a conversion
of its architectures (``nb201-3`` builds the NB201 network of
``space.to_nb201(arch)``); ``jnas.models.cost`` reports parameters, FLOPs and
activation memory of any built network without compiling it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect

import numpy as np

from jnas.errors import JnasError, bad_argument, is_int, is_number, unknown_name

# space name -> (module holding ``build``, options that space fixes[, name of the space method that turns an
# architecture into the one ``build`` takes]); imported lazily (flax import is slow)
_BUILDERS = {
    "nb201": ("jnas.models.nb201", {}),
    "nb201-3": ("jnas.models.nb201", {}, "to_nb201"),  # the NB201 network of the same cell
    "nb101": ("jnas.models.nb101", {}),
    "darts": ("jnas.models.darts", {"space": "darts"}),
    "darts-blocks": ("jnas.models.darts", {"space": "darts-blocks"}),  # PNAS's cells of 1..4 nodes
    "convnet": ("jnas.models.convnet", {"space": "convnet"}),
    "convnet-small": ("jnas.models.convnet", {"space": "convnet-small"}),
    "nago": ("jnas.models.nago", {"generator": "hnag"}),
    "rnag": ("jnas.models.nago", {"generator": "rnag"}),
}


def __getattr__(name):
    # GENERATED (old constant): spaces whose networks are drawn from the architecture and a seed,
    # read from the spaces themselves (``Space.generated``) on first use.
    if name == "GENERATED":
        from jnas.spaces import get_space

        return frozenset(n for n in _BUILDERS if get_space(n).generated)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def names() -> list[str]:
    """Space names that have a network builder."""
    return sorted(_BUILDERS)


def _builder(space: str):
    """``(module, options the space fixes)`` of ``space``."""
    if space not in _BUILDERS:
        raise unknown_name("network space", space, _BUILDERS)
    module, fixed = _BUILDERS[space][:2]
    return importlib.import_module(module), fixed


def _builder_arch(space: str, arch):
    """``arch`` as the architecture the builder of ``space`` takes (the space's own, or its conversion)."""
    if len(_BUILDERS[space]) < 3:
        return arch
    import jax

    from jnas.spaces import get_space

    sp = get_space(space)
    want = [tuple(np.shape(x)) for x in jax.tree.leaves(sp.template())]
    try:
        ok = [tuple(np.shape(x)) for x in jax.tree.leaves(arch)] == want and bool(sp.is_valid(arch))
    except (TypeError, ValueError):  # e.g. a traced or non-numeric array
        ok = False
    if not ok:
        got = np.asarray(arch).tolist() if not isinstance(arch, jax.core.Tracer) else type(arch).__name__
        shapes = ", ".join(str(list(w)) for w in want)
        raise bad_argument("arch", got, f"a concrete member of space {space!r} (shape {shapes})")
    return getattr(sp, _BUILDERS[space][2])(arch)


def network_options(space: str) -> dict:
    """The network options of ``space``: ``{name: default}`` (``None`` where the builder gives none).

    Read from the signature of the space's ``build`` (its keyword parameters
    except ``num_classes``, ``rngs`` and the options the space fixes); a builder
    taking ``**settings`` names those in its module's ``extra_options(**fixed)``.
    """
    module, fixed = _builder(space)
    out = {}
    for p in list(inspect.signature(module.build).parameters.values())[1:]:  # [0] is the architecture
        if p.kind is p.VAR_KEYWORD:
            out.update(dict.fromkeys(module.extra_options(**fixed)))
        elif p.name not in ("num_classes", "rngs") and p.name not in fixed:
            out[p.name] = None if p.default is p.empty else p.default
    return out


# (type of a default, what a value must then be, check): a cheap type check of an option's value
_KINDS = (
    (bool, "true or false", lambda v: isinstance(v, (bool, np.bool_))),
    (int, "an integer", is_int),
    (float, "a number", is_number),
)


def check_network_options(space: str, options: dict, /) -> None:
    """Raise a one-line ``JnasError`` for an option ``space``'s network does not take or a value of the wrong type.

    An unknown name is reported with the valid options (and a close match);
    a value is checked against the type of its default (bool, int, float).
    """
    _, fixed = _builder(space)
    for name in fixed.keys() & options.keys():
        raise bad_argument(name, options[name], f"no value: the space {space!r} fixes it to {fixed[name]!r}")
    valid = network_options(space)
    for name, value in options.items():
        if name not in valid:
            close = difflib.get_close_matches(str(name), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = ", ".join(k if v is None else f"{k}={v!r}" for k, v in valid.items())
            raise JnasError(f"unknown network option {name!r} for space {space!r}{hint}; valid: {listed}")
        for kind, expected, ok in _KINDS:
            if isinstance(valid[name], kind):
                if not ok(value):
                    raise bad_argument(name, value, f"{expected} (default {valid[name]!r})")
                break


def build_network(space: str, arch, /, *, num_classes: int, rngs, **options):
    """The network of ``arch`` in ``space`` (``network_options(space)`` lists the ``options``)."""
    module, fixed = _builder(space)
    check_network_options(space, options)
    return module.build(_builder_arch(space, arch), num_classes=num_classes, rngs=rngs, **fixed, **options)


__all__ = ["GENERATED", "build_network", "check_network_options", "names", "network_options"]
