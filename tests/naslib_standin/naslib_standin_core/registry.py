"""NASLib's zero-cost measure registry (``.../pruners/measures/__init__.py``).

Mirrors the contract of automl/NASLib exactly: one process-global list and dict, a
decorator that wraps a measure so that it runs on a prunable copy of the network, a
``KeyError`` on a duplicate name, and the undecorated function returned.
"""

from __future__ import annotations

import gc

import torch

available_measures: list[str] = []
_measure_impls: dict = {}


def measure(name, bn=True, copy_net=True, force_clean=True, **impl_args):
    """Register ``func`` as ``measure_impl(net_orig, device, *args, **kwargs)``, which calls
    ``func(copy_of_net_orig, *args, **kwargs, **impl_args)``."""

    def make_impl(func):
        def measure_impl(net_orig, device, *args, **kwargs):
            if copy_net:
                net = net_orig.get_prunable_copy(bn=bn).to(device)
            else:
                net = net_orig
            ret = func(net, *args, **kwargs, **impl_args)
            if copy_net and force_clean:
                del net
                torch.cuda.empty_cache()
                gc.collect()
            return ret

        if name in _measure_impls:
            raise KeyError(f"Duplicated measure! {name}")
        available_measures.append(name)
        _measure_impls[name] = measure_impl
        return func

    return make_impl


def calc_measure(name, net, device, *args, **kwargs):
    """Run the measure registered under ``name``."""
    return _measure_impls[name](net, device, *args, **kwargs)
