from __future__ import annotations

import json

import pytest

from metantk_plugin.cli import main


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for fragment in ("--protocol {maml,fomaml,anil,rfs}", "examples:", "omniglot:PATH", "--force", "--json"):
        assert fragment in text


def test_evaluate_prints_a_json_result(tmp_path, shared_data, capsys):
    data = f"omniglot:{shared_data / 'fewshot' / 'omniglot'}"
    status = main(["evaluate", "--network", "conv4", "--data", data, "--protocol", "anil", "--meta-iterations",
                   "2", "--meta-batch", "2", "--queries", "2", "--episodes", "5", "--seed", "3", "--quiet",
                   "--out", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    result = json.loads(captured.out)
    assert 0 <= result["accuracy"] <= 1 and result["ci95"] >= 0 and result["episodes"] == 5
    assert result["seconds_per_iteration"] > 0 and result["parameters"] == 112_261
    assert (tmp_path / "out" / "training_curve.png").is_file()


def test_bad_input_gives_one_clear_line(tmp_path, capsys):
    status = main(["evaluate", "--network", "conv4", "--data", f"omniglot:{tmp_path}", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "error: no Omniglot classes under" in err and "images_background" in err
    assert "Traceback" not in err
    status = main(["evaluate", "--network", "conv4", "--data", f"mini-imagenet:{tmp_path}", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "miniImageNet_category_split_train_phase_train.pickle" in err
    status = main(["evaluate", "--network", "no-such-preset", "--data", "synthetic", "--quiet"])
    assert status == 2 and "network 'no-such-preset'" in capsys.readouterr().err
    status = main(["evaluate", "--network", "conv4", "--data", "synthetic", "--protocol", "rfs", "--quiet"])
    assert status == 2 and "labelled base classes" in capsys.readouterr().err
