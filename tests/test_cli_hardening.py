"""Ordinary failures of every command are one line and an exit status, checked before the
work where they can be; Ctrl-C is one line, exit 130, and keeps what was done."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch
from cli_support import act_on_metantk, interrupt_metantk, process_alive, run_metantk, spawned_children

from metantk_plugin.cli import main
from metantk_plugin.commands import search as search_command
from metantk_plugin.scoring.store import read_scores

SMALL_SEARCH = ["search", "--space", "nb201", "--data", "synthetic", "--channels", "4", "--image-size", "8",
                "--tasks", "1", "--ways", "2", "--region-samples", "20", "--prune-number", "4", "--json"]
SMALL_SCORE = ["--channels", "2", "--cells", "1", "--image-size", "8", "--tasks", "1", "--ways", "3", "--quiet"]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"metantk {command}: error: "), err
    return lines[0]


# ---------------------------------------------------------------- checked before the work
def test_search_checks_truth_and_out_before_searching(tmp_path, capsys):
    missing = tmp_path / "no-such-table.csv.gz"
    assert main([*SMALL_SEARCH, "--truth", str(missing)]) == 2
    assert str(missing) in _one_line_error(capsys, "search")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([*SMALL_SEARCH, "--out", str(blocker / "run")]) == 2
    assert "a-file is a file, not a folder" in _one_line_error(capsys, "search")
    assert main([*SMALL_SEARCH, "--space", "darts-fewshot", "--truth", str(missing)]) == 2
    assert "applies to --space nb201 only" in _one_line_error(capsys, "search")


def test_a_finished_search_is_kept_when_its_file_cannot_be_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "gone"
    blocker.write_text("the folder was replaced by a file during the search")
    failure = search_command._save({"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
                                   blocker / "search.json")
    assert isinstance(failure, OSError) and "the finished search is saved in" in str(failure)
    rescue = str(failure).rsplit(" ", 1)[-1]
    assert json.loads(open(rescue).read())["arch"].startswith("|none~0|")


def test_a_truth_table_without_the_chosen_cell_does_not_lose_the_search(tmp_path, capsys):
    table = tmp_path / "two_cells.csv"
    table.write_text("index,cifar10_test\n2,71.5\n7,80.25\n")
    with pytest.warns(UserWarning, match="the chosen cell's accuracy cannot be looked up"):
        assert main([*SMALL_SEARCH, "--truth", str(table), "--out", str(tmp_path / "run")]) == 0
    stored = json.loads((tmp_path / "run" / "search.json").read_text())
    assert stored["ground_truth"] is None and stored["arch"] == json.loads(capsys.readouterr().out)["arch"]


@pytest.mark.parametrize(("option", "value"), [("--ways", "0"), ("--shots", "0"), ("--queries", "-1"),
                                               ("--image-size", "0"), ("--channels", "0"), ("--cells", "0")])
def test_search_refuses_sizes_below_one(option, value, capsys):
    assert main([*SMALL_SEARCH, option, value]) == 2
    line = _one_line_error(capsys, "search")
    assert "must be a positive int" in line and value in line


@pytest.mark.parametrize(("option", "value"), [("--ways", "1000000"), ("--channels", "100000000")])
def test_search_with_huge_sizes_is_one_line(option, value, capsys):
    status = main([*SMALL_SEARCH, option, value])
    err = capsys.readouterr().err
    assert status in (1, 2) and "Traceback" not in err
    assert err.startswith("metantk search: error: ") and len(err.strip().splitlines()) == 1


def test_unwritable_outputs_are_one_line_in_every_command(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["score", "--archs", "sample:1", "--proxies", "params", "--out", str(blocker / "s.h5"),
                 *SMALL_SCORE]) == 2
    assert "a-file" in _one_line_error(capsys, "score")
    score_file = tmp_path / "s.h5"
    assert main(["score", "--archs", "sample:2", "--proxies", "params", "--out", str(score_file), *SMALL_SCORE]) == 0
    capsys.readouterr()
    assert main(["score", "--archs", "sample:2", "--proxies", "params", "--out", str(score_file),
                 "--csv", str(blocker / "s.csv"), *SMALL_SCORE]) == 2
    assert "--csv" in _one_line_error(capsys, "score")
    assert main(["correlate", str(score_file), "--plot", str(blocker / "p.png"), "--bootstrap", "10"]) == 2
    assert "--plot" in _one_line_error(capsys, "correlate")
    assert main(["evaluate", "--network", "conv4", "--data", "synthetic", "--quiet", "--out",
                 str(blocker / "run")]) == 2
    assert "--out" in _one_line_error(capsys, "evaluate")


@pytest.mark.parametrize("argv", [
    [*SMALL_SEARCH, "--device", "cuda:x"],
    ["score", "--archs", "sample:1", "--proxies", "params", "--out", "s.h5", *SMALL_SCORE, "--device", "cuda:x"],
    ["evaluate", "--network", "conv4", "--data", "synthetic", "--quiet", "--device", "gpu"],
])
def test_a_device_torch_cannot_name_is_one_line_in_every_command(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "is not a device; use cpu, cuda or cuda:N" in _one_line_error(capsys, argv[0])
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_score_refuses_cuda_where_there_is_none(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["score", "--archs", "sample:1", "--proxies", "params", "--out", str(out), *SMALL_SCORE,
                 "--device", "cuda"]) == 2
    assert "CUDA is not available" in _one_line_error(capsys, "score")
    assert not out.exists()


def test_evaluate_names_a_factory_that_is_not_one(capsys):
    for network, message in (("module:os:system", "cannot be called as system(num_classes=5"),
                             ("module:math:pi", "is a float, not a callable pi(")):
        assert main(["evaluate", "--network", network, "--data", "synthetic", "--quiet"]) == 2
        assert message in _one_line_error(capsys, "evaluate")


# ---------------------------------------------------------------- warnings and progress
def test_warnings_print_without_their_source_line(tmp_path):
    archs = tmp_path / "a.txt"
    archs.write_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")  # no path from input to output
    done = run_metantk(["score", "--archs", str(archs), "--proxies", "metantk", "--out", str(tmp_path / "s.h5"),
                        *SMALL_SCORE], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "metantk: DegenerateKernelWarning: metantk on |none~0|" in done.stderr
    assert "warnings.warn" not in done.stderr and ".py:" not in done.stderr


def test_the_search_progress_bar_has_the_number_of_rounds_as_its_total_and_each_round_is_timed(tmp_path):
    args = [*SMALL_SEARCH[:-1], "--prune-number", "2", "--out", str(tmp_path / "run")]  # NB201: 5 operations
    done = run_metantk(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| 0/2 [" in done.stderr and "| 2/2 [" in done.stderr
    stored = json.loads((tmp_path / "run" / "search.json").read_text())
    assert len(stored["rounds"]) == 2 and len(stored["round_seconds"]) == 2
    assert "seconds per round: " + ", ".join(f"{t:.1f}" for t in stored["round_seconds"]) in done.stdout


# ---------------------------------------------------------------- Ctrl-C
def _interrupted(status: int, err: str, command: str) -> str:
    assert status == 130, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"metantk {command}: interrupted; "), err
    return last


def test_ctrl_c_in_search(tmp_path):
    status, err = interrupt_metantk([*SMALL_SEARCH[:-1], "--channels", "8", "--prune-number", "1"], cwd=tmp_path,
                                    wait_for="MetaNTK-NAS")
    assert "no result to keep" in _interrupted(status, err, "search")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_in_a_search_with_out_checkpoints_it_and_the_same_command_resumes_it(tmp_path, capsys, signum):
    """Ctrl-C, or SIGTERM as from kill or a batch scheduler."""
    args = [*SMALL_SEARCH[:-1], "--channels", "8", "--prune-number", "1", "--repeats", "2"]
    status, err = interrupt_metantk([*args, "--out", str(tmp_path / "run")], cwd=tmp_path, signum=signum,
                                    wait_for=r"MetaNTK-NAS on nb201: .*\| *[1-3]/4 ")  # a round done, one under way
    assert "run the same command to resume it" in _interrupted(status, err, "search")
    assert (tmp_path / "run" / "search-checkpoint.json").is_file()
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    resumed, whole = (json.loads((tmp_path / d / "search.json").read_text()) for d in ("run", "whole"))
    assert (resumed["arch"], resumed["rounds"], resumed["alphas"]) == (whole["arch"], whole["rounds"], whole["alphas"])
    assert not (tmp_path / "run" / "search-checkpoint.json").exists()


def test_ctrl_c_in_a_search_on_worker_processes_reaches_them_all_and_the_same_command_resumes_it(tmp_path, capsys):
    """Ctrl-C in a terminal signals the whole process group: the workers too."""
    args = [*SMALL_SEARCH[:-1], "--channels", "8", "--prune-number", "1", "--repeats", "2",
            "--executor", "processes", "--workers", "2"]
    workers: list[int] = []

    def ctrl_c(process) -> None:
        workers.extend(spawned_children(process.pid))
        os.killpg(process.pid, signal.SIGINT)

    status, err = act_on_metantk([*args, "--out", str(tmp_path / "run")], cwd=tmp_path, action=ctrl_c,
                                 wait_for=r"MetaNTK-NAS on nb201: .*\| *[1-3]/4 ", own_group=True)
    assert "run the same command to resume it" in _interrupted(status, err, "search")
    assert len(workers) == 2
    deadline = time.monotonic() + 20
    while any(process_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(process_alive(pid) for pid in workers)
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    resumed, whole = (json.loads((tmp_path / d / "search.json").read_text()) for d in ("run", "whole"))
    assert (resumed["arch"], resumed["rounds"], resumed["alphas"]) == (whole["arch"], whole["rounds"], whole["alphas"])


def test_a_search_refuses_the_checkpoint_of_another_search_until_forced(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "search-checkpoint.json").write_text("{}")
    assert main([*SMALL_SEARCH, "--out", str(out)]) == 2
    assert "is not a metantk search checkpoint" in capsys.readouterr().err
    assert main([*SMALL_SEARCH, "--out", str(out), "--force"]) == 0
    assert (out / "search.json").is_file() and not (out / "search-checkpoint.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_in_score_keeps_the_finished_architectures(tmp_path, signum):
    out = tmp_path / "s.h5"
    args = ["score", "--archs", "sample:400", "--proxies", "metantk,synflow", "--out", str(out), "--chunk", "1",
            *SMALL_SCORE[:-1]]
    first_done = r"scoring: .*\| *[1-9]\d*/400 "  # not a percentage: a fast machine skips '1%'
    status, err = interrupt_metantk(args, cwd=tmp_path, wait_for=first_done, signum=signum)
    assert "run the same command to resume" in _interrupted(status, err, "score")
    assert 0 < len(read_scores(out)) < 400


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_in_evaluate_writes_a_checkpoint(tmp_path, signum):
    out = tmp_path / "run"
    args = ["evaluate", "--network", "conv4", "--data", "synthetic", "--image-size", "8", "--meta-iterations",
            "100000", "--meta-batch", "2", "--episodes", "2", "--out", str(out)]
    status, err = interrupt_metantk(args, cwd=tmp_path, wait_for="meta-train", signum=signum)
    assert "checkpointed in" in _interrupted(status, err, "evaluate")
    assert (out / "checkpoint.pt").is_file()


def test_ctrl_c_in_correlate(tmp_path, shared_data, monkeypatch):
    # the command runs in tmp_path, from where the table is not found beside the working directory
    monkeypatch.setenv("METANTK_NB201_CSV", str(shared_data / "nasbench201" / "nb201_accuracies.csv.gz"))
    out = tmp_path / "s.h5"
    assert main(["score", "--archs", "sample:30", "--proxies", "params,flops", "--out", str(out), *SMALL_SCORE]) == 0
    args = ["correlate", str(out), "--dataset", "all", "--bootstrap", "200000"]
    status, err = interrupt_metantk(args, cwd=tmp_path, delay=4.0)
    assert "nothing was written" in _interrupted(status, err, "correlate")
