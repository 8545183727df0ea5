"""MetaNTK-NAS (and TE-NAS) operator pruning.

Phase 1, while some edge has more than one active operation: for every active
operation o of such an edge, the candidate removes o. Over ``repeats`` repeats

    Δκ = (κ(origin) - κ(candidate)) / κ(origin)      κ: MetaNTK (or NTK) condition number
    ΔR = (R(origin) - R(candidate)) / R(origin)      R: distinct ReLU patterns of the thin net

are averaged; candidates are dense-ranked by Δκ descending (removing o lowers κ most)
and by ΔR ascending (removing o loses fewest regions), and on every edge the
``prune_number`` candidates with the smallest rank sum are removed (ties: stable, in
Δκ order). Phase 2 then scores the removal of each whole edge inside every node's
group of incoming edges and keeps the 2 with the largest rank sums.

Two modes. ``faithful=True`` reproduces the official code: default initialisation
(its re-initialisation is a no-op), a new random head for every network, both origin
and candidate scored on one fresh meta-batch per candidate and repeat, a new thin
origin per candidate, deltas rounded to ``precision`` decimals and ranked at
``precision`` significant figures. The default mode fixes its faults: per round and
repeat the kernel net is re-initialised (Kaiming normal, fan_out) and the thin net
(fan_in) from the seed, one meta-batch and one seeded head are shared by the origin
and all candidates, and the origin is scored once, not once per candidate. Both
modes are deterministic for a seed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from metantk_plugin.proxies.metantk import MetaNTK
from metantk_plugin.proxies.te_nas import linear_region_count, ntk_condition_number
from metantk_plugin.scoring.executors import Executor, LocalExecutor
from metantk_plugin.search.checkpoint import SearchCheckpoint
from metantk_plugin.search.settings import INDICATORS, SearchSettings
from metantk_plugin.search.space import REMOVED, PrunableSpace
from metantk_plugin.spaces.mixed_edges import active_operations
from metantk_plugin.task_spec import TaskSampler, as_task_sampler
from metantk_plugin.tasks import TaskBatch

__all__ = [
    "INDICATORS",
    "Candidate",
    "SearchResult",
    "SearchSettings",
    "TaskSource",
    "dense_ranks",
    "prune_order",
    "round_significant",
    "run_pruning_search",
]

TaskSource = TaskSampler
"""Where the search's meta-batches come from: a :class:`~metantk_plugin.task_spec.TaskSampler`
(:func:`run_pruning_search` also takes a function ``source(n_tasks, seed) -> TaskBatch``)."""


@dataclass
class Candidate:
    """Removing ``op`` from ``edge`` of ``cell`` (phase 2: the whole edge)."""

    cell: str
    edge: int
    op: str
    kappa_deltas: list[float] = field(default_factory=list)
    region_deltas: list[float] = field(default_factory=list)
    kappa_rank: int = -1
    region_rank: int = -1
    pruned: bool = False

    @property
    def kappa_delta(self) -> float:
        return float(np.mean(self.kappa_deltas))

    @property
    def region_delta(self) -> float:
        return float(np.mean(self.region_deltas))


@dataclass
class SearchResult:
    """The chosen architecture (``space.describe``), every round's candidates and
    decisions, the final alphas, evaluation counts and wall time: in all (``seconds``, summed
    over resumptions) and per round (``round_seconds[i]`` for ``rounds[i]``; None for a round
    finished before a resume from a checkpoint that did not record it, and the round under way
    at such a resume counts from the resume)."""

    architecture: dict[str, Any]
    rounds: list[dict[str, Any]]
    alphas: dict[str, list[list[float]]]
    kernel_evaluations: int
    region_evaluations: int
    seconds: float
    settings: dict[str, Any]
    round_seconds: list[float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_significant(x: float, digits: int) -> float:
    """``x`` rounded to ``digits`` significant figures (0 and non-finite values unchanged)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def dense_ranks(keys: Sequence[float], *, descending: bool) -> list[int]:
    """Dense ranks from 0: equal keys share a rank, the next distinct key gets the next rank."""
    distinct = sorted(set(keys), reverse=descending)
    position = {k: i for i, k in enumerate(distinct)}
    return [position[k] for k in keys]


def prune_order(kappa_deltas: Sequence[float], region_deltas: Sequence[float],
                precision: int | None) -> tuple[list[int], list[int], list[int]]:
    """Candidate indices in pruning order, with the Δκ and ΔR ranks.

    Ranking keys are rounded to ``precision`` significant figures when given. The
    order is the rank sum ascending; ties keep the order of the Δκ-descending sort,
    which itself keeps the candidates' order among equal Δκ (Python's stable sort).
    """
    def key(x: float) -> float:
        return round_significant(x, precision) if precision else x

    k_keys = [key(x) for x in kappa_deltas]
    r_keys = [key(x) for x in region_deltas]
    k_rank = dense_ranks(k_keys, descending=True)
    r_rank = dense_ranks(r_keys, descending=False)
    by_kappa = sorted(range(len(k_keys)), key=lambda i: -k_keys[i] if math.isfinite(k_keys[i]) else math.inf)
    order = sorted(by_kappa, key=lambda i: k_rank[i] + r_rank[i])
    return order, k_rank, r_rank


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


def _kaiming_normal_(network: nn.Module, *, mode: str, generator: torch.Generator) -> None:
    """Kaiming normal (ReLU gain) for conv/linear weights with ``mode`` fan, zero biases,
    norm layers at weight 1 and bias 0; draws from ``generator`` only."""
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                receptive = w[0, 0].numel()
                fan = (w.shape[1] if mode == "fan_in" else w.shape[0]) * receptive
                noise = torch.randn(w.shape, generator=generator, dtype=torch.float64) * math.sqrt(2.0 / fan)
                w.copy_(noise)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.GroupNorm, nn.modules.batchnorm._BatchNorm)) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _region_inputs(images: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random 3x3 crops of one random channel of random ``images`` ([M, C, H, W]) -> [n, 1, 3, 3]."""
    m, c, h, w = images.shape
    idx = torch.randint(m, (n,), generator=generator)
    ch = torch.randint(c, (n,), generator=generator)
    top = torch.randint(h - 2, (n,), generator=generator)
    left = torch.randint(w - 2, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(3))[:, :, None]
    cols = (left[:, None] + torch.arange(3))[:, None, :]
    crops = images[idx[:, None, None], ch[:, None, None], rows, cols]
    return crops.unsqueeze(1)


def _kappa(s: SearchSettings, network: nn.Module, tasks: TaskBatch, head_seed: int, label: str) -> float:
    """The indicator's condition number of ``network`` on ``tasks`` (1 for 'regions')."""
    if s.indicator == "regions":
        return 1.0
    if s.indicator == "ntk":
        return ntk_condition_number(network, tasks.inputs(), backend=s.backend, label=label)
    proxy = MetaNTK(s.algorithm, s.inner_lr_time, s.reg, seed=head_seed, backend=s.backend)
    return proxy.condition_number(network, tasks, label=label)


@dataclass(frozen=True)
class _RepeatSetting:
    """What the origin and every candidate of one round and repeat are scored with: the
    kernel net's weights (Kaiming normal, fan_out) from ``weight_seed``, the thin net's
    (fan_in) from ``weight_seed + 1``, one meta-batch, one head seed and one set of crops."""

    key: tuple[int, int]
    space: PrunableSpace
    settings: SearchSettings
    origin: dict[str, torch.Tensor]
    tasks: TaskBatch
    crops: torch.Tensor
    weight_seed: int
    head_seed: int


def _crop_pool(source: TaskSampler, s: SearchSettings) -> torch.Tensor:
    """The images [M, C, H, W] of 10 tasks the region crops of every round are cut from."""
    return source.sample(10, _derived_seed(s.seed, 999)).inputs()


def _repeat_setting(space: PrunableSpace, source: TaskSampler, s: SearchSettings, alphas: dict[str, torch.Tensor],
                    round_index: int, repeat: int, pool: torch.Tensor) -> _RepeatSetting:
    """The setting of ``repeat`` of round ``round_index`` (default mode), all drawn from the seed."""
    device = torch.device(s.device)
    batch_seed = _derived_seed(s.seed, round_index, repeat, 1)
    crops = _region_inputs(pool, s.region_samples,
                           torch.Generator().manual_seed(_derived_seed(s.seed, round_index, repeat, 2)))
    return _RepeatSetting((round_index, repeat), space, s, {k: v.clone() for k, v in alphas.items()},
                          source.sample(s.n_tasks, batch_seed).to(device), crops.to(device), batch_seed,
                          _derived_seed(batch_seed, 3))


class _TrialScorer:
    """``(setting, label, alphas) -> (κ, R, warnings)``: both networks of ``setting``
    conditioned on ``alphas``. The networks of the latest setting are kept, so that a
    worker builds them once per round and repeat; they are never pickled."""

    def __init__(self) -> None:
        self._built: tuple[tuple[int, int], nn.Module, nn.Module] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_built": None}

    def _networks(self, setting: _RepeatSetting) -> tuple[nn.Module, nn.Module]:
        if self._built is None or self._built[0] != setting.key:
            self._built = None  # the old pair goes before the new one is built
            device = torch.device(setting.settings.device)
            net = setting.space.kernel_network(setting.origin).to(device).train()
            _kaiming_normal_(net, mode="fan_out", generator=torch.Generator().manual_seed(setting.weight_seed))
            thin = setting.space.region_network(setting.origin).to(device).train()
            _kaiming_normal_(thin, mode="fan_in", generator=torch.Generator().manual_seed(setting.weight_seed + 1))
            self._built = (setting.key, net, thin)
        return self._built[1], self._built[2]

    def __call__(self, item: tuple[_RepeatSetting, str, dict[str, torch.Tensor]]) -> tuple[float, float, list]:
        setting, label, alphas = item
        net, thin = self._networks(setting)
        setting.space.apply_alphas(net, alphas)
        setting.space.apply_alphas(thin, alphas)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kappa = _kappa(setting.settings, net, setting.tasks, setting.head_seed, label)
            regions = float(linear_region_count(thin, setting.crops))
        return kappa, regions, [(w.message, w.category) for w in caught]


class _Scorer:
    """Computes κ and R for networks under the settings, here or on ``executor``, counting evaluations."""

    def __init__(self, settings: SearchSettings, executor: Executor):
        self.s = settings
        self.executor = executor
        self.trial_scorer = _TrialScorer()
        self.kernel_evaluations = 0
        self.region_evaluations = 0

    def kappa(self, network: nn.Module, tasks: TaskBatch, head_seed: int, label: str) -> float:
        self.kernel_evaluations += self.s.indicator != "regions"
        return _kappa(self.s, network, tasks, head_seed, label)

    def regions(self, network: nn.Module, x: torch.Tensor) -> float:
        self.region_evaluations += 1
        return float(linear_region_count(network, x))

    def trials(self, setting: _RepeatSetting,
               trials: list[tuple[str, dict[str, torch.Tensor]]]) -> Iterator[tuple[float, float]]:
        """``(κ, R)`` of each ``(label, alphas)`` under ``setting``, in order; the warnings
        of a worker are raised here."""
        for kappa, regions, caught in self.executor.map(self.trial_scorer,
                                                         [(setting, label, a) for label, a in trials]):
            for message, category in caught:
                warnings.warn(message, category, stacklevel=2)
            self.kernel_evaluations += self.s.indicator != "regions"
            self.region_evaluations += 1
            yield kappa, regions


def _relative_change(origin: float, candidate: float, precision: int | None) -> float:
    if not math.isfinite(origin):
        delta = 0.0 if not math.isfinite(candidate) else 1.0
    elif origin == 0:
        delta = 0.0
    else:
        delta = (origin - candidate) / origin
        if not math.isfinite(delta):
            delta = -math.inf
    return round(delta, precision) if precision is not None and math.isfinite(delta) else delta


def _with_removed(alphas: dict[str, torch.Tensor], cand: Candidate, op_index: int | None) -> dict[str, torch.Tensor]:
    new = {k: v.clone() for k, v in alphas.items()}
    if op_index is None:
        new[cand.cell][cand.edge, :] = REMOVED
    else:
        new[cand.cell][cand.edge, op_index] = REMOVED
    return new


def run_pruning_search(space: PrunableSpace, source: TaskSampler | Callable[[int, int], TaskBatch],
                       settings: SearchSettings | None = None, *, progress: bool = False,
                       checkpoint: SearchCheckpoint | None = None, executor: Executor | None = None) -> SearchResult:
    """Prune ``space``'s supernet to one architecture using tasks from ``source``.

    With a ``checkpoint`` the search saves its state as it goes and when it stops for any
    reason, and a search started again with the same checkpoint resumes where it stopped,
    with the same result (the origin of an unfinished round and repeat is scored again,
    so the evaluation counts include that). A faithful search draws from torch's global
    random state, so it cannot be resumed and refuses a checkpoint.

    ``executor`` (:func:`~metantk_plugin.scoring.executors.make_executor`; default: this
    process) scores the origin and the candidates of each round and repeat. On 2 CPU
    cores, 2 spawned processes of 1 torch thread each score about 1.2x as many DARTS
    candidates per minute as this process with 2 threads (``benchmarks/search_executor_ab.py``).
    A process worker builds a repeat's networks once; a Ray task builds them for every
    candidate. A score does not depend on which worker computed it, only on the torch
    thread count, in its last bits (which an ill-conditioned kernel can magnify). A
    faithful search runs in this process only."""
    s = settings or SearchSettings()
    if checkpoint is not None and s.faithful:
        raise ValueError("a faithful search draws from torch's global random state and cannot be resumed; "
                         "run it without a checkpoint")
    executor = executor or LocalExecutor()
    if s.faithful and not isinstance(executor, LocalExecutor):
        raise ValueError("a faithful search draws from torch's global random state, so it runs in this process; "
                         "use the local executor")
    source = as_task_sampler(source)
    start = time.perf_counter()
    scorer = _Scorer(s, executor)
    alphas = {k: v.clone().float() for k, v in space.initial_alphas().items()}
    rounds: list[dict[str, Any]] = []
    round_seconds: list[float | None] = []
    current: dict[str, Any] | None = None
    seconds_before = 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        alphas = {k: torch.tensor(v, dtype=torch.float32) for k, v in saved["alphas"].items()}
        rounds, current, seconds_before = saved["rounds"], saved["current"], float(saved["seconds"])
        round_seconds = saved.get("round_seconds", [None] * len(rounds))
        scorer.kernel_evaluations = int(saved["kernel_evaluations"])
        scorer.region_evaluations = int(saved["region_evaluations"])
    under_way: dict[str, Any] = {"current": current}
    round_clock = _RoundClock()

    def save(*, force: bool = False) -> None:
        if checkpoint is not None:
            current = under_way["current"]
            checkpoint.save({
                "alphas": {k: v.tolist() for k, v in alphas.items()}, "rounds": rounds,
                "current": None if current is None else {**current, "candidates": [asdict(c) for c in
                                                                                   current["candidates"]]},
                "kernel_evaluations": scorer.kernel_evaluations, "region_evaluations": scorer.region_evaluations,
                "seconds": seconds_before + time.perf_counter() - start,
                "round_seconds": round_seconds, "current_round_seconds": round_clock.seconds(),
            }, force=force)

    def resumed_or(fresh: Callable[[], list[Candidate]], **where: Any) -> list[Candidate]:
        """The saved candidates of this round when the search stopped in it, else ``fresh()``."""
        nonlocal current
        if current is not None and all(current.get(k) == v for k, v in where.items()):
            cands = [Candidate(**{**c, "pruned": False}) for c in current["candidates"]]
            current = None
            round_clock.start(float(saved.get("current_round_seconds", 0.0)))
        else:
            cands = fresh()
            round_clock.start()
        under_way["current"] = {**where, "candidates": cands}
        return cands

    rank_precision = s.effective_precision
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        head_rng = np.random.default_rng(s.seed)
        pool = _crop_pool(source, s)
        round_index = len(rounds)
        with tqdm(desc=f"MetaNTK-NAS on {space.name}", unit="round", initial=round_index,
                  total=round_index + _planned_rounds(space, alphas, s), disable=not progress) as bar:
            try:
                while True:
                    active = {c: active_operations(a) for c, a in alphas.items()}
                    cands = resumed_or(lambda active=active: [
                        Candidate(c, e, space.op_names[o]) for c in space.cell_types for e in range(space.n_edges)
                        if len(active[c][e]) > 1 for o in active[c][e]], phase=1)
                    if not cands:
                        break
                    _score_candidates(space, source, s, scorer, alphas, cands, round_index, pool, head_rng,
                                      whole_edge=False, scored=save)
                    removed: dict[tuple[str, int], int] = {}
                    for c in _ranked(cands, rank_precision):
                        edge_active = len(active[c.cell][c.edge])
                        if removed.get((c.cell, c.edge), 0) < min(s.prune_number, edge_active - 1):
                            removed[(c.cell, c.edge)] = removed.get((c.cell, c.edge), 0) + 1
                            alphas[c.cell][c.edge, space.op_names.index(c.op)] = REMOVED
                            c.pruned = True
                    rounds.append({"phase": 1, "round": round_index, "candidates": [asdict(c) for c in cands]})
                    round_seconds.append(round_clock.seconds())
                    under_way["current"] = None
                    round_index += 1
                    bar.update(1)
                for cell in space.cell_types:
                    for lo, hi in space.edge_groups:
                        edges = [e for e, ops in enumerate(active_operations(alphas[cell][lo:hi]), lo) if ops]
                        if len(edges) <= 2:
                            continue
                        cands = resumed_or(lambda cell=cell, edges=edges: [
                            Candidate(cell, e, space.op_names[int(torch.argmax(alphas[cell][e]))]) for e in edges],
                            phase=2, cell=cell, group=[lo, hi])
                        _score_candidates(space, source, s, scorer, alphas, cands, round_index, pool, head_rng,
                                          whole_edge=True, scored=save)
                        for rank_pos, c in enumerate(_ranked(cands, rank_precision)):
                            if rank_pos < len(cands) - 2:
                                alphas[cell][c.edge, :] = REMOVED
                                c.pruned = True
                        rounds.append({"phase": 2, "round": round_index, "cell": cell, "group": [lo, hi],
                                       "candidates": [asdict(c) for c in cands]})
                        round_seconds.append(round_clock.seconds())
                        under_way["current"] = None
                        round_index += 1
                        bar.update(1)
            except BaseException:
                save(force=True)
                raise
    return SearchResult(
        architecture=space.describe(alphas),
        rounds=rounds,
        alphas={k: v.tolist() for k, v in alphas.items()},
        kernel_evaluations=scorer.kernel_evaluations,
        region_evaluations=scorer.region_evaluations,
        seconds=seconds_before + time.perf_counter() - start,
        settings={k: (str(v) if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(s).items()},
        round_seconds=round_seconds,
    )


class _RoundClock:
    """Wall seconds of the round under way, carrying what it had when a search stopped."""

    def __init__(self) -> None:
        self.start()

    def start(self, carried: float = 0.0) -> None:
        self._began, self._carried = time.perf_counter(), carried

    def seconds(self) -> float:
        return self._carried + time.perf_counter() - self._began


def _planned_rounds(space: PrunableSpace, alphas: dict[str, torch.Tensor], s: SearchSettings) -> int:
    """How many rounds :func:`run_pruning_search` will run from ``alphas`` (the progress bar's total)."""
    widest = max(len(ops) for a in alphas.values() for ops in active_operations(a))
    pruning = math.ceil((widest - 1) / s.prune_number) if widest > 1 else 0
    choosing = sum(1 for _ in space.cell_types for lo, hi in space.edge_groups if hi - lo > 2)
    return pruning + choosing


def _ranked(cands: list[Candidate], precision: int | None) -> list[Candidate]:
    """The candidates in pruning order, with their Δκ and ΔR ranks filled in."""
    order, k_rank, r_rank = prune_order([c.kappa_delta for c in cands], [c.region_delta for c in cands], precision)
    for i, c in enumerate(cands):
        c.kappa_rank, c.region_rank = k_rank[i], r_rank[i]
    return [cands[i] for i in order]


def _score_candidates(space: PrunableSpace, source: TaskSampler, s: SearchSettings, scorer: _Scorer,
                      alphas: dict[str, torch.Tensor], cands: list[Candidate], round_index: int,
                      pool: torch.Tensor, head_rng: np.random.Generator, *, whole_edge: bool,
                      scored: Callable[[], None] = lambda: None) -> None:
    """Fill ``kappa_deltas`` and ``region_deltas`` of every candidate, one entry per repeat;
    ``scored()`` after each entry. In the default mode a candidate that already has the
    entry of a repeat (a resumed round) is skipped, and so is a repeat that all have."""
    device = torch.device(s.device)

    def cand_alphas(c: Candidate) -> dict[str, torch.Tensor]:
        return _with_removed(alphas, c, None if whole_edge else space.op_names.index(c.op))

    precision = s.effective_precision
    if s.faithful:
        # the official loop: one origin per round with default weights; per candidate a new
        # thin origin and, per repeat, a fresh meta-batch and a new random head per network
        net = space.kernel_network(alphas).to(device).train()
        for j, c in enumerate(cands):
            thin = space.region_network(alphas).to(device).train()
            for repeat in range(s.repeats):
                batch_seed = _derived_seed(s.seed, round_index, j, repeat, 1)
                tasks = source.sample(s.n_tasks, batch_seed).to(device)
                space.apply_alphas(net, alphas)
                k_o = scorer.kappa(net, tasks, int(head_rng.integers(2**31)), "origin")
                space.apply_alphas(net, cand_alphas(c))
                k_c = scorer.kappa(net, tasks, int(head_rng.integers(2**31)), f"{c.cell}/{c.edge}/{c.op}")
                c.kappa_deltas.append(_relative_change(k_o, k_c, precision))
                crops = _region_inputs(pool, s.region_samples, torch.Generator().manual_seed(batch_seed)).to(device)
                space.apply_alphas(thin, alphas)
                r_o = scorer.regions(thin, crops)
                space.apply_alphas(thin, cand_alphas(c))
                c.region_deltas.append(_relative_change(r_o, scorer.regions(thin, crops), precision))
        space.apply_alphas(net, alphas)
        return
    for repeat in range(s.repeats):
        todo = [c for c in cands if len(c.kappa_deltas) <= repeat]
        if not todo:
            continue
        setting = _repeat_setting(space, source, s, alphas, round_index, repeat, pool)
        trials = [("origin", alphas)] + [(f"{c.cell}/{c.edge}/{c.op}", cand_alphas(c)) for c in todo]
        scores = scorer.trials(setting, trials)
        k_o, r_o = next(scores)
        for c, (k_c, r_c) in zip(todo, scores):
            c.kappa_deltas.append(_relative_change(k_o, k_c, precision))
            c.region_deltas.append(_relative_change(r_o, r_c, precision))
            scored()
