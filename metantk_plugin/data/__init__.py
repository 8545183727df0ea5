"""Image data for few-shot tasks: readers, episodic sampling and torch-only transforms."""

from metantk_plugin.data.images import LabelledImages

__all__ = ["LabelledImages"]
