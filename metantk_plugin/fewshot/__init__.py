"""Few-shot evaluation of architectures: MAML / first-order MAML / ANIL meta-training with
functional updates, the RFS pre-train + logistic-regression protocol (both as training
protocol objects), the Conv-4 baseline, resumable output folders, and episode evaluation
with 95% confidence intervals. The names below are imported on first use, so that
:mod:`metantk_plugin.fewshot.settings` imports no torch."""

from metantk_plugin._deprecation import renamed
from metantk_plugin._lazy import lazy_exports

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

_LAZY = lazy_exports(__name__, {
    "conv4": ("Conv4",),
    "evaluation": ("EpisodeResult", "confidence_interval", "evaluate_episodes"),
    "logistic": ("fit_logistic_regression",),
    "maml": ("MetaConfig", "MetaLearner", "adapted_accuracy", "meta_gradient"),
    "networks": ("build_network",),
    "output_folder": ("OutputConflict", "OutputFolder"),
    "pipeline": ("build_protocol", "run_evaluation"),
    "protocols": ("MetaLearning", "RFSPretraining", "TrainingProtocol"),
    "rfs": ("PretrainConfig", "Pretrainer", "probe_accuracy"),
    "settings": ("META_LEARNING_ALGORITHMS", "PROTOCOLS", "EvaluationSettings"),
    "training": ("TrainingHistory", "meta_train"),
})
__getattr__ = renamed(__name__, {"ALGORITHMS": f"{__name__}.META_LEARNING_ALGORITHMS"}, _LAZY)
