"""The settings of a scoring run: everything that decides the scores of an architecture.

Two runs with equal settings give equal scores, so a score file may only be extended by
a run with the settings it was created with. Executor, workers and chunk size are not
settings: they change how fast the scores come, not their values.

Which network each proxy sees: every architecture is built once per normalisation it
needs, all from one seed (:func:`architecture_seed`), so all versions share their
convolution and linear weights (normalisation layers draw nothing). By default the
kernel proxies (metantk, metantk_anil, ntk_cond, linear_regions) see the GroupNorm
network, because the NTK needs samples that do not interact; every other proxy sees the
official BatchNorm network in training mode, as NAS-Bench-Suite-Zero scored it.
``norms`` overrides this per proxy.

This module imports no torch (the proxy registry is imported when settings are checked),
so the ``metantk score`` parser writes its options from :class:`ScoreSettings`' fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from metantk_plugin import __version__
from metantk_plugin.cli_options import option
from metantk_plugin.normalisation_names import NETWORK_NORMS
from metantk_plugin.task_spec import TaskSpec, check_positive_int

__all__ = [
    "DTYPES",
    "KERNEL_PROXIES",
    "NETWORK_NORMS",
    "SPACES",
    "ScoreSettings",
    "architecture_seed",
]

SPACES = ("nb201",)
DTYPES = ("float32", "float64")
KERNEL_PROXIES = ("metantk", "metantk_anil", "ntk_cond", "linear_regions")
"""Proxies that need independent samples, so they see the GroupNorm network by default."""
_TASKS = TaskSpec()


@dataclass(frozen=True)
class ScoreSettings:
    """Settings of a scoring run (validated on construction).

    ``proxies`` are the requested scores (registered proxies or population proxies such as
    ``te_nas``); ``proxy_options`` maps a proxy to keyword options of its function;
    ``data``, ``n_tasks``, ``ways``, ``shots``, ``queries``, ``image_size`` and
    ``image_channels`` are the fields of the :class:`~metantk_plugin.task_spec.TaskSpec`
    the tasks are drawn from (:attr:`task_spec`, same defaults); ``channels`` (C),
    ``cells`` (N) and ``classes`` (default: ``ways``) size the network; ``seed`` draws the
    tasks, the initial weights (per architecture, see :func:`architecture_seed`) and is
    passed to every proxy.
    """

    proxies: tuple[str, ...]
    space: str = option("nb201", "search space", choices=SPACES)
    data: str = _TASKS.data
    n_tasks: int = _TASKS.n_tasks
    ways: int = _TASKS.ways
    shots: int = _TASKS.shots
    queries: int = _TASKS.queries
    image_size: int = _TASKS.image_size
    image_channels: int = _TASKS.image_channels
    channels: int = option(16, "channels of the first stage, C")
    cells: int = option(5, "cells per stage, N")
    classes: int | None = option(None, "logits of the network (default: as many as ways)")
    seed: int = option(0, "seed of the tasks, the initial weights and the proxies")
    dtype: str = option("float32", "network precision", choices=DTYPES)
    device: str = option("cpu", "cpu (default) or cuda[:N]")
    proxy_options: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    norms: Mapping[str, str] = field(default_factory=dict)
    package_version: str = __version__

    def __post_init__(self) -> None:
        from metantk_plugin.proxies.registry import check_proxy_options, resolve_proxy

        proxies = tuple(self.proxies)
        if not proxies:
            raise ValueError("choose at least one proxy")
        for name in proxies:
            resolve_proxy(name)  # a ValueError lists every known proxy
        if len(set(proxies)) != len(proxies):
            raise ValueError(f"a proxy is listed twice in {', '.join(proxies)}")
        object.__setattr__(self, "proxies", proxies)
        if self.space not in SPACES:
            raise ValueError(f"unknown search space {self.space!r}; expected one of {', '.join(SPACES)}")
        self.task_spec  # noqa: B018 (its construction validates the task fields)
        for name in ("channels", "cells"):
            check_positive_int(name, getattr(self, name))
        if self.classes is not None and (isinstance(self.classes, bool) or not isinstance(self.classes, int)
                                         or self.classes < self.ways):
            raise ValueError(f"classes must be an int >= ways ({self.ways}) or None, got {self.classes!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.device, str) or self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        columns = self.columns
        for name, options in self.proxy_options.items():
            if name not in columns:
                raise ValueError(f"options given for {name!r}, which this run does not compute ({', '.join(columns)})")
            if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
                raise ValueError(f"options of {name!r} must map option names to values, got {options!r}")
            check_proxy_options(name, options)
        for name, norm in self.norms.items():
            if name not in columns:
                raise ValueError(f"a network norm is given for {name!r}, which this run does not compute")
            if norm not in NETWORK_NORMS:
                raise ValueError(f"norm for {name!r} must be one of {', '.join(NETWORK_NORMS)}, got {norm!r}")
        object.__setattr__(self, "proxy_options", {k: dict(v) for k, v in sorted(self.proxy_options.items())})
        object.__setattr__(self, "norms", dict(sorted(self.norms.items())))
        self.to_json()  # options must be JSON values

    @property
    def columns(self) -> tuple[str, ...]:
        """The per-network proxies computed for every architecture: the requested ones and
        the inputs of requested population proxies, in order, without repeats."""
        from metantk_plugin.proxies.registry import resolve_proxy

        out: list[str] = []
        for name in self.proxies:
            for column in resolve_proxy(name).columns:
                if column not in out:
                    out.append(column)
        return tuple(out)

    @property
    def task_spec(self) -> TaskSpec:
        """The task fields as a :class:`~metantk_plugin.task_spec.TaskSpec`."""
        return TaskSpec(data=self.data, n_tasks=self.n_tasks, ways=self.ways, shots=self.shots,
                        queries=self.queries, image_size=self.image_size, image_channels=self.image_channels)

    @property
    def num_classes(self) -> int:
        return self.classes if self.classes is not None else self.ways

    def norm_for(self, proxy: str) -> str:
        """Normalisation of the network ``proxy`` sees (see the module docstring)."""
        return self.norms.get(proxy, "group" if proxy in KERNEL_PROXIES else "batch")

    def options_for(self, proxy: str) -> dict[str, object]:
        return dict(self.proxy_options.get(proxy, {}))

    def higher_is_better(self, name: str) -> bool:
        from metantk_plugin.proxies.registry import resolve_proxy

        return resolve_proxy(name).higher_is_better

    def to_dict(self) -> dict:
        """Plain JSON-able dict (round-trips through :meth:`from_dict`)."""
        d = asdict(self)
        d["proxies"] = list(self.proxies)
        return d

    def to_json(self) -> str:
        try:
            return json.dumps(self.to_dict(), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"settings must be plain JSON values (numbers, strings, lists): {exc}") from None

    @classmethod
    def from_dict(cls, d: Mapping) -> ScoreSettings:
        d = dict(d)
        d["proxies"] = tuple(d["proxies"])
        return cls(**d)


def architecture_seed(seed: int, arch: str) -> int:
    """Seed of an architecture's initial weights: a hash of the run seed and the
    architecture string, so it does not depend on the order or the worker that builds it."""
    digest = hashlib.sha256(f"{seed}:{arch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63 - 1)


def __getattr__(name: str):
    if name in ("parse_option_value", "parse_proxy_options"):  # moved to the command layer
        import warnings

        import metantk_plugin.commands

        warnings.warn(f"metantk_plugin.scoring.settings.{name} is deprecated; import it from "
                      "metantk_plugin.commands instead", DeprecationWarning, stacklevel=2)
        return getattr(metantk_plugin.commands, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
