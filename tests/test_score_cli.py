"""``metantk score`` end to end: scoring, resuming, refusals, options, real Omniglot tasks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from metantk_plugin.cli import build_parser, main
from metantk_plugin.scoring.architectures import build_architecture, select_architectures
from metantk_plugin.scoring.settings import ScoreSettings, architecture_seed
from metantk_plugin.scoring.store import read_scores, read_settings

TINY = ["--channels", "2", "--cells", "1", "--image-size", "8", "--tasks", "1", "--ways", "3", "--quiet"]


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["score", "--help"])
    text = capsys.readouterr().out
    for needle in ("--archs", "sample:N[:SEED]", "resumes", "examples:", "te_nas (from ntk_cond and linear_regions)",
                   "GroupNorm", "--executor"):
        assert needle in text


def test_score_resume_and_refusals(tmp_path, capsys):
    out = tmp_path / "s.h5"
    base = ["score", "--archs", "sample:4:7", "--proxies", "params,synflow,te_nas", "--out", str(out), *TINY]
    assert main([*base, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["requested"], info["already_done"], info["scored"]) == (4, 0, 4)
    assert info["columns"] == ["params", "synflow", "ntk_cond", "linear_regions"]
    table = read_scores(out)
    assert table["arch"].tolist() == select_architectures("nb201", "sample:4:7")
    assert list(table.columns) == ["arch", "te_nas", "params", "synflow", "ntk_cond", "linear_regions"]
    assert np.isfinite(table["params"]).all() and (table["params"] > 0).all()

    # a larger nested sample resumes: only the new architectures are scored
    grown = [a if a != "sample:4:7" else "sample:6:7" for a in base]
    assert main([*grown, "--csv", str(tmp_path / "s.csv")]) == 0
    assert "6 architectures requested, 4 already scored, 2 scored now" in capsys.readouterr().out
    grown_table = read_scores(out)
    per_network = ["arch", "params", "synflow", "ntk_cond", "linear_regions"]
    pd.testing.assert_frame_equal(grown_table.iloc[:4][per_network], table[per_network])
    assert grown_table["te_nas"].max() > table["te_nas"].max()  # ranked within the larger population
    assert len(pd.read_csv(tmp_path / "s.csv")) == 6

    assert main([*grown, "--csv", str(tmp_path / "s.csv")]) == 2
    assert "s.csv exists; pass --force" in capsys.readouterr().err
    before = out.read_bytes()
    assert main([*base, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "seed: 0 in the file, 1 now" in err
    assert out.read_bytes() == before


def test_bad_input_gets_clear_errors(tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text("# my cells\n12\n|none~0|+|none~0|none~1|+|none~0|none~1|bogus~2|\n")
    cases = [
        (["--archs", str(archs), "--proxies", "params"], "archs.txt, line 3: bad NAS-Bench-201"),
        (["--archs", "sample:x", "--proxies", "params"], "expected sample:N or sample:N:SEED"),
        (["--archs", "sample:3", "--proxies", "params,nope"], "unknown proxy 'nope'"),
        (["--archs", "sample:3", "--proxies", "params", "--set", "metantk.reg=1"], "options given for 'metantk'"),
        (["--archs", "sample:3", "--proxies", "params", "--set", "oops"], "--set expects PROXY.OPTION=VALUE"),
        (["--archs", "sample:3", "--proxies", "params", "--norm", "params=layer"], "must be one of batch, group"),
        (["--archs", "sample:3", "--proxies", "params", "--data", "omniglot:/no/such/dir"], "does not exist"),
        (["--archs", "sample:3", "--proxies", "params", "--executor", "local", "--workers", "3"], "one item at a time"),
        (["--archs", "sample:3", "--proxies", "params", "--classes", "2"], "classes must be an int >= ways"),
    ]
    for args, message in cases:
        assert main(["score", *args, "--out", str(tmp_path / "x.h5"), *TINY]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "x.h5").exists()


def test_proxy_options_reach_the_proxy_and_are_stored(tmp_path):
    (tmp_path / "a.txt").write_text("5\n")
    common = ["score", "--archs", str(tmp_path / "a.txt"), "--proxies", "metantk", *TINY]
    assert main([*common, "--out", str(tmp_path / "inf.h5")]) == 0
    assert main([*common, "--set", "metantk.inner_lr_time=2", "--set", "metantk.reg=0.5",
                 "--out", str(tmp_path / "t2.h5")]) == 0
    assert read_settings(tmp_path / "t2.h5")["proxy_options"] == {"metantk": {"inner_lr_time": 2, "reg": 0.5}}
    a, b = read_scores(tmp_path / "inf.h5")["metantk"][0], read_scores(tmp_path / "t2.h5")["metantk"][0]
    assert math.isfinite(a) and math.isfinite(b) and a != b


def test_kernel_and_official_networks_share_their_weights():
    settings = ScoreSettings(proxies=("metantk", "snip"))
    assert (settings.norm_for("metantk"), settings.norm_for("snip")) == ("group", "batch")
    arch = select_architectures("nb201", "sample:1")[0]
    seed = architecture_seed(0, arch)
    nets = [build_architecture("nb201", arch, norm=norm, channels=4, cells=1, num_classes=5, in_channels=3,
                               seed=seed) for norm in ("batch", "group", "none")]
    weights = [[m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))] for net in nets]
    assert len(weights[0]) > 2
    for other in weights[1:]:
        assert all(torch.equal(a, b) for a, b in zip(weights[0], other))
    assert architecture_seed(0, arch) != architecture_seed(1, arch)


def test_scoring_on_real_omniglot_tasks(tmp_path, shared_data, capsys):
    out = tmp_path / "omniglot.h5"
    data = f"omniglot:{shared_data / 'fewshot' / 'omniglot'}"
    archs = tmp_path / "archs.txt"
    archs.write_text("6111\n1\n")  # the best CIFAR-10 cell and a healthy one
    args = ["score", "--archs", str(archs), "--proxies", "metantk,nwot,grad_norm", "--data", data, "--out",
            str(out), *TINY]
    assert main(args) == 0
    table = read_scores(out)
    assert len(table) == 2 and np.isfinite(table[["metantk", "nwot", "grad_norm"]].to_numpy()).all()
    assert read_settings(out)["data"].startswith("omniglot:")
