"""NASLib's ``find_measures`` (``.../pruners/predictive.py``).

The reduction is the point: every measure's value goes through ``sum_arr`` except a few
names the branch special-cases (:data:`UNREDUCED_DEVELOP`, :data:`UNREDUCED_ZEROCOST`).
"""

from __future__ import annotations

import copy
import types

import torch
from torch import nn
from torch.nn import functional as F

from naslib_standin_core import registry
from naslib_standin_core.p_utils import get_some_data, get_some_data_grasp

UNREDUCED_DEVELOP = ("jacov", "epe_nas", "nwot", "zen")
UNREDUCED_ZEROCOST = ("jacov", "epe_nas")


def no_op(self, x):
    return x


def copynet(self, bn):
    """Deep copy of the model; with ``bn=False`` every BatchNorm's forward is the identity."""
    net = copy.deepcopy(self)
    if not bn:
        for layer in net.modules():
            if isinstance(layer, (nn.BatchNorm2d, nn.BatchNorm1d)):
                layer.forward = types.MethodType(no_op, layer)
    return net


def find_measures_arrays(net_orig, trainloader, dataload_info, device, measure_names=None, loss_fn=F.cross_entropy):
    """``{name: raw value}`` of each measure on one shared batch."""
    if measure_names is None:
        measure_names = registry.available_measures
    dataload, num_imgs_or_batches, num_classes = dataload_info
    if not hasattr(net_orig, "get_prunable_copy"):
        net_orig.get_prunable_copy = types.MethodType(copynet, net_orig)
    torch.cuda.empty_cache()
    net_orig = net_orig.cpu()
    torch.cuda.empty_cache()
    if dataload == "random":
        inputs, targets = get_some_data(trainloader, num_batches=num_imgs_or_batches, device=device)
    elif dataload == "grasp":
        inputs, targets = get_some_data_grasp(
            trainloader, num_classes, samples_per_class=num_imgs_or_batches, device=device
        )
    else:
        raise NotImplementedError(f"dataload {dataload} is not supported")

    done, ds = False, 1
    measure_values = {}
    while not done:
        try:
            for measure_name in measure_names:
                if measure_name not in measure_values:
                    measure_values[measure_name] = registry.calc_measure(
                        measure_name, net_orig, device, inputs, targets, loss_fn=loss_fn, split_data=ds
                    )
            done = True
        except RuntimeError as e:
            if "out of memory" not in str(e):
                raise
            if ds == inputs.shape[0] // 2:
                raise ValueError("Can't split data anymore, but still unable to run. Something is wrong") from e
            ds += 1
            while inputs.shape[0] % ds != 0:
                ds += 1
            torch.cuda.empty_cache()
    net_orig.to(device).train()
    return measure_values


def make_find_measures(unreduced_names):
    """The branch's ``find_measures``: values of ``unreduced_names`` are used as given,
    every other value is reduced by ``sum_arr``. Returns only the last measure's score."""

    def find_measures(net_orig, dataloader, dataload_info, device, loss_fn, measure_names=None, measures_arr=None):
        def sum_arr(arr):
            total = 0.0
            for i in range(len(arr)):
                total += torch.sum(arr[i])
            return total.item()

        if measures_arr is None:
            measures_arr = find_measures_arrays(
                net_orig, dataloader, dataload_info, device, loss_fn=loss_fn, measure_names=measure_names
            )
        for k, v in measures_arr.items():
            if k in unreduced_names:
                measure_score = v
            else:
                measure_score = sum_arr(v)
        return measure_score

    return find_measures
