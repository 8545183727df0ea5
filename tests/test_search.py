"""The MetaNTK-NAS pruning search: ranking rules, both spaces, both modes, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from metantk_plugin.cli import main
from metantk_plugin.search import SearchSettings, run_pruning_search
from metantk_plugin.search.darts_space import DartsFewshotSearchSpace
from metantk_plugin.search.nb201_space import NB201SearchSpace
from metantk_plugin.search.pruning import dense_ranks, prune_order, round_significant
from metantk_plugin.spaces.darts_fewshot import Genotype
from metantk_plugin.spaces.nasbench201 import parse_arch
from metantk_plugin.tasks import synthetic_tasks


def tiny_source(n_tasks: int, seed: int):
    return synthetic_tasks(n_tasks=n_tasks, ways=3, shots=1, queries=1, image_size=8, seed=seed)


def test_round_significant_and_dense_ranks():
    assert round_significant(0.0123456, 3) == 0.0123
    assert round_significant(-1234.5, 2) == -1200
    assert round_significant(0.0, 3) == 0.0 and math.isinf(round_significant(math.inf, 3))
    assert dense_ranks([0.5, 0.1, 0.5, 0.3], descending=True) == [0, 2, 0, 1]
    assert dense_ranks([0.5, 0.1, 0.5, 0.3], descending=False) == [2, 0, 2, 1]


def test_prune_order_follows_the_official_rule():
    kappa = [0.20, 0.10, 0.20, -0.05]  # higher Δκ: removing it lowers κ most
    regions = [0.00, 0.00, 0.30, 0.10]  # lower ΔR: removing it loses fewest regions
    order, k_rank, r_rank = prune_order(kappa, regions, precision=None)
    assert k_rank == [0, 1, 0, 2] and r_rank == [0, 0, 2, 1]
    # rank sums 0, 1, 2, 3; candidates 0 and 2 tie on Δκ but not on the sum
    assert order == [0, 1, 2, 3]
    # a tie of rank sums keeps the Δκ-descending order (stable sorts)
    order, _, _ = prune_order([0.1, 0.3, 0.2], [0.2, 0.0, 0.1], precision=None)
    assert order == [1, 2, 0]
    # 3 significant figures make 0.12341 and 0.12339 equal
    _, k_rank, _ = prune_order([0.12341, 0.12339], [0.0, 0.0], precision=3)
    assert k_rank == [0, 0]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="indicator must be one of"):
        SearchSettings(indicator="snip")
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        SearchSettings(repeats=0)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        SearchSettings(algorithm="reptile")
    assert SearchSettings(faithful=True).effective_precision == 3
    assert SearchSettings().effective_precision is None


def test_nb201_search_is_complete_and_deterministic():
    space = NB201SearchSpace(channels=8, cells=1)
    settings = SearchSettings(repeats=1, n_tasks=2, region_samples=100, seed=3)
    first = run_pruning_search(space, tiny_source, settings)
    again = run_pruning_search(space, tiny_source, settings)
    arch = parse_arch(first.architecture["arch"])
    assert arch.index == first.architecture["index"]
    assert first.architecture == again.architecture and first.rounds == again.rounds
    # 5 -> 1 operations on 6 edges: 4 rounds of 30 + 24 + 18 + 12 candidates, the origin once per round
    assert [len(r["candidates"]) for r in first.rounds] == [30, 24, 18, 12]
    assert first.kernel_evaluations == 84 + 4 and first.region_evaluations == 84 + 4
    assert len(first.round_seconds) == 4 and all(t > 0 for t in first.round_seconds)
    assert sum(first.round_seconds) <= first.seconds
    for r in first.rounds:
        pruned = [(c["cell"], c["edge"]) for c in r["candidates"] if c["pruned"]]
        assert sorted(pruned) == sorted(set(pruned)) and len(pruned) == 6


def test_faithful_mode_scores_the_origin_per_candidate():
    space = NB201SearchSpace(channels=8, cells=1)
    common = dict(repeats=1, n_tasks=2, region_samples=100, seed=0, prune_number=4)
    fixed = run_pruning_search(space, tiny_source, SearchSettings(**common))
    faithful = run_pruning_search(space, tiny_source, SearchSettings(faithful=True, **common))
    assert fixed.kernel_evaluations == 30 + 1
    assert faithful.kernel_evaluations == 2 * 30
    deltas = [d for c in faithful.rounds[0]["candidates"] for d in c["kappa_deltas"]]
    assert all(d == round(d, 3) for d in deltas)
    again = run_pruning_search(space, tiny_source, SearchSettings(faithful=True, **common))
    assert (faithful.rounds, faithful.architecture) == (again.rounds, again.architecture)


def test_darts_search_returns_the_same_valid_genotype_twice_and_runs_phase_two():
    space = DartsFewshotSearchSpace(channels=16, cells=2, num_classes=3)
    settings = SearchSettings(repeats=1, n_tasks=1, region_samples=100, seed=1, prune_number=6)
    result = run_pruning_search(space, tiny_source, settings)
    assert run_pruning_search(space, tiny_source, settings).architecture == result.architecture
    genotype = Genotype.from_string(result.architecture["genotype"])
    assert Genotype.from_dict(result.architecture["genotype_json"]) == genotype
    phase2 = [r for r in result.rounds if r["phase"] == 2]
    assert [(r["cell"], r["group"]) for r in phase2] == [("normal", [2, 5]), ("normal", [5, 9]),
                                                        ("reduce", [2, 5]), ("reduce", [5, 9])]
    for r in phase2:
        assert sum(not c["pruned"] for c in r["candidates"]) == 2
    for cell in ("normal", "reduce"):
        alive = [e for e, row in enumerate(result.alphas[cell]) if max(row) > -1000]
        assert len(alive) == 6  # 2 edges per node


def test_search_cli_writes_json_and_refuses_to_overwrite(tmp_path, capsys):
    args = ["search", "--space", "nb201", "--data", "synthetic", "--channels", "8", "--image-size", "8",
            "--tasks", "2", "--region-samples", "100", "--prune-number", "4", "--seed", "2",
            "--out", str(tmp_path / "run"), "--json"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "run" / "search.json").read_text())
    assert printed == stored
    assert parse_arch(stored["arch"]).index == stored["index"]
    assert stored["rounds"][0]["phase"] == 1 and stored["settings"]["seed"] == 2
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["search", "--data", "nowhere:/x"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_cuda_request_without_cuda_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["search", "--device", "cuda", "--channels", "8"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_the_search_spaces_are_found_by_name_with_their_default_size():
    from metantk_plugin.search.spaces import build_search_space, supernet_size

    assert supernet_size("nb201") == (16, 1) and supernet_size("darts-fewshot", cells=8) == (16, 8)
    space = build_search_space("nb201", channels=4)
    assert isinstance(space, NB201SearchSpace) and (space.channels, space.cells) == (4, 1)
    assert isinstance(build_search_space("darts-fewshot", channels=4, cells=2), DartsFewshotSearchSpace)
    with pytest.raises(ValueError, match="unknown search space 'nb301'; available: nb201, darts-fewshot"):
        supernet_size("nb301")


def test_the_chosen_cell_stands_among_the_cells_of_the_table(tmp_path, monkeypatch):
    from metantk_plugin.spaces.nasbench201.ground_truth import find_ground_truth

    table = tmp_path / "three_cells.csv"
    table.write_text("index,cifar10_test\n2,71.5\n7,80.25\n9,60.0\n")
    standing = find_ground_truth(table).standing(7, datasets=("cifar10",))
    assert standing == {"cifar10": {"accuracy": 80.25, "space_mean": pytest.approx(70.583333),
                                    "space_best": 80.25, "percentile": pytest.approx(2 / 15625 * 100)}}
    monkeypatch.setenv("METANTK_NB201_CSV", str(tmp_path / "missing.csv.gz"))
    assert find_ground_truth() is None
    with pytest.raises(FileNotFoundError):
        find_ground_truth(tmp_path / "missing.csv")


class _StopsAfter:
    """A task source that stops the search (as Ctrl-C would) on its ``calls``-th draw."""

    def __init__(self, calls: int):
        self.calls = calls

    def __call__(self, n_tasks: int, seed: int):
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt
        return tiny_source(n_tasks, seed)


@pytest.mark.parametrize("stop_at_draw", [3, 4, 5])  # draws: the crop pool, then one per round and repeat
def test_an_interrupted_search_resumes_to_the_same_result(tmp_path, stop_at_draw):
    from metantk_plugin.search import SearchCheckpoint

    space = NB201SearchSpace(channels=4, cells=1)
    settings = SearchSettings(repeats=2, n_tasks=2, region_samples=50, seed=5, prune_number=2)
    whole = run_pruning_search(space, tiny_source, settings)
    path = tmp_path / "state.json"
    with pytest.raises(KeyboardInterrupt):
        run_pruning_search(space, _StopsAfter(stop_at_draw), settings,
                           checkpoint=SearchCheckpoint(path, {"case": 1}, every_seconds=0))
    saved = json.loads(path.read_text())
    assert saved["kernel_evaluations"] > 0
    resumed = run_pruning_search(space, tiny_source, settings, checkpoint=SearchCheckpoint(path, {"case": 1}))
    assert resumed.architecture == whole.architecture
    assert resumed.rounds == whole.rounds and resumed.alphas == whole.alphas
    # the rounds finished before the stop keep their seconds; the one under way adds what it had
    finished = len(saved["rounds"])
    assert resumed.round_seconds[:finished] == saved["round_seconds"]
    assert len(resumed.round_seconds) == len(whole.rounds)
    if saved["current"] is not None:
        assert resumed.round_seconds[finished] > saved["current_round_seconds"] > 0
    assert resumed.kernel_evaluations >= whole.kernel_evaluations  # an unfinished repeat scores its origin again
    with pytest.raises(ValueError, match=r"holds another search \(case: 1 there, 2 now\)"):
        run_pruning_search(space, tiny_source, settings, checkpoint=SearchCheckpoint(path, {"case": 2}))


def test_a_checkpoint_saved_before_rounds_were_timed_still_resumes(tmp_path):
    from metantk_plugin.search import SearchCheckpoint

    space = NB201SearchSpace(channels=4, cells=1)
    settings = SearchSettings(repeats=2, n_tasks=2, region_samples=50, seed=5, prune_number=2)
    whole = run_pruning_search(space, tiny_source, settings)
    path = tmp_path / "state.json"
    with pytest.raises(KeyboardInterrupt):
        run_pruning_search(space, _StopsAfter(4), settings, checkpoint=SearchCheckpoint(path, {}, every_seconds=0))
    saved = json.loads(path.read_text())
    assert len(saved["rounds"]) == 1 and saved["current"] is not None
    path.write_text(json.dumps({k: v for k, v in saved.items() if k not in ("round_seconds", "current_round_seconds")}))
    resumed = run_pruning_search(space, tiny_source, settings, checkpoint=SearchCheckpoint(path, {}))
    assert (resumed.rounds, resumed.alphas) == (whole.rounds, whole.alphas)
    assert resumed.round_seconds[0] is None and all(t > 0 for t in resumed.round_seconds[1:])


def test_a_checkpoint_that_is_not_one_is_refused_and_faithful_searches_take_none(tmp_path):
    from metantk_plugin.search import SearchCheckpoint

    space = NB201SearchSpace(channels=8, cells=1)
    path = tmp_path / "state.json"
    for text in ("{not json", '{"format": "something else"}', "[1, 2]"):
        path.write_text(text)
        with pytest.raises(ValueError, match="checkpoint"):
            run_pruning_search(space, tiny_source, SearchSettings(n_tasks=1, region_samples=50),
                               checkpoint=SearchCheckpoint(path, {}))
    with pytest.raises(ValueError, match="faithful search .* cannot be resumed"):
        run_pruning_search(space, tiny_source, SearchSettings(faithful=True), checkpoint=SearchCheckpoint(path, {}))


def test_a_checkpoint_that_cannot_be_written_warns_and_the_search_goes_on(tmp_path):
    from metantk_plugin.search import SearchCheckpoint

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    space = NB201SearchSpace(channels=4, cells=1)
    settings = SearchSettings(n_tasks=1, region_samples=50, prune_number=4)
    with pytest.warns(RuntimeWarning, match="cannot write the search checkpoint"):
        result = run_pruning_search(space, tiny_source, settings,
                                    checkpoint=SearchCheckpoint(blocked / "state.json", {}, every_seconds=0))
    assert result.architecture == run_pruning_search(space, tiny_source, settings).architecture


def test_a_search_on_worker_processes_equals_the_search_here_at_their_thread_count():
    from metantk_plugin.scoring.executors import ProcessExecutor

    space = NB201SearchSpace(channels=4, cells=1)
    settings = SearchSettings(repeats=2, n_tasks=2, region_samples=50, seed=5, prune_number=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each worker's, so that the arithmetic is the same
    try:
        here = run_pruning_search(space, tiny_source, settings)
    finally:
        torch.set_num_threads(threads)
    with ProcessExecutor(2) as pool:
        there = run_pruning_search(space, tiny_source, settings, executor=pool)
        with pytest.raises(ValueError, match="faithful search .* runs in this process"):
            run_pruning_search(space, tiny_source, SearchSettings(faithful=True), executor=pool)
    assert (there.architecture, there.rounds, there.alphas) == (here.architecture, here.rounds, here.alphas)
    assert (there.kernel_evaluations, there.region_evaluations) == (here.kernel_evaluations, here.region_evaluations)


def test_what_a_worker_warns_is_warned_here():
    from metantk_plugin.kernels import DegenerateKernelWarning
    from metantk_plugin.scoring.executors import ProcessExecutor
    from metantk_plugin.search.pruning import _RepeatSetting, _Scorer

    space = NB201SearchSpace(channels=4, cells=1)
    settings = SearchSettings(n_tasks=2)
    tasks = tiny_source(2, 0)
    tasks.query_x[0] = math.nan  # a NaN image makes a NaN kernel
    origin = space.initial_alphas()
    setting = _RepeatSetting((0, 0), space, settings, origin, tasks, torch.rand(20, 1, 3, 3), 1, 2)
    with ProcessExecutor(1) as pool:
        scorer = _Scorer(settings, pool)
        with pytest.warns(DegenerateKernelWarning, match="origin: NTK has NaN"):
            [(kappa, _)] = list(scorer.trials(setting, [("origin", origin)]))
    assert kappa == math.inf and scorer.kernel_evaluations == scorer.region_evaluations == 1
