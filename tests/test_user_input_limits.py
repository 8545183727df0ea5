"""Inputs that used to give silently wrong results or exhaust memory: the official Omniglot
one-shot runs read as classes, a huge genotype file read and echoed whole, a 2-episode
interval printed as if it meant something, and the correlate plot's faint points."""

from __future__ import annotations

import re
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.omniglot import read_omniglot
from metantk_plugin.data.sources import task_sampler_from_spec
from metantk_plugin.fewshot.evaluation import format_accuracy
from metantk_plugin.fewshot.networks import build_network
from metantk_plugin.scoring.correlation import correlate
from metantk_plugin.scoring.plotting import plot_rank_scatter
from metantk_plugin.spaces.nasbench201 import all_architectures, parse_arch
from metantk_plugin.user_input import quoted


def test_the_official_one_shot_runs_are_not_read_as_classes(shared_data, tmp_path):
    runs = shared_data / "fewshot" / "omniglot" / "all_runs.zip"
    with pytest.raises(DatasetError, match=r"one-shot classification runs \(run\d\d/class_labels.txt\)"):
        read_omniglot(runs)
    with pytest.raises(DatasetError, match="not character classes"):
        task_sampler_from_spec(f"omniglot:{runs}", split="train", image_size=8, ways=5, shots=1, queries=1)
    extracted = tmp_path / "all_runs"  # the same runs unzipped into a folder
    (extracted / "run01" / "test").mkdir(parents=True)
    (extracted / "run01" / "class_labels.txt").write_text("test/item01.png training/class01.png\n")
    Image.new("L", (105, 105), 255).save(extracted / "run01" / "test" / "item01.png")
    with pytest.raises(DatasetError, match="one-shot classification runs"):
        read_omniglot(extracted)


def test_a_huge_genotype_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "genotype.txt"
    with path.open("w") as file:
        file.write("Genotype(normal=[" + "[('sep_conv_3x3', 0), ('skip_connect', 1)], " * 60_000)
    assert path.stat().st_size > 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as error:
            build_network(str(path), num_classes=5, input_size=28, in_channels=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(error.value)
    assert re.search(r"is \d,\d{3},\d{3} bytes; expected a text file of at most 1,000,000 bytes", message)
    assert len(message) < 400
    assert peak < 20_000_000


def test_parse_errors_echo_values_clipped():
    start = time.perf_counter()
    for bad in ("|nor_conv_3x3~0|" + "x" * 5_000_000, "y" * 5_000_000):
        with pytest.raises(ValueError) as error:
            parse_arch(bad)
        assert len(str(error.value)) < 600 and "5,000,0" in str(error.value)
    assert time.perf_counter() - start < 5
    assert quoted("abc") == "'abc'" and quoted(7) == "7"
    assert quoted("z" * 1000, limit=20) == "'zzzzzzzzzzzzzzzz... (1,000 characters)"


def test_too_few_episodes_give_no_interval():
    assert format_accuracy(0.5, 1.2706, 2) == (
        "50.00 % (no 95% interval: 2 episodes are too few for a meaningful one; use at least 10)")
    assert format_accuracy(0.6123, 0.0085, 600) == "61.23 ± 0.85 %"


def test_correlate_plot_points_are_large_and_dark(tmp_path):
    rng = np.random.default_rng(0)
    archs = [a.to_string() for a in all_architectures()[:300]]
    accuracy = pd.Series(rng.uniform(10, 90, 300), index=archs)
    scores = pd.DataFrame({"arch": archs, "p": accuracy.to_numpy() + rng.normal(0, 5, 300)})
    results = correlate(scores, accuracy, {"p": True}, target="cifar10", n_bootstrap=10)
    path = plot_rank_scatter(scores, {"cifar10": accuracy}, {"p": True}, results, tmp_path / "p.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    dark_blue = (pixels[..., 2] - pixels[..., 0] > 60) & (pixels[..., 0] < 150)  # s=4, alpha=0.45 gave 0.002
    assert dark_blue.mean() > 0.02, dark_blue.mean()
