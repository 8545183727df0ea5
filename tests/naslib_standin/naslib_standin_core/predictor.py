"""NASLib's ``Predictor`` base classes (``naslib/predictors/predictor.py``): Develop's, and the
zerocost branch's smaller one."""

from __future__ import annotations


class Predictor:
    def __init__(self, ss_type=None, encoding_type=None):
        self.ss_type = ss_type
        self.encoding_type = encoding_type

    def set_ss_type(self, ss_type):
        self.ss_type = ss_type

    def pre_process(self):
        """Called at the start of a NAS run, before any architecture is queried."""

    def pre_compute(self, xtrain, xtest, unlabeled=None):
        """Batch work done once for all train sizes."""

    def fit(self, xtrain, ytrain, info=None):
        """Train on a list of architectures and their accuracies."""

    def query(self, xtest, info):
        """Predictions for a list of architectures."""

    def get_data_reqs(self):
        return {
            "requires_partial_lc": False,
            "metric": None,
            "requires_hyperparameters": False,
            "hyperparams": {},
            "unlabeled": False,
            "unlabeled_factor": 0,
        }

    def set_hyperparams(self, hyperparams):
        self.hyperparams = hyperparams

    def get_hyperparams(self):
        if hasattr(self, "hyperparams"):
            return self.hyperparams
        print("no hyperparams set")
        return None

    def reset_hyperparams(self):
        self.hyperparams = None

    def get_hpo_wrapper(self):
        if hasattr(self, "hpo_wrapper"):
            return self.hpo_wrapper
        return None


class ZerocostBranchPredictor:
    """``Predictor`` of the zerocost branch: only ``set_ss_type``, ``pre_process``, ``fit``
    and ``query`` (no ``get_data_reqs``, no hyperparameter methods, no ``encoding_type``)."""

    def __init__(self, ss_type=None):
        self.ss_type = ss_type

    def set_ss_type(self, ss_type):
        self.ss_type = ss_type

    def pre_process(self):
        """Called at the start of a NAS run, before any architecture is queried."""

    def fit(self, xtrain, ytrain):
        """Train on a list of architectures and their accuracies."""

    def query(self, graph, dataloader):
        """The score of one model."""
