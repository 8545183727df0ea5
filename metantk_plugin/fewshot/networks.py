"""Networks for few-shot evaluation, named by one string:

* ``conv4``: the Conv-4 baseline (:class:`~metantk_plugin.fewshot.conv4.Conv4`), with its
  head initialised to zero when ``zero_head`` is set;
* ``module:package.module:factory``: ``factory(num_classes=, input_size=, in_channels=)``
  from an importable module, returning an ``nn.Module``;
* a NAS-Bench-201 cell, as its official string (``|nor_conv_3x3~0|+|...|``) or
  ``nb201:INDEX``: the official network with ``channels`` = C (default 16) and ``cells`` =
  N per stage (default 5);
* a genotype preset of the few-shot DARTS space (e.g. ``metantk-nas/mini-5cell-1``), or a
  file holding a genotype (``Genotype(...)`` text or JSON): the evaluation network of
  :func:`metantk_plugin.spaces.darts_fewshot.build_eval_network` with ``channels`` = C
  (default 48) and ``cells`` cells (default: the preset's, else 5);
* a ``search.json`` written by ``metantk search`` (either space): the network of the
  architecture it chose, as above.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from torch import nn

from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.user_input import quoted, read_text_file

__all__ = ["build_network"]


def build_network(spec: str, *, num_classes: int, input_size: int, in_channels: int,
                  zero_head: bool = False, channels: int | None = None, cells: int | None = None) -> nn.Module:
    """The network named by ``spec`` (see the module docstring) with ``num_classes`` outputs
    for ``in_channels`` x ``input_size`` x ``input_size`` inputs; ``channels`` and ``cells``
    size NAS-Bench-201 and DARTS networks."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"network spec must be a non-empty string, got {quoted(spec)}")
    if spec == "conv4":
        return Conv4(num_classes=num_classes, in_channels=in_channels, head_init="zeros" if zero_head else "normal")
    if spec.startswith("module:"):
        return _from_factory(spec, num_classes=num_classes, input_size=input_size, in_channels=in_channels)
    path = Path(spec).expanduser()
    genotype_file = path if path.is_file() else None
    if genotype_file is not None and _is_search_result(path):
        from metantk_plugin.scoring.architectures import read_search_result

        spec, genotype_file = read_search_result(path), None  # the search result names the architecture
    if spec.startswith(("|", "nb201:")):
        from metantk_plugin.spaces.nasbench201 import build_network as build_nb201

        cell = spec.partition(":")[2] if spec.startswith("nb201:") else spec
        try:
            arch = int(cell) if spec.startswith("nb201:") else cell
        except ValueError:
            raise ValueError(f"network {quoted(spec)}: expected nb201:INDEX with an integer index") from None
        return build_nb201(arch, C=channels or 16, N=cells or 5, num_classes=num_classes, norm="batch",
                           in_channels=in_channels)
    genotype = read_text_file(genotype_file, what="genotype file").strip() if genotype_file else spec
    try:
        darts = importlib.import_module("metantk_plugin.spaces.darts_fewshot")
    except ImportError as error:
        raise ValueError(f"network {quoted(spec)} is not 'conv4' or 'module:package.module:factory', and the few-shot "
                         f"DARTS space that reads genotypes cannot be imported ({error})") from None
    try:
        network = darts.build_eval_network(genotype, num_classes=num_classes, input_size=input_size,
                                           input_channels=in_channels, C=channels or 48, cells=cells)
    except (ValueError, KeyError) as error:
        what = f"genotype file {genotype_file}" if genotype_file else "genotype preset"
        raise ValueError(f"network {quoted(spec)}: not 'conv4', not 'module:package.module:factory', and not a valid "
                         f"{what} ({error})") from None
    return _checked(network, spec)


def _is_search_result(path: Path) -> bool:
    """Whether ``path`` is a ``search.json`` of ``metantk search`` (a JSON object with a
    ``space``), rather than a genotype file (which may be JSON too)."""
    if path.suffix != ".json":
        return False
    try:
        return "space" in json.loads(read_text_file(path, what="network file"))
    except (ValueError, TypeError):
        return False


def _from_factory(spec: str, **kwargs: int) -> nn.Module:
    _, _, target = spec.partition(":")
    module_name, _, attribute = target.rpartition(":")
    if not module_name or not attribute:
        raise ValueError(f"user network {quoted(spec)} must look like 'module:package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot load the network factory {target!r} ({error})") from None
    call = f"{attribute}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    if not callable(factory):
        raise ValueError(f"the network factory {target!r} is a {type(factory).__name__}, not a callable {call}")
    try:
        network = factory(**kwargs)
    except TypeError as error:
        raise ValueError(f"the network factory {target!r} cannot be called as {call} ({error})") from None
    return _checked(network, spec)


def _checked(network: object, spec: str) -> nn.Module:
    if not isinstance(network, nn.Module):
        raise ValueError(f"network {quoted(spec)} built a {type(network).__name__}, not a torch.nn.Module")
    return network
