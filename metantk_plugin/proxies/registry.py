"""One registry of zero-cost proxies keyed by name, holding proxies of two kinds.

- A *network* proxy (:class:`Proxy`) scores one network:
  ``fn(network, tasks: TaskBatch, *, seed: int = 0, **options) -> float`` returns its raw
  score. The registry calls ``fn`` on a working copy of the caller's network (a deep copy
  with every parameter trainable and no gradients, in the caller's train/eval mode), so a
  proxy may change it freely and the caller's network is never touched.
- A *population* proxy (:class:`PopulationProxy`) scores every architecture of a run
  against the others: ``combine({column: float64 [n]}) -> float64 [n]`` from the
  network-proxy columns ``inputs`` of the run's n architectures.

Each declares whether a higher raw score is better; :meth:`Proxy.oriented` maps a raw
score so that higher is always better (for ranking, and for NNI, which maximises).
:func:`resolve_proxy` answers for either kind; :func:`get_proxy` and
:func:`population_proxy` for one kind. A name ``rank:a+b+...`` is not registered: it
resolves to the rank ensemble of those network proxies, made on lookup
(:mod:`metantk_plugin.proxies.rank_ensemble`).

The built-in proxies register when :mod:`metantk_plugin.proxies` imports. Registering
the same function again (a module imported twice, or reloaded) replaces the entry
silently; registering a *different* function under a taken name raises. Third-party
packages add proxies through the entry-point group ``metantk_plugin.proxies``: each entry
point names a module (imported, so its decorators run) or a callable that registers its
proxies when called; they load on the first listing or lookup of an unregistered name.
"""

from __future__ import annotations

import inspect
import math
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import ClassVar, Union

import numpy as np
import torch

from metantk_plugin.proxies._network import working_copy
from metantk_plugin.tasks import TaskBatch
from metantk_plugin.user_input import quoted

__all__ = [
    "AnyProxy",
    "ENTRY_POINT_GROUP",
    "NETWORK",
    "POPULATION",
    "PROXY_KINDS",
    "RANK_ENSEMBLE_PREFIX",
    "PopulationFunction",
    "PopulationProxy",
    "Proxy",
    "ProxyFunction",
    "available_proxies",
    "check_proxy_options",
    "compute_proxy",
    "get_proxy",
    "population_proxy",
    "register_population_proxy",
    "register_proxy",
    "resolve_proxy",
]

ENTRY_POINT_GROUP = "metantk_plugin.proxies"
NETWORK = "network"
POPULATION = "population"
PROXY_KINDS = (NETWORK, POPULATION)
RANK_ENSEMBLE_PREFIX = "rank:"
"""Names ``rank:a+b+...`` are rank ensembles, made on lookup (:mod:`~metantk_plugin.proxies.rank_ensemble`)."""
ProxyFunction = Callable[..., float]
PopulationFunction = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def _negate(value: float) -> float:
    return -value


def _identity(value: float) -> float:
    return value


@dataclass(frozen=True)
class Proxy:
    """A network proxy: :meth:`compute` ``(network, tasks, *, seed, **options) -> float``
    calls ``function`` on a working copy of ``network``."""

    name: str
    function: ProxyFunction
    higher_is_better: bool
    uses_data: bool = True
    summary: str = ""
    orient: Callable[[float], float] = field(default=_identity, repr=False)
    kind: ClassVar[str] = NETWORK

    @property
    def columns(self) -> tuple[str, ...]:
        """The per-network score columns this proxy needs: its own."""
        return (self.name,)

    def compute(self, network: torch.nn.Module, tasks: TaskBatch, *, seed: int = 0, **options) -> float:
        """Raw score of ``network`` on ``tasks``, computed on a working copy of ``network``."""
        return self.function(working_copy(network), tasks, seed=seed, **options)

    def oriented(self, value: float) -> float:
        """The raw ``value`` mapped so that higher is better (NaN stays NaN)."""
        return float(self.orient(float(value)))

    def check_options(self, options: Mapping[str, object]) -> None:
        """ValueError unless every entry of ``options`` is a keyword option of ``function``
        whose value has the type of the option's default (a real number, not NaN, where the
        default is a float), so that bad options are refused before any network is scored."""
        parameters = inspect.signature(self.function).parameters
        known = {n: p for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY and n != "seed"}
        open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        for option, value in options.items():
            if option not in known:
                if open_ended:
                    continue
                raise ValueError(
                    f"proxy {self.name!r} has no option {quoted(option)}; its options: {', '.join(known) or 'none'}"
                )
            default = known[option].default
            expected = _expected_type(default)
            if expected is not None and not expected[1](value):
                raise ValueError(
                    f"option {self.name}.{option} must be {expected[0]} (default {default!r}), got {quoted(value)}"
                )


@dataclass(frozen=True)
class PopulationProxy:
    """A score of each architecture relative to a population, ``combine`` of the columns ``inputs``."""

    name: str
    inputs: tuple[str, ...]
    combine: PopulationFunction
    higher_is_better: bool
    summary: str
    kind: ClassVar[str] = POPULATION

    @property
    def columns(self) -> tuple[str, ...]:
        """The per-network score columns this proxy needs: its ``inputs``."""
        return self.inputs

    def check_options(self, options: Mapping[str, object]) -> None:
        """ValueError for any option: a population proxy has none."""
        for option in options:
            raise ValueError(f"proxy {self.name!r} has no option {quoted(option)}; its options: none")


AnyProxy = Union[Proxy, PopulationProxy]
_REGISTRY: dict[str, AnyProxy] = {}
_entry_points_loaded = False


def _origin(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _function(proxy: AnyProxy) -> Callable:
    return proxy.function if isinstance(proxy, Proxy) else proxy.combine


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"proxy names must be identifiers such as 'grad_norm', got {name!r}")


def _register(proxy: AnyProxy) -> None:
    existing = _REGISTRY.get(proxy.name)
    if existing is not None and _origin(_function(existing)) != _origin(_function(proxy)):
        raise ValueError(
            f"proxy {proxy.name!r} is already registered by {_origin(_function(existing))}; "
            f"refusing to replace it with {_origin(_function(proxy))}"
        )
    _REGISTRY[proxy.name] = proxy


def _summary(fn: Callable) -> str:
    return (fn.__doc__ or "").strip().split("\n")[0]


def register_proxy(
    name: str,
    *,
    higher_is_better: bool,
    uses_data: bool = True,
    orient: Callable[[float], float] | None = None,
) -> Callable[[ProxyFunction], ProxyFunction]:
    """Decorator registering the network proxy ``fn`` under ``name``. ``orient`` maps a raw
    score to a higher-is-better value (default: identity, or negation when lower is better)."""
    _check_name(name)

    def decorator(fn: ProxyFunction) -> ProxyFunction:
        default = _identity if higher_is_better else _negate
        _register(Proxy(name, fn, higher_is_better, uses_data, _summary(fn), orient or default))
        return fn

    return decorator


def register_population_proxy(
    name: str, *, inputs: tuple[str, ...], higher_is_better: bool
) -> Callable[[PopulationFunction], PopulationFunction]:
    """Decorator registering ``combine`` as the population proxy ``name`` of the network-proxy
    columns ``inputs``."""
    _check_name(name)

    def decorator(combine: PopulationFunction) -> PopulationFunction:
        _register(PopulationProxy(name, tuple(inputs), combine, higher_is_better, _summary(combine)))
        return combine

    return decorator


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python 3.9: entry_points() takes no arguments
        entry_points = metadata.entry_points().get(ENTRY_POINT_GROUP, [])
    for ep in entry_points:
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, types.ModuleType):
                loaded()
        except Exception as exc:  # a broken plugin must not take the built-ins down
            warnings.warn(f"could not load proxy plugin {ep.name!r} ({ep.value}): {exc}", RuntimeWarning, stacklevel=2)


def available_proxies(kind: str = NETWORK) -> list[str]:
    """Names of the registered proxies (built-ins and plugins) of ``kind``, sorted:
    ``'network'`` (what :func:`compute_proxy` scores), ``'population'``, or ``'all'``
    (the network proxies, then the population proxies)."""
    if kind != "all" and kind not in PROXY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PROXY_KINDS)} or all, got {kind!r}")
    _load_entry_points()
    kinds = PROXY_KINDS if kind == "all" else (kind,)
    return [name for k in kinds for name in sorted(n for n, p in _REGISTRY.items() if p.kind == k)]


def _lookup(name: str, kind: str | None, what: str) -> AnyProxy:
    if name not in _REGISTRY:
        _load_entry_points()
    proxy = _REGISTRY.get(name)
    if proxy is None and isinstance(name, str) and name.startswith(RANK_ENSEMBLE_PREFIX):
        from metantk_plugin.proxies.rank_ensemble import rank_ensemble

        proxy = rank_ensemble(name)
    if proxy is None or kind not in (None, proxy.kind):
        known = sorted(n for n, p in _REGISTRY.items() if kind in (None, p.kind))
        raise ValueError(f"unknown {what} {name!r}; available: {', '.join(known)}")
    return proxy


def resolve_proxy(name: str) -> AnyProxy:
    """The proxy registered under ``name``, of either kind, or the rank ensemble ``rank:a+b+...``;
    a ValueError lists every known name."""
    return _lookup(name, None, "proxy")


def get_proxy(name: str) -> Proxy:
    """The network proxy registered under ``name``; a ValueError lists the known ones."""
    return _lookup(name, NETWORK, "proxy")


def population_proxy(name: str) -> PopulationProxy:
    """The population proxy registered under ``name``; a ValueError lists the known ones."""
    return _lookup(name, POPULATION, "population proxy")


def check_proxy_options(name: str, options: Mapping[str, object]) -> None:
    """``check_options`` of the proxy ``name`` (of either kind): a ValueError for an
    unknown option or a value of the wrong type."""
    resolve_proxy(name).check_options(options)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


_OPTION_TYPES = (  # (type of the default, what a value must be, test)
    (bool, "true or false", lambda v: isinstance(v, bool)),
    (int, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    (float, "a number (not NaN)", _is_number),
    (str, "a string", lambda v: isinstance(v, str)),
)


def _expected_type(default: object) -> tuple[str, Callable[[object], bool]] | None:
    for option_type, words, test in _OPTION_TYPES:
        if type(default) is option_type:
            return words, test
    return None


def compute_proxy(name: str, network: torch.nn.Module, tasks: TaskBatch, *, seed: int = 0, **options) -> float:
    """Raw score of the network proxy ``name`` for ``network`` on ``tasks`` (on a working copy)."""
    proxy = get_proxy(name)
    value = float(proxy.compute(network, tasks, seed=seed, **options))
    if math.isnan(value):
        warnings.warn(f"proxy {name!r} returned NaN", RuntimeWarning, stacklevel=2)
    return value
