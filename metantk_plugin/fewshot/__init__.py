"""Few-shot evaluation of architectures: MAML / first-order MAML / ANIL meta-training with
functional updates, the RFS pre-train + logistic-regression protocol (both as training
protocol objects), the Conv-4 baseline, resumable output folders, and episode evaluation
with 95% confidence intervals."""

from metantk_plugin._deprecation import renamed
from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.evaluation import EpisodeResult, confidence_interval, evaluate_episodes
from metantk_plugin.fewshot.logistic import fit_logistic_regression
from metantk_plugin.fewshot.maml import (
    META_LEARNING_ALGORITHMS,
    MetaConfig,
    MetaLearner,
    adapted_accuracy,
    meta_gradient,
)
from metantk_plugin.fewshot.networks import build_network
from metantk_plugin.fewshot.output_folder import OutputConflict, OutputFolder
from metantk_plugin.fewshot.pipeline import PROTOCOLS, EvaluationSettings, build_protocol, run_evaluation
from metantk_plugin.fewshot.protocols import MetaLearning, RFSPretraining, TrainingProtocol
from metantk_plugin.fewshot.rfs import PretrainConfig, Pretrainer, probe_accuracy
from metantk_plugin.fewshot.training import TrainingHistory, meta_train

__all__ = [
    "META_LEARNING_ALGORITHMS",
    "PROTOCOLS",
    "Conv4",
    "EpisodeResult",
    "EvaluationSettings",
    "MetaConfig",
    "MetaLearner",
    "MetaLearning",
    "OutputConflict",
    "OutputFolder",
    "PretrainConfig",
    "Pretrainer",
    "RFSPretraining",
    "TrainingHistory",
    "TrainingProtocol",
    "adapted_accuracy",
    "build_network",
    "build_protocol",
    "confidence_interval",
    "evaluate_episodes",
    "fit_logistic_regression",
    "meta_gradient",
    "meta_train",
    "probe_accuracy",
    "run_evaluation",
]

__getattr__ = renamed(__name__, {"ALGORITHMS": (f"{__name__}.META_LEARNING_ALGORITHMS", META_LEARNING_ALGORITHMS)})
