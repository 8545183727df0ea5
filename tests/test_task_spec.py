"""The one task spec, its validator, the sampler protocol, and CLI flags written from dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from metantk_plugin.cli import build_parser
from metantk_plugin.cli_options import add_dataclass_arguments, dataclass_values, option
from metantk_plugin.data.sources import SyntheticTaskSampler, task_sampler_from_spec
from metantk_plugin.fewshot.pipeline import EvaluationSettings
from metantk_plugin.integrations.naslib import MeasureSettings
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.search import SearchSettings
from metantk_plugin.search.pruning import TaskSource
from metantk_plugin.task_spec import (
    TaskSampler,
    TaskSpec,
    as_task_sampler,
    check_optional_positive_int,
    check_positive_int,
)
from metantk_plugin.tasks import synthetic_tasks

SIZES = ("n_tasks", "ways", "shots", "queries", "image_size", "image_channels")


def test_the_spec_has_the_reference_defaults_and_refuses_bad_sizes():
    spec = TaskSpec()
    assert dataclasses.asdict(spec) == {"data": "synthetic", "n_tasks": 3, "ways": 5, "shots": 1, "queries": 1,
                              "image_size": 32, "image_channels": 3}
    for name in SIZES:
        for bad in (0, -1, True, 2.0, "3", None):
            with pytest.raises(ValueError, match=f"{name} must be a positive int, got {bad!r}"):
                TaskSpec(**{name: bad})
    with pytest.raises(ValueError, match="data must be a data spec string"):
        TaskSpec(data=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.ways = 3


def test_one_validator_for_sizes_and_optional_sizes():
    check_positive_int("x", 1)
    check_optional_positive_int("x", None)
    check_optional_positive_int("x", 4)
    with pytest.raises(ValueError, match=r"^x must be a positive int or None \(the default\), got True$"):
        check_optional_positive_int("x", True, none="the default")
    with pytest.raises(ValueError, match=r"^x must be a positive int or None, got 0$"):
        check_optional_positive_int("x", 0)
    # the settings that used to accept True as a size refuse it now
    for make in (lambda: SearchSettings(repeats=True), lambda: SearchSettings(precision=True),
                 lambda: EvaluationSettings("conv4", "synthetic", channels=True).resolved(),
                 lambda: ScoreSettings(proxies=("metantk",), ways=True), lambda: MeasureSettings(n_tasks=True)):
        with pytest.raises(ValueError, match="must be a positive int"):
            make()


def test_every_sampler_is_a_task_sampler_and_draws_the_same_tasks():
    spec = TaskSpec(n_tasks=2, ways=3, image_size=8)
    sampler = spec.sampler(seed=0)
    assert isinstance(sampler, SyntheticTaskSampler) and isinstance(sampler, TaskSampler)
    assert TaskSource is TaskSampler
    direct = task_sampler_from_spec("synthetic", image_size=8, ways=3).sample(2, 5)
    assert torch.equal(sampler.sample(2, 5).inputs(), direct.inputs())

    def source(n_tasks, seed):
        return synthetic_tasks(n_tasks=n_tasks, ways=3, image_size=8, seed=seed)

    wrapped = as_task_sampler(source)
    assert isinstance(wrapped, TaskSampler) and as_task_sampler(sampler) is sampler
    assert torch.equal(wrapped.sample(2, 7).inputs(), source(2, 7).inputs())
    with pytest.raises(ValueError, match="TaskSampler or a function"):
        as_task_sampler(3)


def test_score_settings_embed_the_spec_and_keep_their_stored_json():
    settings = ScoreSettings(proxies=("metantk",), n_tasks=2, ways=3, image_size=8)
    assert settings.task_spec == TaskSpec(n_tasks=2, ways=3, image_size=8)
    defaults = ScoreSettings(proxies=("metantk",))
    assert defaults.task_spec == TaskSpec()
    assert ScoreSettings.from_dict(json.loads(settings.to_json())) == settings
    # the JSON stored in score files, byte for byte as before the task spec
    assert defaults.to_json() == (
        '{"cells": 5, "channels": 16, "classes": null, "data": "synthetic", "device": "cpu", "dtype": "float32", '
        '"image_channels": 3, "image_size": 32, "n_tasks": 3, "norms": {}, "package_version": '
        f'"{defaults.package_version}", "proxies": ["metantk"], "proxy_options": {{}}, "queries": 1, "seed": 0, '
        '"shots": 1, "space": "nb201", "ways": 5}'
    )


def test_evaluation_settings_keep_their_result_json():
    resolved = EvaluationSettings(network="conv4", data="synthetic").resolved()
    assert list(resolved.to_dict()) == [
        "network", "data", "protocol", "ways", "shots", "queries", "meta_iterations", "episodes", "seed",
        "meta_batch", "inner_lr", "inner_steps", "test_inner_lr", "test_inner_steps", "meta_lr", "grad_clip",
        "image_size", "channels", "cells", "rotations", "batch_size", "lr", "strategy", "device", "val_every",
        "val_episodes", "eval_batch", "query_precision"]
    with pytest.raises(ValueError, match=r"channels must be a positive int or None \(the network's default\)"):
        EvaluationSettings("conv4", "synthetic", channels=0).resolved()


def _defaults(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _field_defaults(settings: type) -> dict:
    return {f.name: f.default for f in dataclasses.fields(settings) if f.default is not dataclasses.MISSING}


def test_score_flags_have_the_settings_defaults():
    args = _defaults(["score", "--archs", "all", "--proxies", "metantk", "--out", "s.h5"])
    expected = _field_defaults(ScoreSettings)
    flags = {"n_tasks": "tasks"}
    for name in ("space", "data", *SIZES, "channels", "cells", "classes", "seed", "dtype", "device"):
        assert getattr(args, flags.get(name, name)) == expected[name], name


def test_search_flags_have_the_settings_defaults():
    args = _defaults(["search"])
    expected = _field_defaults(SearchSettings)
    flags = {"n_tasks": "tasks"}
    for name in ("indicator", "algorithm", "inner_lr_time", "reg", "repeats", "prune_number", "precision",
                 "faithful", "n_tasks", "region_samples", "seed", "device"):
        assert getattr(args, flags.get(name, name)) == expected[name], name
    assert args.repeats == 1 and math.isinf(args.inner_lr_time)
    task = TaskSpec()
    assert (args.data, args.ways, args.shots, args.queries, args.image_size) == (
        task.data, task.ways, task.shots, task.queries, task.image_size)


def test_evaluate_flags_have_the_settings_defaults():
    args = _defaults(["evaluate", "--network", "conv4", "--data", "synthetic"])
    expected = _field_defaults(EvaluationSettings)
    for name in ("protocol", "ways", "queries", "meta_iterations", "episodes", "seed", "meta_batch", "inner_lr",
                 "inner_steps", "test_inner_lr", "test_inner_steps", "meta_lr", "grad_clip", "image_size",
                 "channels", "cells", "batch_size", "lr", "strategy", "device", "val_every", "val_episodes"):
        assert getattr(args, name) == expected[name], name
    assert int(args.shots) == expected["shots"] and (not args.no_rotations) == expected["rotations"]


def test_flags_are_written_from_dataclass_fields():
    @dataclasses.dataclass(frozen=True)
    class Example:
        needed: int
        size: int | None = dataclasses.field(default=None, metadata={"help": "how big", "flag": "--big"})
        rate: float = 0.5
        name: str = "x"

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Example, ["size", "rate", "name"], help={"rate": "a rate"})
    args = parser.parse_args(["--big", "3", "--rate", "0.25"])
    assert (args.big, args.rate, args.name) == (3, 0.25, "x")
    assert "a rate (default 0.5)" in parser.format_help() and "how big" in parser.format_help()
    assert dataclass_values(args, Example, ["size", "rate"]) == {"size": 3, "rate": 0.25}
    score = _defaults(["score", "--archs", "all", "--proxies", "metantk", "--out", "s.h5", "--tasks", "2"])
    assert TaskSpec(**dataclass_values(score, TaskSpec)) == TaskSpec(n_tasks=2)
    with pytest.raises(ValueError, match="no field 'nope'"):
        add_dataclass_arguments(argparse.ArgumentParser(), Example, ["nope"])
    with pytest.raises(ValueError, match="has no default"):
        add_dataclass_arguments(argparse.ArgumentParser(), Example, ["needed"])


def test_the_spec_and_the_flag_writer_import_no_torch():
    code = ("import sys, argparse; from metantk_plugin.cli_options import add_dataclass_arguments, dataclass_values; "
            "from metantk_plugin.task_spec import TaskSpec; add_dataclass_arguments(argparse.ArgumentParser(), "
            "TaskSpec); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_option_fields_give_choices_switches_and_help():
    @dataclasses.dataclass(frozen=True)
    class Example:
        kind: str = option("a", "which kind", choices=("a", "b"))
        mode: str = option("x", "which mode")
        exact: bool = option(False, "no rounding")
        loud: bool = option(True, "noise")

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Example, ["kind", "mode", "exact"], choices={"mode": ("x", "y")})
    assert vars(parser.parse_args([])) == {"kind": "a", "mode": "x", "exact": False}
    assert vars(parser.parse_args(["--kind", "b", "--mode", "y", "--exact"])) == {"kind": "b", "mode": "y",
                                                                                 "exact": True}
    for argv in (["--kind", "c"], ["--mode", "z"], ["--exact", "1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    assert "which kind (default a)" in parser.format_help() and "no rounding" in parser.format_help()
    with pytest.raises(ValueError, match="switch only when it defaults to False"):
        add_dataclass_arguments(argparse.ArgumentParser(), Example, ["loud"])


def test_settings_from_default_flags_are_the_default_settings():
    from metantk_plugin.commands import evaluate

    args = _defaults(["search"])
    assert SearchSettings(**dataclass_values(args, SearchSettings)) == SearchSettings()
    assert set(dataclass_values(args, SearchSettings)) == {f.name for f in dataclasses.fields(SearchSettings)} - {
        "backend"}
    args = _defaults(["evaluate", "--network", "conv4", "--data", "synthetic"])
    assert evaluate._evaluation_settings(args, "conv4", 1) == EvaluationSettings("conv4", "synthetic")


def test_the_settings_dataclasses_import_no_torch_and_keep_their_old_homes():
    code = ("import sys, metantk_plugin.scoring.settings, metantk_plugin.search.settings, "
            "metantk_plugin.fewshot.settings, metantk_plugin.scoring.executors, "
            "metantk_plugin.spaces.nasbench201.accuracy_metrics, metantk_plugin.spaces.nasbench201.table_location; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import metantk_plugin.fewshot as fewshot
    import metantk_plugin.scoring as scoring
    import metantk_plugin.search as search
    from metantk_plugin.fewshot import pipeline
    from metantk_plugin.fewshot import settings as evaluation_settings
    from metantk_plugin.search import pruning
    from metantk_plugin.search import settings as search_settings

    assert pipeline.EvaluationSettings is fewshot.EvaluationSettings is evaluation_settings.EvaluationSettings
    assert evaluation_settings.EvaluationSettings is EvaluationSettings
    assert pipeline.PROTOCOLS is fewshot.PROTOCOLS is evaluation_settings.PROTOCOLS
    assert pruning.SearchSettings is search.SearchSettings is search_settings.SearchSettings is SearchSettings
    assert pruning.INDICATORS is search_settings.INDICATORS
    assert scoring.ScoreSettings is ScoreSettings
    for package in (fewshot, scoring, search):
        assert all(getattr(package, name) is not None for name in package.__all__)
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            package.nope  # noqa: B018
