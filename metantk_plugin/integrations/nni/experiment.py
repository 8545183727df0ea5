"""An in-process NNI experiment configuration.

``NasExperiment`` without a config starts NNI's web server and one process per trial.
The ``'sequential'`` engine instead runs every model in this process, one after the
other, with no server: what zero-cost scoring wants (a trial costs seconds, a process
start about ten).
"""

from __future__ import annotations

from pathlib import Path

from metantk_plugin.integrations.nni._require import require_nni
from metantk_plugin.task_spec import check_positive_int

__all__ = ["sequential_config"]


def sequential_config(max_trials: int, working_directory: str | Path, *, continue_on_failure: bool = False):
    """``NasExperimentConfig`` for the in-process engine: at most ``max_trials`` models,
    logs and checkpoints under ``working_directory/<experiment id>/``; with
    ``continue_on_failure`` an evaluator exception marks that model Failed instead of
    ending the run. (NNI still records each experiment in ``~/nni-experiments/.experiment``.)"""
    check_positive_int("max_trials", max_trials)
    config_module = require_nni("nni.nas.experiment.config")
    engine = config_module.SequentialEngineConfig(continue_on_failure=continue_on_failure)
    config = config_module.NasExperimentConfig(engine, "simplified")
    config.max_trial_number = max_trials
    config.experiment_working_directory = str(Path(working_directory).expanduser().resolve())
    return config
