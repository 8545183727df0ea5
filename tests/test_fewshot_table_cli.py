"""``metantk evaluate --archs`` (few-shot tables), NAS-Bench-201 cells and search results as
``--network``, and ``metantk correlate --truth TABLE.h5``, with their one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from scipy.stats import spearmanr

from metantk_plugin.cli import main
from metantk_plugin.fewshot.table import read_fewshot_table
from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.store import read_scores
from metantk_plugin.spaces.darts_fewshot import resolve_genotype

ARCH = "|none~0|+|none~0|avg_pool_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
TINY = ["--protocol", "rfs", "--ways", "3", "--queries", "2", "--meta-iterations", "3", "--batch-size", "16",
        "--episodes", "6", "--image-size", "16", "--channels", "4", "--cells", "1", "--quiet"]


@pytest.fixture(scope="module")
def omniglot(shared_data):
    return f"omniglot:{shared_data / 'fewshot' / 'omniglot'}"


@pytest.fixture(scope="module")
def search_json(tmp_path_factory):
    """A search result in the format 'metantk search --out' writes (the keys read here;
    tests/test_search.py checks that the command writes them)."""
    path = tmp_path_factory.mktemp("search") / "search.json"
    path.write_text(json.dumps({"space": "nb201", "data": "synthetic", "arch": ARCH, "index": 7584, "seconds": 1.0}))
    return path


def one_line_error(capsys, fragment: str) -> None:
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_table_then_correlate_every_proxy_with_few_shot_accuracy(tmp_path, omniglot, search_json, capsys):
    archs = select_architectures("nb201", "sample:5:3")
    listing = tmp_path / "cells.txt"
    listing.write_text("\n".join(archs[:4]) + f"\n# the searched cell\n{search_json}\n")
    table = tmp_path / "table.h5"
    command = ["evaluate", "--space", "nb201", "--archs", str(listing), "--data", omniglot, "--shots", "1,2",
               *TINY, "--out", str(table)]
    assert main([*command, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    rows, settings = read_fewshot_table(table)
    searched = json.loads(search_json.read_text())["arch"]
    assert rows["arch"].tolist() == list(dict.fromkeys([*archs[:4], searched]))
    assert info["trained"] == len(rows) and info["columns"][:2] == ["acc_3way_1shot", "ci95_3way_1shot"]
    assert settings["evaluation"]["channels"] == 4 and settings["shots"] == [1, 2]
    assert main(command) == 0  # finished: resumes with nothing left to do
    assert "0 trained and tested now" in capsys.readouterr().out

    scores = tmp_path / "scores.h5"
    assert main(["score", "--archs", str(listing), "--proxies", "params,synflow", "--image-size", "8",
                 "--channels", "4", "--cells", "1", "--quiet", "--out", str(scores)]) == 0
    capsys.readouterr()
    assert main(["correlate", str(scores), "--truth", str(table), "--bootstrap", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    targets = {r["target"] for r in report["results"]}
    assert targets == {"omniglot 3-way 1-shot (rfs)", "omniglot 3-way 2-shot (rfs)"}
    params = next(r for r in report["results"] if r["proxy"] == "params" and r["target"].endswith("2-shot (rfs)"))
    merged = read_scores(scores).merge(rows, on="arch")
    assert params["spearman"] == pytest.approx(spearmanr(merged["params"], merged["acc_3way_2shot"]).statistic)
    assert main(["correlate", str(scores), "--truth", str(table), "--dataset", "cifar10,cifar100",
                 "--bootstrap", "20", "--plot", str(tmp_path / "p.png")]) == 0
    text = capsys.readouterr().out
    assert "omniglot 3-way 1-shot (rfs):" in text and "cifar100:" in text
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["correlate", str(scores), "--truth", str(scores)]) == 2
    one_line_error(capsys, "is a score file of proxies, not a few-shot accuracy table")
    assert main([*command[:-2], "--seed", "1", "--out", str(table)]) == 2
    one_line_error(capsys, "other settings")


def test_darts_table_is_refused_for_nb201_scores(tmp_path, omniglot, capsys):
    table = tmp_path / "darts.h5"
    darts = [*TINY]
    darts[darts.index("--cells") + 1] = "2"
    assert main(["evaluate", "--space", "darts-fewshot", "--archs", "sample:1", "--data", omniglot, *darts,
                 "--out", str(table)]) == 0
    capsys.readouterr()
    scores = tmp_path / "scores.h5"
    assert main(["score", "--archs", "sample:3", "--proxies", "params", "--image-size", "8", "--channels", "4",
                 "--cells", "1", "--quiet", "--out", str(scores)]) == 0
    capsys.readouterr()
    assert main(["correlate", str(scores), "--truth", str(table)]) == 2
    one_line_error(capsys, "holds 'darts-fewshot' architectures but")


def test_nb201_cell_and_search_result_as_network(tmp_path, omniglot, search_json, capsys):
    for network in ("nb201:123", str(search_json)):
        assert main(["evaluate", "--network", network, "--data", omniglot, *TINY, "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert 0 <= result["accuracy"] <= 1 and result["settings"]["channels"] == 4
    genotype = str(resolve_genotype("metantk-nas/mini-5cell-1")[0])
    darts = tmp_path / "darts-search.json"
    darts.write_text(json.dumps({"space": "darts-fewshot", "genotype": genotype, "seconds": 1.0}))
    small = [*TINY]
    small[small.index("--cells") + 1] = "2"
    assert main(["evaluate", "--network", str(darts), "--data", omniglot, *small, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["network"] == str(darts)
    plain = tmp_path / "genotype.json"  # a genotype in JSON is a genotype file, not a search result
    plain.write_text(resolve_genotype("metantk-nas/mini-5cell-1")[0].to_json())
    assert main(["evaluate", "--network", str(plain), "--data", omniglot, *small, "--json"]) == 0
    capsys.readouterr()
    darts.write_text(json.dumps({"space": "darts-fewshot"}))
    assert main(["evaluate", "--network", str(darts), "--data", omniglot, *small]) == 2
    one_line_error(capsys, "is not a search.json written by 'metantk search'")
    small = [*TINY]
    small[small.index("--image-size") + 1] = "14"
    assert main(["evaluate", "--network", "nb201:123", "--data", omniglot, *small]) == 2
    one_line_error(capsys, "multiples of 4")


@pytest.mark.parametrize("arguments, fragment", [
    (["--archs", "sample:2"], "--archs needs --out FILE.h5"),
    (["--archs", "all", "--space", "darts-fewshot", "--out", "t.h5"], "'all' is not possible in the darts-fewshot"),
    (["--archs", "sample:0", "--out", "t.h5"], "sample size must be in 1..15625"),
    (["--archs", "nope", "--out", "t.h5"], "is not 'all', 'sample:N[:SEED]' or a file"),
    (["--network", "conv4", "--shots", "1,5"], "one --network takes one --shots value"),
    (["--network", "conv4", "--shots", "x"], "--shots expects positive integers"),
    (["--archs", "sample:2", "--shots", "0", "--out", "t.h5"], "--shots values must be at least 1"),
    (["--network", "nb201:abc"], "expected nb201:INDEX with an integer index"),
    (["--archs", "sample:2", "--cells", "3", "--space", "darts-fewshot", "--out", "t.h5"], "3k+2 cells"),
    pytest.param(["--archs", "sample:2", "--device", "cuda", "--out", "t.h5"], "torch sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
])
def test_bad_table_input_gives_one_line(arguments, fragment, omniglot, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--data", omniglot, "--quiet", *arguments]) == 2
    one_line_error(capsys, fragment)
    assert not (tmp_path / "t.h5").exists()


def test_bad_lines_in_an_architecture_file_are_named(tmp_path, omniglot, capsys):
    listing = tmp_path / "cells.txt"
    listing.write_text("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\n|bad~0|\n")
    assert main(["evaluate", "--archs", str(listing), "--data", omniglot, "--out", str(tmp_path / "t.h5")]) == 2
    one_line_error(capsys, "cells.txt, line 2: bad NAS-Bench-201 architecture string")
    listing.write_text("metantk-nas/mini-5cell-1\n")
    assert main(["evaluate", "--archs", str(listing), "--data", omniglot, "--out", str(tmp_path / "t.h5")]) == 2
    one_line_error(capsys, "cells.txt, line 1:")
    assert not (tmp_path / "t.h5").exists()
