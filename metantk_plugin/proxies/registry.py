"""A registry of zero-cost proxies keyed by name.

A proxy is a function ``fn(network, tasks: TaskBatch, *, seed: int = 0, **options) -> float``
returning its raw score. Each declares whether a higher raw score is better; the
registry's :meth:`Proxy.oriented` view is always higher-is-better (for ranking, and for
NNI, which maximises).

Registering the same function again (a module imported twice, or reloaded) replaces
the entry silently; registering a *different* function under a taken name raises.
Third-party packages add proxies through the entry-point group
``metantk_plugin.proxies``: each entry point names a module (imported, so its
decorators run) or a callable that registers its proxies when called.
"""

from __future__ import annotations

import inspect
import math
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata

import torch

from metantk_plugin.tasks import TaskBatch
from metantk_plugin.user_input import quoted

__all__ = [
    "ENTRY_POINT_GROUP",
    "Proxy",
    "ProxyFunction",
    "available_proxies",
    "check_proxy_options",
    "compute_proxy",
    "get_proxy",
    "register_proxy",
]

ENTRY_POINT_GROUP = "metantk_plugin.proxies"
ProxyFunction = Callable[..., float]


def _negate(value: float) -> float:
    return -value


def _identity(value: float) -> float:
    return value


@dataclass(frozen=True)
class Proxy:
    """A registered proxy: ``compute(network, tasks, *, seed, **options) -> float``."""

    name: str
    compute: ProxyFunction
    higher_is_better: bool
    uses_data: bool = True
    summary: str = ""
    orient: Callable[[float], float] = field(default=_identity, repr=False)

    def oriented(self, value: float) -> float:
        """The raw ``value`` mapped so that higher is better (NaN stays NaN)."""
        return float(self.orient(float(value)))


_REGISTRY: dict[str, Proxy] = {}
_entry_points_loaded = False


def _origin(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def register_proxy(
    name: str,
    *,
    higher_is_better: bool,
    uses_data: bool = True,
    orient: Callable[[float], float] | None = None,
) -> Callable[[ProxyFunction], ProxyFunction]:
    """Decorator registering ``fn`` under ``name``. ``orient`` maps a raw score to a
    higher-is-better value (default: identity, or negation when lower is better)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"proxy names must be identifiers such as 'grad_norm', got {name!r}")

    def decorator(fn: ProxyFunction) -> ProxyFunction:
        existing = _REGISTRY.get(name)
        if existing is not None and _origin(existing.compute) != _origin(fn):
            raise ValueError(
                f"proxy {name!r} is already registered by {_origin(existing.compute)}; "
                f"refusing to replace it with {_origin(fn)}"
            )
        summary = (fn.__doc__ or "").strip().split("\n")[0]
        default = _identity if higher_is_better else _negate
        _REGISTRY[name] = Proxy(name, fn, higher_is_better, uses_data, summary, orient or default)
        return fn

    return decorator


def _load_builtin_and_entry_points() -> None:
    global _entry_points_loaded
    import metantk_plugin.proxies.builtin  # noqa: F401  (registers the built-in proxies)

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


def available_proxies() -> list[str]:
    """Names of all registered proxies (built-ins and plugins), sorted."""
    _load_builtin_and_entry_points()
    return sorted(_REGISTRY)


def get_proxy(name: str) -> Proxy:
    """The proxy registered under ``name``; a ValueError lists the known names."""
    _load_builtin_and_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def check_proxy_options(name: str, options: Mapping[str, object]) -> None:
    """ValueError unless every entry of ``options`` is a keyword option of proxy ``name``
    whose value has the type of the option's default (a real number, not NaN, where the
    default is a float), so that bad options are refused before any network is scored."""
    parameters = inspect.signature(get_proxy(name).compute).parameters
    known = {n: p for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY and n != "seed"}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for option, value in options.items():
        if option not in known:
            if open_ended:
                continue
            raise ValueError(
                f"proxy {name!r} has no option {quoted(option)}; its options: {', '.join(known) or 'none'}"
            )
        default = known[option].default
        expected = _expected_kind(default)
        if expected is not None and not expected[1](value):
            raise ValueError(f"option {name}.{option} must be {expected[0]} (default {default!r}), got {quoted(value)}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


_KINDS = (  # (type of the default, what a value must be, test)
    (bool, "true or false", lambda v: isinstance(v, bool)),
    (int, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    (float, "a number (not NaN)", _is_number),
    (str, "a string", lambda v: isinstance(v, str)),
)


def _expected_kind(default: object) -> tuple[str, Callable[[object], bool]] | None:
    for kind, words, test in _KINDS:
        if type(default) is kind:
            return words, test
    return None


def compute_proxy(name: str, network: torch.nn.Module, tasks: TaskBatch, *, seed: int = 0, **options) -> float:
    """Raw score of proxy ``name`` for ``network`` on ``tasks``."""
    proxy = get_proxy(name)
    value = float(proxy.compute(network, tasks, seed=seed, **options))
    if math.isnan(value):
        warnings.warn(f"proxy {name!r} returned NaN", RuntimeWarning, stacklevel=2)
    return value
