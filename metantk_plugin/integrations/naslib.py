"""MetaNTK in NASLib: its zero-cost measure registry, a predictor, and NB201 encodings.

NASLib (automl/NASLib, installed from a source checkout; upstream supports Python 3.7-3.9,
the snapshots in ../shared/vendor/naslib install on 3.11) creates every
zero-cost proxy by name, ``ZeroCost(method_type=name)``, from one global registry filled
by the decorator ``measure(name, bn=True, copy_net=True, **impl_args)``. The registry
module is ``naslib.predictors.utils.pruners.measures`` on the Develop branch and
``naslib.predictors.pruners.measures`` on the NAS-Bench-Suite-Zero (``zerocost``)
branch; :func:`register` fills whichever exist. Written against Develop 0b51bc18 and
zerocost 8c45f19d, and tested against both (``tox -e naslib-develop``, ``naslib-zerocost``).

* :func:`register` adds the measures ``metantk`` (MAML kernel, as the core proxy of that
  name), ``metantk_maml`` (the same, named explicitly) and ``metantk_anil`` (ANIL's head
  kernel). NASLib calls a measure as ``func(copy_of_graph, inputs, targets, loss_fn=...,
  split_data=..., **impl_args)`` on one labelled batch and reduces its value with
  ``sum_arr`` (sum of ``torch.sum`` over a list of tensors, then ``.item()``), so each
  measure returns ``[torch.tensor(score)]``: a one-element list whose sum is the score.
  The score is higher-is-better, as NASLib expects: ``-log κ`` with κ >= 1 the MetaNTK
  condition number (lower κ is better), so scores are <= 0 and a degenerate kernel
  (κ = inf) gives -inf, which ``ZeroCost.query`` maps to -1e8. ``split_data`` (NASLib's
  retry after a CUDA out-of-memory error) is ignored: the kernel needs the whole batch.
* :class:`MetaNTKPredictor` has ``ZeroCost``'s shape (``method_type``,
  ``query(graph, dataloader=None, info=None) -> float``) and subclasses NASLib's
  ``Predictor`` when NASLib imports, standing alone otherwise.
* :func:`op_indices_to_arch_str` and :func:`arch_str_to_op_indices` convert NASLib's
  NB201 op-index tuples (edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4); ops 0 skip_connect,
  1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3) to and from official strings.

How a network is scored (both routes): the batch becomes few-shot tasks by
:func:`tasks_fitting_batch` (the settings' shape, or the largest one a small batch
holds); the graph's copy gets its BatchNorm layers replaced by GroupNorm over the
largest divisor of the channel count not above 16 (the official MetaNTK-NAS
``groupnorm16``; BatchNorm in training mode couples the samples, so
per-sample gradients and the NTK would be undefined), affine parameters copied; its
features are the input of the last ``nn.Linear`` it calls (NASLib graphs return logits
only), on which MetaNTK attaches its seeded head. The graph's own weights are used as
NASLib built them, as for NASLib's other measures.
"""

from __future__ import annotations

import copy
import importlib
import math
import warnings
from dataclasses import asdict, dataclass
from types import MappingProxyType, ModuleType

import numpy as np
import torch
from torch import nn

from metantk_plugin.network_adapter import FeaturesAndLogits, replace_batchnorm
from metantk_plugin.proxies.metantk import MetaNTK
from metantk_plugin.proxies.registry import get_proxy
from metantk_plugin.spaces.nasbench201.codec import NB201Arch, parse_arch
from metantk_plugin.task_spec import TaskSpec, check_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = [
    "NON_FINITE_SCORE",
    "PREDICTOR_METHODS",
    "REGISTRY_MODULES",
    "BatchTooSmallError",
    "MeasureSettings",
    "MetaNTKPredictor",
    "TaskShapeWarning",
    "arch_str_to_op_indices",
    "measure_names",
    "op_indices_to_arch_str",
    "register",
    "tasks_fitting_batch",
    "tasks_from_batch",
]

REGISTRY_MODULES = ("naslib.predictors.utils.pruners.measures", "naslib.predictors.pruners.measures")
"""NASLib's measure registry on the Develop branch, then on the ``zerocost`` branch."""

NON_FINITE_SCORE = -1e8
"""What ``ZeroCost.query`` (and :meth:`MetaNTKPredictor.query`) returns for a NaN or infinite score."""

_CORE_PROXY = {"maml": "metantk", "anil": "metantk_anil"}
_REGISTERED = "_metantk_plugin_measures"  # on a NASLib registry module: {measure name: impl_args} we added


# ---------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class MeasureSettings:
    """How a labelled batch becomes tasks, and how MetaNTK is computed on them.

    ``n_tasks`` tasks of ``ways`` classes with ``shots`` support and ``queries`` query
    samples per class, drawn with ``seed`` (which also draws MetaNTK's head); MetaNTK's
    ``inner_lr_time``, ``reg`` and ``backend`` as in :class:`~metantk_plugin.proxies.MetaNTK`.
    The defaults are the reference configuration: 3 tasks, 5-way, 1-shot, 1 query. With
    ``fit_batch`` (the default), a batch too small for that shape is scored with the
    largest smaller one it holds (see :func:`tasks_fitting_batch`)."""

    ways: int = TaskSpec.ways
    shots: int = TaskSpec.shots
    queries: int = TaskSpec.queries
    n_tasks: int = TaskSpec.n_tasks
    seed: int = 0
    inner_lr_time: float = math.inf
    reg: float = 1e-3
    backend: str = "gram"
    fit_batch: bool = True

    def __post_init__(self) -> None:
        for name in ("ways", "shots", "queries", "n_tasks"):
            check_positive_int(name, getattr(self, name))
        _check_seed(self.seed)
        if not isinstance(self.fit_batch, bool):
            raise ValueError(f"fit_batch must be True or False, got {self.fit_batch!r}")
        for name in ("inner_lr_time", "reg"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        MetaNTK(inner_lr_time=self.inner_lr_time, reg=self.reg, seed=self.seed, backend=self.backend)  # validates


def measure_names(prefix: str = "metantk") -> dict[str, str]:
    """The measure names :func:`register` adds, each with its algorithm:
    ``{prefix: 'maml', prefix + '_maml': 'maml', prefix + '_anil': 'anil'}``."""
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ValueError(f"prefix must be an identifier such as 'metantk', got {prefix!r}")
    return {prefix: "maml", f"{prefix}_maml": "maml", f"{prefix}_anil": "anil"}


PREDICTOR_METHODS = MappingProxyType(measure_names())
"""``method_type`` values of :class:`MetaNTKPredictor` and their algorithms."""


# ---------------------------------------------------------------------------- tasks
class BatchTooSmallError(ValueError):
    """The batch lacks the classes or samples for the tasks asked for."""


class TaskShapeWarning(UserWarning):
    """A batch was scored with fewer tasks or ways than the settings ask for."""


def tasks_from_batch(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    ways: int = TaskSpec.ways,
    shots: int = TaskSpec.shots,
    queries: int = TaskSpec.queries,
    n_tasks: int = TaskSpec.n_tasks,
    seed: int = 0,
) -> TaskBatch:
    """Few-shot tasks drawn from one plain labelled batch (``inputs [N, *shape]``, integer
    class ``targets [N]``), without replacement across the whole meta-batch.

    With a generator seeded by ``seed``, each class's samples are shuffled once; then for
    each task in turn, ``ways`` classes are chosen uniformly among those that still have
    ``shots + queries`` unused samples, labelled ``0..ways-1`` in the order drawn, and
    their next unused samples taken: the first ``shots`` of each class form the support
    set, the other ``queries`` the query set. So no sample is both support and query, and
    none appears in two tasks. Samples are shot-major (``[c0, c1, ..., c0, c1, ...]``).
    A ValueError says how many classes had enough samples when the batch is too small.
    """
    for name, value in (("ways", ways), ("shots", shots), ("queries", queries), ("n_tasks", n_tasks)):
        check_positive_int(name, value)
    _check_seed(seed)
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
        raise ValueError(f"inputs must be a batch tensor [N, *sample_shape], got {_describe(inputs)}")
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"targets must be class labels [N] with N = {inputs.shape[0]} (the batch size), got {_describe(targets)}"
        )
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must hold integer class labels, got dtype {targets.dtype}")

    inputs = inputs.detach()  # NASLib shares one batch between measures; jacov makes it require grad
    generator = torch.Generator().manual_seed(seed)
    labels = targets.detach().cpu()
    classes = torch.unique(labels).tolist()
    pools = {}
    for c in classes:
        members = torch.nonzero(labels == c).flatten()
        pools[c] = members[torch.randperm(len(members), generator=generator)]
    used = dict.fromkeys(classes, 0)
    per_class = shots + queries
    support, query = [], []
    for task in range(n_tasks):
        eligible = [c for c in classes if len(pools[c]) - used[c] >= per_class]
        if len(eligible) < ways:
            raise BatchTooSmallError(
                f"cannot draw task {task + 1} of {n_tasks}: it needs {ways} classes with {per_class} unused samples "
                f"each (shots={shots} + queries={queries}), but only {len(eligible)} of the {len(classes)} classes "
                f"in the batch of {len(labels)} samples have that many left ({n_tasks * ways * per_class} samples "
                "are needed in all). Feed a larger batch (the dataloader's batch_size, or more batches with "
                "num_imgs_or_batches), or lower n_tasks, ways, shots or queries."
            )
        chosen = [eligible[i] for i in torch.randperm(len(eligible), generator=generator)[:ways].tolist()]
        picked = torch.stack([pools[c][used[c] : used[c] + per_class] for c in chosen])  # [ways, shots+queries]
        for c in chosen:
            used[c] += per_class
        support.append(picked[:, :shots].T.flatten())
        query.append(picked[:, shots:].T.flatten())
    support_index = torch.stack(support).to(inputs.device)
    query_index = torch.stack(query).to(inputs.device)

    def labels_of(per: int) -> torch.Tensor:
        return torch.arange(ways, device=inputs.device).repeat(per).expand(n_tasks, -1).clone()

    return TaskBatch(inputs[support_index], labels_of(shots), inputs[query_index], labels_of(queries), ways)


def tasks_fitting_batch(inputs: torch.Tensor, targets: torch.Tensor, settings: MeasureSettings) -> TaskBatch:
    """The tasks of ``settings`` drawn from one batch by :func:`tasks_from_batch`; when the
    batch is too small for them and ``settings.fit_batch`` is set, the largest shape it
    holds instead: fewer tasks first, then fewer ways (at least 2), shots and queries kept,
    with a :class:`TaskShapeWarning` that names the shape used. NASLib's zero-cost runners
    feed batches of 32 images, which rarely hold 3 tasks of 5 classes with 2 unused images
    each; such a batch is scored on 2 tasks, or 1, instead of not at all."""
    draw = {"shots": settings.shots, "queries": settings.queries, "seed": settings.seed}
    try:
        return tasks_from_batch(inputs, targets, ways=settings.ways, n_tasks=settings.n_tasks, **draw)
    except BatchTooSmallError as error:
        if not settings.fit_batch:
            raise
        too_small = error
    for ways in range(settings.ways, 1, -1):
        for n_tasks in range(settings.n_tasks, 0, -1):
            if (ways, n_tasks) == (settings.ways, settings.n_tasks):
                continue
            try:
                tasks = tasks_from_batch(inputs, targets, ways=ways, n_tasks=n_tasks, **draw)
            except BatchTooSmallError:
                continue
            warnings.warn(
                f"the batch of {len(targets)} samples holds no {settings.n_tasks} tasks of {settings.ways}-way "
                f"{settings.shots}-shot {settings.queries}-query; scored on {n_tasks} task(s) of {ways}-way "
                f"{settings.shots}-shot {settings.queries}-query (feed larger batches for the full shape)",
                TaskShapeWarning, stacklevel=3,
            )
            return tasks
    raise too_small


# ---------------------------------------------------------------------------- scoring
def _score_private_copy(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, algorithm: str,
                        settings: MeasureSettings) -> float:
    """Higher-is-better MetaNTK score ``-log κ`` of ``net``, which this changes (a copy)."""
    if getattr(net, "op_indices", "") is None:
        raise ValueError(
            f"the {type(net).__name__} has no architecture yet (op_indices is None): call "
            "graph.set_spec(op_indices) and graph.parse() before scoring it"
        )
    tasks = tasks_fitting_batch(inputs, targets, settings)
    replace_batchnorm(net, "group")
    proxy = get_proxy(_CORE_PROXY[algorithm])
    kappa = proxy.compute(FeaturesAndLogits(net), tasks, seed=settings.seed, inner_lr_time=settings.inner_lr_time,
                          reg=settings.reg, backend=settings.backend)
    return proxy.oriented(kappa)


# ---------------------------------------------------------------------------- NASLib measure registry
def _metantk_measure(net, inputs, targets, loss_fn=None, split_data=1, *, algorithm, **settings):
    """The function NASLib's registry calls: ``[tensor(-log κ)]`` for its private copy ``net``."""
    score = _score_private_copy(net, inputs, targets, algorithm, MeasureSettings(**settings))
    return [torch.tensor(score, dtype=torch.float64)]


def _measure_registries() -> list[ModuleType]:
    registries = []
    for path in REGISTRY_MODULES:
        try:
            registries.append(importlib.import_module(path))
        except ModuleNotFoundError as exc:
            if exc.name is None or not (path == exc.name or path.startswith(exc.name + ".")):
                raise ImportError(f"NASLib's measure registry {path} exists but failed to import: {exc}") from exc
        except ImportError as exc:
            raise ImportError(
                f"NASLib's measure registry {path} failed to import: {exc} (NASLib runs on Python 3.7-3.9 only)"
            ) from exc
    if not registries:
        raise ImportError(
            f"NASLib is not importable: neither {' nor '.join(REGISTRY_MODULES)} exists. Install NASLib from "
            "a source checkout of automl/NASLib (pip install -e .) on Python 3.7-3.9."
        )
    return registries


def register(*, prefix: str = "metantk", **settings) -> list[str]:
    """Add the MetaNTK measures to NASLib's registry (every module path of
    :data:`REGISTRY_MODULES` that imports); returns their names (:func:`measure_names`).

    ``settings`` are the fields of :class:`MeasureSettings`. Calling again with the same
    settings does nothing; NASLib cannot replace a measure, so other settings under a
    name already registered raise ValueError (register them under another ``prefix``),
    as does a name some other package registered. Afterwards
    ``ZeroCost(method_type='metantk').query(graph, dataloader)`` works, and so does every
    NASLib runner, evaluator and search that creates zero-cost proxies by name.
    """
    chosen = MeasureSettings(**settings)
    names = measure_names(prefix)
    wanted = {name: {"algorithm": algorithm, **asdict(chosen)} for name, algorithm in names.items()}
    registries = _measure_registries()
    for registry in registries:  # check everything first, so that a refusal registers nothing
        ours = getattr(registry, _REGISTERED, {})
        for name, impl_args in wanted.items():
            if name in ours and ours[name] != impl_args:
                raise ValueError(
                    f"NASLib measure {name!r} is already registered with {ours[name]}; NASLib cannot replace "
                    f"a measure, so register {impl_args} under another prefix"
                )
            if name not in ours and name in registry.available_measures:
                raise ValueError(
                    f"{registry.__name__} already holds a measure named {name!r} that metantk_plugin did not "
                    "register; pass another prefix"
                )
    for registry in registries:
        ours = vars(registry).setdefault(_REGISTERED, {})
        for name, impl_args in wanted.items():
            if name not in ours:
                registry.measure(name, bn=True, copy_net=True, **impl_args)(_metantk_measure)
                ours[name] = impl_args
    return list(names)


# ---------------------------------------------------------------------------- predictor
class _StandalonePredictor:
    """The part of NASLib's ``Predictor`` interface that both branches' bases provide and
    its zero-cost evaluators use, for when NASLib does not import."""

    def __init__(self, ss_type=None):
        self.ss_type = ss_type

    def set_ss_type(self, ss_type) -> None:
        self.ss_type = ss_type

    def pre_process(self) -> None:
        """Nothing to prepare: a zero-cost predictor needs no training data."""


def _predictor_base() -> type:
    try:
        from naslib.predictors.predictor import Predictor
    except ImportError:
        return _StandalonePredictor
    return Predictor


def _first_batches(loader, num_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``num_batches`` ``(inputs, targets)`` batches of ``loader``, concatenated
    (NASLib's ``dataload='random'``)."""
    batches = []
    for batch in loader:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(torch.is_tensor(b) for b in batch)):
            raise ValueError(f"the dataloader must yield (inputs, targets) tensor pairs, got {_describe(batch)}")
        batches.append(batch)
        if len(batches) == num_batches:
            break
    if len(batches) < num_batches:
        raise ValueError(f"the dataloader yielded {len(batches)} batches, but num_imgs_or_batches={num_batches}")
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


class MetaNTKPredictor(_predictor_base()):
    """NASLib zero-cost predictor for MetaNTK, shaped like NASLib's ``ZeroCost``.

    ``method_type`` is ``'metantk'`` or ``'metantk_maml'`` (MAML kernel) or
    ``'metantk_anil'``; ``settings`` are the fields of :class:`MeasureSettings`;
    ``num_imgs_or_batches`` batches of the loader are concatenated into the batch the
    tasks are drawn from; the score is computed on ``device`` (CPU by default).
    ``query(graph, dataloader)`` returns the higher-is-better score ``-log κ`` of one
    graph (a float; NaN or infinite becomes :data:`NON_FINITE_SCORE`, as in ``ZeroCost``),
    or an array of scores for a list of graphs; the graph itself is not changed.
    """

    def __init__(self, method_type: str = "metantk", *, num_imgs_or_batches: int = 1,
                 device: torch.device | str | None = None, **settings):
        super().__init__()
        if method_type not in PREDICTOR_METHODS:
            raise ValueError(f"method_type must be one of {', '.join(PREDICTOR_METHODS)}, got {method_type!r}")
        check_positive_int("num_imgs_or_batches", num_imgs_or_batches)
        self.method_type = method_type
        self.algorithm = PREDICTOR_METHODS[method_type]
        self.settings = MeasureSettings(**settings)
        self.dataload = "random"
        self.num_imgs_or_batches = num_imgs_or_batches
        self.device = torch.device(device if device is not None else "cpu")
        self.train_loader = None

    def fit(self, xtrain, ytrain, info=None) -> None:
        """Nothing to fit: the score needs no labelled architectures (Develop passes ``info``,
        the zerocost branch does not)."""

    def get_data_reqs(self) -> dict:
        """What a NASLib predictor evaluator must supply: nothing (the zerocost branch's
        ``Predictor`` lacks this method, so it is defined here for both)."""
        return {"requires_partial_lc": False, "metric": None, "requires_hyperparameters": False,
                "hyperparams": {}, "unlabeled": False, "unlabeled_factor": 0}

    def query(self, graph, dataloader=None, info=None):
        if isinstance(graph, (list, tuple)):
            return np.array([self.query(g, dataloader, info) for g in graph], dtype=np.float64)
        if not isinstance(graph, nn.Module):
            raise TypeError(f"graph must be a NASLib graph (a torch.nn.Module), got {type(graph).__name__}")
        loader = dataloader if dataloader is not None else self.train_loader
        if loader is None:
            raise ValueError("MetaNTKPredictor.query needs labelled batches: pass query(graph, dataloader) "
                             "or set predictor.train_loader")
        inputs, targets = _first_batches(loader, self.num_imgs_or_batches)
        net = copy.deepcopy(graph).to(self.device)
        score = _score_private_copy(net, inputs.to(self.device), targets.to(self.device), self.algorithm,
                                    self.settings)
        return score if math.isfinite(score) else NON_FINITE_SCORE


# ---------------------------------------------------------------------------- NB201 encodings
def op_indices_to_arch_str(op_indices) -> str:
    """The official NAS-Bench-201 string of a NASLib op-index tuple (``graph.get_hash()``),
    like NASLib's ``convert_op_indices_to_str``."""
    return NB201Arch.from_naslib(op_indices).to_string()


def arch_str_to_op_indices(arch) -> tuple[int, ...]:
    """The NASLib op-index tuple (for ``graph.set_spec``) of an official string, or of any
    encoding :func:`~metantk_plugin.spaces.nasbench201.parse_arch` reads (an index, an
    NNI sample dict, an ``NB201Arch``), like NASLib's ``convert_str_to_op_indices``."""
    return parse_arch(arch).to_naslib()


# ---------------------------------------------------------------------------- helpers
def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:200]
