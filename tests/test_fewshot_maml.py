from __future__ import annotations

import threading

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.maml import MetaConfig, MetaLearner, adapted_accuracy, meta_gradient, use_batch_statistics
from metantk_plugin.tasks import synthetic_tasks


def _network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return use_batch_statistics(Conv4(num_classes=3, in_channels=1, hidden=8)).double()


def _tasks(n_tasks: int = 3, queries: int = 2):
    return synthetic_tasks(n_tasks, ways=3, shots=2, queries=queries, image_size=12, channels=1, seed=1).to(
        dtype=torch.float64)


def _reference_gradient(network, tasks, algorithm, lr, steps):
    """Plain autograd, one task at a time, written out in full."""
    params = dict(network.named_parameters())
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for t in range(tasks.n_tasks):
        sx, sy, qx, qy = tasks.support_x[t], tasks.support_y[t], tasks.query_x[t], tasks.query_y[t]
        if algorithm == "anil":
            s_features = functional_call(network, params, (sx,))[0]
            q_features = functional_call(network, params, (qx,))[0]
            w, b = params["classifier.weight"], params["classifier.bias"]
            for _ in range(steps):
                gw, gb = torch.autograd.grad(F.cross_entropy(F.linear(s_features, w, b), sy), (w, b),
                                             create_graph=True)
                w, b = w - lr * gw, b - lr * gb
            loss = F.cross_entropy(F.linear(q_features, w, b), qy)
            grads = torch.autograd.grad(loss, list(params.values()))
        else:
            fast = dict(params)
            for _ in range(steps):
                g = torch.autograd.grad(F.cross_entropy(functional_call(network, fast, (sx,))[1], sy),
                                        list(fast.values()), create_graph=algorithm == "maml")
                fast = {name: value - lr * grad for (name, value), grad in zip(fast.items(), g)}
            if algorithm == "fomaml":
                fast = {name: value.detach().requires_grad_() for name, value in fast.items()}
            loss = F.cross_entropy(functional_call(network, fast, (qx,))[1], qy)
            grads = torch.autograd.grad(loss, list(fast.values() if algorithm == "fomaml" else params.values()))
        for name, grad in zip(params, grads):
            total[name] += grad / tasks.n_tasks
    return total


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil"])
@pytest.mark.parametrize("strategy", ["loop", "vmap", "batched"])
def test_meta_gradient_matches_plain_autograd(algorithm, strategy):
    network, tasks = _network(), _tasks()
    expected = _reference_gradient(network, tasks, algorithm, lr=0.3, steps=2)
    grads, loss, accuracy = meta_gradient(network, tasks, MetaConfig(algorithm=algorithm, inner_lr=0.3,
                                                                     inner_steps=2, strategy=strategy))
    assert set(grads) == set(expected) and 0 <= accuracy <= 1 and loss > 0
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-7, atol=1e-10)
    if algorithm == "anil":  # the body learns through the features
        assert grads["features.0.weight"].abs().max() > 0


def test_second_order_differs_from_first_order():
    network, tasks = _network(), _tasks()
    second, _, _ = meta_gradient(network, tasks, MetaConfig(algorithm="maml", strategy="loop"))
    first, _, _ = meta_gradient(network, tasks, MetaConfig(algorithm="fomaml", strategy="loop"))
    assert not torch.allclose(second["features.0.weight"], first["features.0.weight"])


@pytest.mark.parametrize("algorithm", ["maml", "anil"])
@pytest.mark.parametrize("strategy", ["vmap", "batched"])
def test_adapted_accuracy_is_the_same_for_all_strategies(algorithm, strategy):
    network, tasks = _network(2), _tasks(4)
    loop = adapted_accuracy(network, tasks, algorithm=algorithm, lr=0.5, steps=3, strategy="loop")
    other = adapted_accuracy(network, tasks, algorithm=algorithm, lr=0.5, steps=3, strategy=strategy)
    assert loop.shape == (4,) and torch.equal(loop, other)


def _nb201(seed: int = 0) -> nn.Module:
    from metantk_plugin.spaces.nasbench201 import build_network

    torch.manual_seed(seed)
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    return use_batch_statistics(build_network(arch, C=4, N=1, num_classes=3, norm="batch", in_channels=1))


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil"])
@pytest.mark.parametrize("make_network", [lambda: use_batch_statistics(Conv4(num_classes=3, hidden=8)), _nb201],
                         ids=["conv4", "nb201"])
def test_batched_strategy_matches_the_loop_in_float32(algorithm, make_network):
    """Conv-4 and a NAS-Bench-201 network (with a 'none' edge, whose weights get zero
    gradients), in float32: the same meta-gradient, loss and accuracy as ``loop``."""
    tasks = synthetic_tasks(4, ways=3, shots=2, queries=3, image_size=16, channels=1, seed=3)
    network = make_network()
    results = {strategy: meta_gradient(network, tasks, MetaConfig(algorithm=algorithm, inner_lr=0.4,
                                                                  strategy=strategy))
               for strategy in ("loop", "batched")}
    (loop, loop_loss, loop_accuracy), (batched, loss, accuracy) = results["loop"], results["batched"]
    scale = max(float(g.abs().max()) for g in loop.values())
    assert set(batched) == set(loop) and scale > 0
    for name in loop:
        torch.testing.assert_close(batched[name], loop[name], rtol=0, atol=1e-5 * scale)
    assert loss == pytest.approx(loop_loss, rel=1e-5) and accuracy == pytest.approx(loop_accuracy, abs=1e-6)


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_bfloat16_queries_run_only_the_query_passes_in_bf16(algorithm, strategy):
    """query_precision='bfloat16': the convolutions see bf16 on query sets and float32 on
    support sets; the meta-gradient is float32 and within bf16 rounding of the float32 one."""
    tasks = synthetic_tasks(3, ways=3, shots=2, queries=4, image_size=16, channels=1, seed=3)
    torch.manual_seed(0)
    network = use_batch_statistics(Conv4(num_classes=3, hidden=32))
    seen = []
    network.features[0].register_forward_hook(lambda module, inputs, output: seen.append(
        (inputs[0].shape[-4], output.dtype)))
    grads = {precision: meta_gradient(network, tasks, MetaConfig(algorithm=algorithm, strategy=strategy,
                                                                 query_precision=precision))[0]
             for precision in ("float32", "bfloat16")}
    bf16_run = seen[len(seen) // 2:]
    assert {dtype for size, dtype in bf16_run if size == 3 * 4} == {torch.bfloat16}
    assert {dtype for size, dtype in bf16_run if size == 3 * 2} == {torch.float32}
    assert all(g.dtype == torch.float32 for g in grads["bfloat16"].values())
    full, bf16 = (torch.cat([g.flatten() for g in grads[p].values()]) for p in ("float32", "bfloat16"))
    assert 0 < float((bf16 - full).norm() / full.norm()) < 0.1  # 0.054 maml, 0.029 fomaml


class _QueryThreads:
    """Which threads ran the network on query-sized batches (a forward hook, which the
    per-thread copies of the network share)."""

    def __init__(self, network: nn.Module, query_size: int):
        self.names: set[str] = set()
        network.register_forward_hook(lambda module, inputs, output: self.names.add(
            threading.current_thread().name) if inputs[0].shape[0] == query_size else None)


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_batched_strategy_on_two_threads_matches_plain_autograd(algorithm):
    """With 2 intra-op threads the query passes run on 2 worker threads, one task each at a
    time; the meta-gradient and the accuracies stay those of plain autograd, and torch's
    thread setting and the network are left as they were."""
    network, tasks = _network(), _tasks(5, queries=3)
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    expected = _reference_gradient(network, tasks, algorithm, lr=0.3, steps=2)
    loop_accuracy = adapted_accuracy(network, tasks, algorithm=algorithm, lr=0.3, steps=2, strategy="loop")
    threads = _QueryThreads(network, query_size=3 * 3)
    torch.set_num_threads(2)
    grads, _, _ = meta_gradient(network, tasks, MetaConfig(algorithm=algorithm, inner_lr=0.3, inner_steps=2,
                                                           strategy="batched"))
    accuracy = adapted_accuracy(network, tasks, algorithm=algorithm, lr=0.3, steps=2, strategy="batched")
    assert torch.get_num_threads() == 2
    assert {name.rsplit("_", 1)[0] for name in threads.names} == {"metantk-tasks"} and len(threads.names) == 2
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-7, atol=1e-10)
    assert torch.equal(accuracy, loop_accuracy)
    for name, p in network.named_parameters():
        assert torch.equal(p, before[name])


def test_batched_strategy_runs_tasks_in_turn_for_a_network_that_cannot_be_copied():
    class Uncopyable(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _network()
            self.lock = threading.Lock()  # deepcopy cannot pickle a lock

        def forward(self, x):
            return self.body(x)

    network, tasks = Uncopyable(), _tasks(4, queries=3)
    expected = _reference_gradient(network, tasks, "fomaml", lr=0.3, steps=1)
    threads = _QueryThreads(network, query_size=3 * 3)
    torch.set_num_threads(2)
    with pytest.warns(UserWarning, match="runs its tasks on one thread: the network cannot be deep-copied"):
        grads, _, _ = meta_gradient(network, tasks, MetaConfig(algorithm="fomaml", inner_lr=0.3, strategy="batched"))
    assert threads.names == {threading.current_thread().name}
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-7, atol=1e-10)


def test_an_error_on_a_worker_thread_reaches_the_caller_and_restores_the_threads():
    class FailsOnQueries(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _network()

        def forward(self, x):
            if x.shape[0] == 3 * 3:
                raise ValueError("query batch refused")
            return self.body(x)

    torch.set_num_threads(2)
    with pytest.raises(ValueError, match="query batch refused"):
        meta_gradient(FailsOnQueries(), _tasks(4, queries=3), MetaConfig(algorithm="maml", strategy="batched"))
    assert torch.get_num_threads() == 2


def test_batched_strategy_names_the_loop_where_vmap_fails():
    class ItemInForward(nn.Module):  # .item() cannot run under vmap
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(144, 3)

        def forward(self, x):
            return self.classifier(x.flatten(1) * x.abs().max().item())

    tasks = _tasks().to(dtype=torch.float32)
    with pytest.raises(RuntimeError, match="strategy='loop' runs them one task at a time"):
        meta_gradient(ItemInForward(), tasks, MetaConfig(strategy="batched"))
    meta_gradient(ItemInForward(), tasks, MetaConfig(strategy="loop"))


def test_batched_strategy_needs_batch_statistics():
    network = Conv4(num_classes=3, hidden=8)  # BatchNorm with running statistics
    with pytest.raises(ValueError, match="batched strategy needs BatchNorm layers on batch statistics"):
        meta_gradient(network, _tasks().to(dtype=torch.float32), MetaConfig(strategy="batched"))
    assert all(type(m).forward is m.forward.__func__ for m in network.modules())  # layers restored


def test_conv4_matches_the_anchor_network():
    network = Conv4(num_classes=5, in_channels=1)
    assert sum(p.numel() for p in network.parameters()) == 112_261
    features, logits = network(torch.rand(7, 1, 28, 28))
    assert features.shape == (7, 64) and logits.shape == (7, 5)
    assert 0.5 < float(network.classifier.weight.detach().std()) < 1.5  # MAML's N(0, 1) head
    assert not Conv4(head_init="zeros").classifier.weight.any()
    with pytest.raises(ValueError, match="hidden"):
        Conv4(hidden=0)
    with pytest.raises(ValueError, match="head_init"):
        Conv4(head_init="xavier")


def test_batch_statistics_are_used_in_eval_mode_too():
    network = use_batch_statistics(Conv4(hidden=4))
    assert not any(isinstance(b, torch.Tensor) and b.numel() > 1 for _, b in network.named_buffers())
    x = torch.rand(6, 1, 12, 12)
    network.eval()
    alone = network(x[:3])[1]
    together = network(x)[1][:3]
    assert not torch.allclose(alone, together)  # statistics of the batch at hand


def test_meta_step_updates_and_clips():
    tasks = _tasks().to(dtype=torch.float32)
    torch.manual_seed(0)
    free = MetaLearner(Conv4(num_classes=3, hidden=8), MetaConfig(meta_lr=1e-2, strategy="loop"))
    torch.manual_seed(0)
    clipped = MetaLearner(Conv4(num_classes=3, hidden=8), MetaConfig(meta_lr=1e-2, grad_clip=1e-12,
                                                                     strategy="loop"))
    before = [p.detach().clone() for p in free.network.parameters()]
    free.meta_step(tasks)
    clipped.meta_step(tasks)
    moved_free = sum(float((p.detach() - b).abs().sum()) for p, b in zip(free.network.parameters(), before))
    moved_clipped = sum(float((p.detach() - b).abs().sum()) for p, b in zip(clipped.network.parameters(), before))
    assert moved_free > 100 * moved_clipped > 0


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="unknown algorithm 'reptile'"):
        MetaConfig(algorithm="reptile")
    with pytest.raises(ValueError, match="inner_steps"):
        MetaConfig(inner_steps=0)
    with pytest.raises(ValueError, match="inner_lr"):
        MetaConfig(inner_lr=-1.0)
    with pytest.raises(ValueError, match="unknown query_precision 'float16'; expected one of"):
        MetaConfig(query_precision="float16")
    with pytest.raises(ValueError, match="needs strategy 'loop' or 'batched'"):
        MetaConfig(query_precision="bfloat16", strategy="vmap")
    with pytest.raises(ValueError, match="ANIL's body learns only through the query features"):
        MetaConfig(algorithm="anil", query_precision="bfloat16")

    class LogitsOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(144, 3)

        def forward(self, x):
            return self.classifier(x.flatten(1))

    tasks = _tasks().to(dtype=torch.float32)
    with pytest.raises(ValueError, match="ANIL needs a network whose forward returns"):
        meta_gradient(LogitsOnly(), tasks, MetaConfig(algorithm="anil"))
