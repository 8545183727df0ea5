"""Image data for few-shot tasks: readers, episodic sampling and torch-only transforms."""

from metantk_plugin.data.cifar import read_cifar
from metantk_plugin.data.episodes import EpisodeSampler
from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.imagenet16 import read_imagenet16
from metantk_plugin.data.images import LabelledImages
from metantk_plugin.data.omniglot import read_omniglot
from metantk_plugin.data.rfs import read_mini_imagenet, read_tiered_imagenet
from metantk_plugin.data.safe_pickle import UnsafePickleError, safe_load
from metantk_plugin.data.sources import DataSpec, load_split, parse_data_spec, task_sampler_from_spec

__all__ = [
    "DataSpec",
    "DatasetError",
    "EpisodeSampler",
    "LabelledImages",
    "UnsafePickleError",
    "load_split",
    "parse_data_spec",
    "read_cifar",
    "read_imagenet16",
    "read_mini_imagenet",
    "read_omniglot",
    "read_tiered_imagenet",
    "safe_load",
    "task_sampler_from_spec",
]
