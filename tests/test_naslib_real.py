"""What only the real NASLib can show, on each branch (``tox -e naslib-develop`` and
``tox -e naslib-zerocost`` install it; elsewhere these tests are skipped): the default
settings score the 32-image batches of NASLib's zero-cost runners, cell after cell as the
zerocost branch's benchmark runner does, and the NASLib snippet of the README and the docs runs
verbatim."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from naslib_support import BRANCHES, REAL_BRANCH, REQUIRED_BRANCH_VAR, require_real_naslib
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
CELLS = [(2, 2, 3, 4, 3, 2), (0, 4, 3, 2, 0, 3), (3, 3, 3, 3, 3, 3), (4, 0, 2, 1, 3, 0), (2, 1, 0, 4, 2, 3),
         (0, 0, 0, 0, 0, 0)]


@pytest.fixture(params=sorted(BRANCHES))
def branch(request) -> str:
    require_real_naslib(request.param)
    return request.param


def _cifar_like_loader(seed: int) -> DataLoader:
    """What NASLib's zero-cost runners feed: shuffled batches of 32 images of 10 classes."""
    generator = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(640, 3, 32, 32, generator=generator), torch.randint(0, 10, (640,),
                                                                                         generator=generator))
    return DataLoader(data, batch_size=32, shuffle=True, generator=generator)


def test_default_settings_score_every_cell_on_batches_of_32(branch):
    from naslib.predictors.zerocost import ZeroCost
    from naslib.search_spaces.nasbench201.graph import NasBench201SearchSpace

    from metantk_plugin.integrations.naslib import TaskShapeWarning, register

    register()
    search_space = NasBench201SearchSpace(n_classes=10)
    predictor = ZeroCost(method_type="metantk")
    scores = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed, cell in enumerate(CELLS):  # as runners/benchmarks/runner.py: clone, set_spec, parse, query
            graph = search_space.clone()
            graph.set_spec(cell)
            graph.parse()
            scores.append(predictor.query(graph, _cifar_like_loader(seed)))
    assert len(scores) == len(CELLS) and all(math.isfinite(s) and s <= 0 for s in scores), scores
    assert len(set(scores)) == len(scores)
    shapes = [str(w.message) for w in caught if issubclass(w.category, TaskShapeWarning)]
    assert shapes, "no batch of 32 was too small for 3 tasks of 5-way 1-shot 1-query: the check is moot"
    assert all(re.search(r"batch of 32 samples .* scored on [12] task\(s\) of [2-5]-way 1-shot 1-query", m)
               for m in shapes), shapes


def test_predictor_fits_the_branch_predictor(branch):
    from naslib.predictors.predictor import Predictor

    from metantk_plugin.integrations.naslib import MetaNTKPredictor

    predictor = MetaNTKPredictor("metantk_anil")
    assert isinstance(predictor, Predictor)
    predictor.set_ss_type("nasbench201")
    predictor.pre_process()
    predictor.fit([], [])
    predictor.fit([], [], None)
    assert predictor.get_data_reqs() == {"requires_partial_lc": False, "metric": None,
                                         "requires_hyperparameters": False, "hyperparams": {}, "unlabeled": False,
                                         "unlabeled_factor": 0}
    assert hasattr(Predictor, "get_data_reqs") == (branch == "develop")  # what the branches really differ in


@pytest.mark.parametrize("doc", ["README.md", "docs/naslib.md"])
def test_the_docs_snippet_runs_verbatim(branch, doc, tmp_path):
    snippet = re.search(r"## NASLib\n.*?```python\n(.*?)```", (ROOT / doc).read_text(), re.S).group(1)
    assert "register()" in snippet and "ZeroCost(method_type=\"metantk\")" in snippet
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    score = float(re.search(r"metantk score: (\S+)", done.stdout).group(1))
    assert math.isfinite(score) and score <= 0


def test_a_missing_naslib_fails_where_it_is_required_and_skips_elsewhere(monkeypatch):
    missing = next(b for b in sorted(BRANCHES) if b != REAL_BRANCH)
    monkeypatch.setenv(REQUIRED_BRANCH_VAR, missing)
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRED_BRANCH_VAR}={missing}, but"):
        require_real_naslib(missing)
    monkeypatch.delenv(REQUIRED_BRANCH_VAR)
    with pytest.raises(pytest.skip.Exception, match=f"tox -e naslib-{missing} runs this test"):
        require_real_naslib(missing)
