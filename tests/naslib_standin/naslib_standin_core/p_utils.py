"""NASLib's data and layer helpers (``.../pruners/p_utils.py``)."""

from __future__ import annotations

import torch
from torch import nn


def get_some_data(train_dataloader, num_batches, device):
    """The first ``num_batches`` batches of the loader, concatenated."""
    traindata = []
    dataloader_iter = iter(train_dataloader)
    for _ in range(num_batches):
        traindata.append(next(dataloader_iter))
    inputs = torch.cat([a for a, _ in traindata])
    targets = torch.cat([b for _, b in traindata])
    return inputs.to(device), targets.to(device)


def get_some_data_grasp(train_dataloader, num_classes, samples_per_class, device):
    """``samples_per_class`` samples of every class, class by class."""
    datas = [[] for _ in range(num_classes)]
    labels = [[] for _ in range(num_classes)]
    mark = {}
    dataloader_iter = iter(train_dataloader)
    while True:
        inputs, targets = next(dataloader_iter)
        for idx in range(inputs.shape[0]):
            x, y = inputs[idx : idx + 1], targets[idx : idx + 1]
            category = y.item()
            if len(datas[category]) == samples_per_class:
                mark[category] = True
                continue
            datas[category].append(x)
            labels[category].append(y)
        if len(mark) == num_classes:
            break
    x = torch.cat([torch.cat(d, 0) for d in datas]).to(device)
    y = torch.cat([torch.cat(t) for t in labels]).view(-1).to(device)
    return x, y


def get_layer_metric_array(net, metric, mode):
    """``metric(layer)`` for every Conv2d and Linear layer, in module order."""
    metric_array = []
    for layer in net.modules():
        if mode == "channel" and hasattr(layer, "dont_ch_prune"):
            continue
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            metric_array.append(metric(layer))
    return metric_array
