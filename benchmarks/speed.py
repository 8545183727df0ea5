"""One MetaNTK score, four ways, side by side (issue: speed against the official approach).

For each network (NAS-Bench-201 C=16 N=5 with GroupNorm; the few-shot DARTS supernet
C=48 with 5 cells, all 7 operations active) the same MetaNTK condition number is computed
on the same 3 tasks x (5 queries + 5 supports) of 32x32 images by

* ``loop``: the plain per-sample backward loop (our reference backend);
* ``opacus``: opacus per-sample gradients (``GradSampleModule``), as the official code does;
* ``vmap``: ``torch.func.vmap`` of per-sample gradients;
* ``gram``: per-layer Gram matrices from one batched backward pass (our default);
* ``gram_cl``: the same on a copy of the network with channels_last weights (so
  channels_last activations), as the DARTS search builds its supernet.

Beside them, interleaved too, two passes that score nothing:

* ``backprop``: one forward and one backward pass of the same batch to its input, with no
  weight gradient at all. All four propagate at least this much (``gram`` exactly this, plus
  its per-sample and Gram work), so ``gram / backprop`` says how much is left to gain outside
  PyTorch's own forward and backward kernels;
* ``train_step``: the same forward and backward pass to the kernel's weights as well, their
  gradients summed over the batch, as in one training step. Per-sample weight gradients take
  the same FLOPs as the summed ones, so a method that pays no more for them than PyTorch's
  kernels pay for the summed ones still takes this long, and ``opacus / train_step`` bounds
  what any per-sample-gradient method on these kernels can gain over opacus;
  ``train_step_cl`` the same on the channels_last copy (the bound for ``gram_cl``).

Runs are interleaved (strategy order rotates each repeat); the table gives median wall,
CPU and system seconds and minor page faults, speed-ups against loop and opacus, the
relative difference of each score from the ``gram`` score, and the arithmetic floor
(forward + backward + Gram FLOPs at the measured matmul rate). Below it, where ``gram``'s
time goes: self CPU time by phase (forward, backward, per-sample
gradients, Gram matrices) and by layer kind (conv 3x3, depthwise conv 3x3, conv 1x1, ...).
With ``--isolate`` every timed run happens in a fresh process after its own warm-up (the
order stays interleaved): on a virtual machine the cost of a page fault depends on what ran
before, and opacus's gigabytes of per-sample gradients slow the run after it.
A float64 check confirms the backends agree to 1e-10. Peak RSS and peak CUDA memory are
printed; ``--leak-check N`` scores N NAS-Bench-201 cells in a row and
reports RSS after each tenth of them.

    python benchmarks/speed.py --force              # CPU, writes benchmarks/results/speed_cpu.json
    python benchmarks/speed.py --device cuda        # GPU, writes speed_cuda.{json,md}
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from _options import positive_int
from _profiling import print_breakdown, time_breakdown
from torch import nn

from metantk_plugin.atomic_files import write_file_atomically
from metantk_plugin.kernels import condition_number, metantk_from_kernels
from metantk_plugin.kernels.ntk import kernel_modules
from metantk_plugin.network_adapter import split_output
from metantk_plugin.proxies.metantk import MetaNTK, seeded_head
from metantk_plugin.spaces.darts_fewshot import DartsFewshotSupernet
from metantk_plugin.spaces.nasbench201 import all_architectures, build_network
from metantk_plugin.tasks import TaskBatch, synthetic_tasks

RESULTS = Path(__file__).resolve().parent / "results"
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def networks() -> dict[str, tuple[str, Callable[[], nn.Module]]]:
    """short key -> (name, factory)."""
    return {
        "nb201": ("NAS-Bench-201 C=16 N=5", lambda: build_network(NB201_ARCH, C=16, N=5, norm="group", seed=0)),
        "darts": ("few-shot DARTS supernet C=48, 5 cells",
                  lambda: _seeded(lambda: DartsFewshotSupernet(C=48, cells=5))),
    }


def _seeded(factory: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return factory()


def opacus_metantk(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """The official recipe: opacus per-sample gradients of g = Σ head logits, then Grams."""
    from opacus import GradSampleModule

    from metantk_plugin.kernels.ntk import _WithHead

    x = tasks.inputs().to(next(network.parameters()).device)
    with torch.no_grad():
        dim = split_output(network(x[:1]))[0].shape[1]
    head = seeded_head(dim, tasks.ways, seed=seed, device=x.device, dtype=x.dtype)
    model = _WithHead(network, head)
    weights = [m.weight for m in kernel_modules(model).values()]
    for p in model.parameters():
        p.requires_grad_(any(p is w for w in weights))
    wrapped = GradSampleModule(model)
    try:
        with warnings.catch_warnings():  # opacus's hooks fire on module outputs, as intended here
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            wrapped(x).sum().backward()
        ntk = sum(w.grad_sample.flatten(1) @ w.grad_sample.flatten(1).T for w in weights if w.grad_sample is not None)
        head_k = head.weight.grad_sample.flatten(1) @ head.weight.grad_sample.flatten(1).T
    finally:
        wrapped._close()
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None
            if hasattr(p, "grad_sample"):
                del p.grad_sample
    del head_k
    phi = metantk_from_kernels(ntk, ntk, n_tasks=tasks.n_tasks, n_query=tasks.n_query, n_support=tasks.n_support)
    return condition_number(phi)


def strategies(has_opacus: bool) -> dict[str, Callable[[nn.Module, TaskBatch], float]]:
    out = {"loop": lambda n, t: MetaNTK(backend="loop").condition_number(n, t)}
    if has_opacus:
        out["opacus"] = opacus_metantk
    out["vmap"] = lambda n, t: MetaNTK(backend="vmap").condition_number(n, t)
    out["gram"] = lambda n, t: MetaNTK(backend="gram").condition_number(n, t)
    out["gram_cl"] = _on_channels_last_copy(out["gram"])
    return out


def _on_channels_last_copy(fn: Callable[[nn.Module, TaskBatch], float]) -> Callable[[nn.Module, TaskBatch], float]:
    """``fn`` on a channels_last copy of the network, made once per network."""
    copies: dict[int, nn.Module] = {}

    def on_copy(network: nn.Module, tasks: TaskBatch) -> float:
        if id(network) not in copies:
            copies[id(network)] = copy.deepcopy(network).to(memory_format=torch.channels_last)
        return fn(copies[id(network)], tasks)

    return on_copy


def backprop(network: nn.Module, tasks: TaskBatch) -> float:
    """One forward and one backward pass of the batch to its input, no weight gradients; nan."""
    x = tasks.inputs().detach().requires_grad_(True)
    flags = [(p, p.requires_grad) for p in network.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        torch.autograd.grad(split_output(network(x))[1].sum(), x)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return math.nan


def train_step(network: nn.Module, tasks: TaskBatch) -> float:
    """One forward and one backward pass of the batch to the kernel's weights (gradients
    summed over the batch, as in a training step); nan."""
    weights = [m.weight for m in kernel_modules(network).values()]
    torch.autograd.grad(split_output(network(tasks.inputs()))[1].sum(), weights)
    return math.nan


PASSES = {"backprop": backprop, "train_step": train_step, "train_step_cl": _on_channels_last_copy(train_step)}
"""The passes timed beside the strategies, which score nothing."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device) -> float:
    a = torch.randn(2048, 2048, device=device)
    a @ a
    _sync(device)
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best / 1e9


def floor_flops(network: nn.Module, x: torch.Tensor) -> float:
    """Forward MACs x 2 x 3 (forward + backward) + the Gram matrices' FLOPs."""
    macs = 0
    grams = 0

    def hook(module, inputs, output):
        nonlocal macs, grams
        w = module.weight
        per_out = w[0].numel()
        macs += output.numel() * per_out
        grams += x.shape[0] ** 2 * w.numel() * 2

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        network(x)
    for h in handles:
        h.remove()
    return 3 * 2 * macs + grams


def gram_breakdown(network: nn.Module, tasks: TaskBatch) -> list[dict]:
    """Where one ``gram`` MetaNTK score spends its time (``_profiling.time_breakdown``): by
    phase of the backend and, inside the forward and backward passes, by layer kind."""
    proxy = MetaNTK(backend="gram")
    proxy.condition_number(network, tasks)
    return time_breakdown(lambda: proxy.condition_number(network, tasks),
                          outside="outside the kernel (MetaNTK solve, eigenvalues, set-up)",
                          detailed=("forward", "backward"))


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` where Linux gives it (``ru_maxrss`` of a spawned
    child also counts the parent's peak at the fork), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_one(fn: Callable[[], float], device: torch.device) -> tuple[float, float, float, float, int]:
    """Wall seconds, CPU seconds, the value, system CPU seconds and minor page faults of ``fn()``.
    System time is the kernel's (mostly zeroing freshly faulted pages): a strategy that
    allocates heavily makes the next one fault more, which interleaving makes visible."""
    _sync(device)
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    _sync(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, cpu, value, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt


def isolated_run(strategy: str, network_key: str, threads: int, device_name: str) -> tuple:
    """One timed score of ``strategy`` in this (fresh) process after one warm-up run:
    ``time_one``'s tuple plus peak CUDA GiB (None on the CPU)."""
    device = torch.device(device_name)
    torch.set_num_threads(threads)
    net = networks()[network_key][1]().to(device)
    tasks = _tasks(device)
    fn = {**strategies(strategy == "opacus"), **PASSES}[strategy]
    fn(net, tasks)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = time_one(lambda: fn(net, tasks), device)
    return (*timed, torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None)


def _in_fresh_process(*args) -> tuple:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(isolated_run, *args).result()


def _tasks(device: torch.device) -> TaskBatch:
    return synthetic_tasks(n_tasks=3, ways=5, shots=1, queries=1, image_size=32, seed=0).to(device)


def float64_agreement(device: torch.device) -> dict[str, float]:
    """Max relative difference of each backend's MetaNTK matrix from the loop's, in float64."""
    net = build_network(NB201_ARCH, C=8, N=2, norm="group", seed=1).double().to(device)
    tasks = synthetic_tasks(image_size=16, seed=1).to(device, torch.float64)
    ref = MetaNTK(backend="loop").evaluate(net, tasks).matrix
    return {b: float(((MetaNTK(backend=b).evaluate(net, tasks).matrix - ref).abs().max() / ref.abs().max()).item())
            for b in ("vmap", "gram")}


def leak_check(n: int, device: torch.device) -> list[float]:
    archs = all_architectures()
    tasks = synthetic_tasks(image_size=32, seed=0).to(device)
    rss = []
    for i in range(n):
        net = build_network(archs[(i * 7919) % len(archs)], C=16, N=5, norm="group", seed=i).to(device)
        MetaNTK().condition_number(net, tasks, label=str(i))
        if (i + 1) % max(1, n // 10) == 0:
            rss.append(_current_rss_mb())
    return rss


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs per strategy (default 5)")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads on CPU (default 2)")
    parser.add_argument("--networks", default="all", choices=("nb201", "darts", "all"), help="which networks")
    parser.add_argument("--skip", default="", help="comma-separated strategies to leave out (e.g. loop)")
    parser.add_argument("--leak-check", type=int, default=0, help="score this many NB201 cells and report RSS")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/speed_<device>.json)")
    parser.add_argument("--force", action="store_true", help="replace an existing result file")
    parser.add_argument("--isolate", action="store_true",
                        help="time every run in a fresh process (still interleaved), so that one strategy's "
                             "memory churn does not slow the next; the default times all runs in this process")
    args = parser.parse_args()
    device = torch.device(args.device)
    out = args.out or RESULTS / f"speed_{device.type}.json"
    if out.exists() and not args.force:
        parser.error(f"{out} exists; pass --force to replace it or --out to write elsewhere")
    torch.set_num_threads(args.threads)
    try:
        import opacus  # noqa: F401

        has_opacus = True
    except ImportError:
        has_opacus = False
        print("opacus is not installed (pip install 'metantk-plugin[bench]'): its column is left out", file=sys.stderr)
    tasks = _tasks(device)
    rate = matmul_gflops(device)
    skip = set(filter(None, args.skip.split(",")))
    chosen = {k: v for k, v in strategies(has_opacus).items() if k not in skip}
    contenders = {**chosen, **PASSES}
    report = {
        "device": str(device), "machine": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__, "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "isolated_processes": args.isolate,
        "matmul_gflops": rate, "float64_max_relative_difference_vs_loop": float64_agreement(device), "networks": {},
    }
    for key, (name, factory) in networks().items():
        if args.networks not in ("all", key):
            continue
        net = factory().to(device)
        x = tasks.inputs()
        floor_s = floor_flops(net, x) / (rate * 1e9)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if not args.isolate:
            for fn in contenders.values():  # warm-up
                fn(net, tasks)
        runs: dict[str, list[tuple]] = {k: [] for k in contenders}
        peak_cuda: dict[str, float] = {}
        keys = list(contenders)
        for r in range(args.repeats):
            for k in keys[r % len(keys):] + keys[: r % len(keys)]:
                if args.isolate:
                    *timed, peak = _in_fresh_process(k, key, args.threads, str(device))
                    runs[k].append(tuple(timed))
                    if peak is not None:
                        peak_cuda[k] = max(peak_cuda.get(k, 0.0), peak)
                    continue
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                runs[k].append(time_one(lambda k=k, net=net: contenders[k](net, tasks), device))
                if device.type == "cuda":
                    peak_cuda[k] = max(peak_cuda.get(k, 0.0), torch.cuda.max_memory_allocated(device) / 2**30)
        rows = {}
        ref = statistics.median(v[2] for v in runs["gram"])
        backprop_s, train_step_s, train_step_cl_s = (statistics.median(v[0] for v in runs.pop(k)) for k in PASSES)
        for k, values in runs.items():
            wall = statistics.median(v[0] for v in values)
            rows[k] = {"wall_s": wall, "cpu_s": statistics.median(v[1] for v in values),
                       "system_s": statistics.median(v[3] for v in values),
                       "minor_page_faults": int(statistics.median(v[4] for v in values)),
                       "score": values[0][2], "relative_difference_vs_gram": abs(values[0][2] - ref) / ref,
                       "peak_cuda_gib": peak_cuda.get(k)}
        for k in rows:
            for base in ("loop", "opacus"):
                if base in rows:
                    rows[k][f"speedup_vs_{base}"] = rows[base]["wall_s"] / rows[k]["wall_s"]
        breakdown = gram_breakdown(net, tasks) if device.type == "cpu" else None
        report["networks"][name] = {"floor_s": floor_s, "gram_over_floor": rows["gram"]["wall_s"] / floor_s,
                                    "backprop_s": backprop_s, "gram_over_backprop": rows["gram"]["wall_s"] / backprop_s,
                                    "backprop_over_floor": backprop_s / floor_s, "train_step_s": train_step_s,
                                    "gram_over_train_step": rows["gram"]["wall_s"] / train_step_s,
                                    "opacus_over_train_step": rows["opacus"]["wall_s"] / train_step_s
                                    if "opacus" in rows else None, "train_step_cl_s": train_step_cl_s,
                                    "strategies": rows, "gram_breakdown": breakdown}
        _print_table(name, floor_s, backprop_s, (train_step_s, train_step_cl_s), rows)
        if breakdown:
            print_breakdown("gram", breakdown)
    report["peak_rss_mb"] = peak_rss_mb()
    print(f"peak RSS {report['peak_rss_mb']:.0f} MB; float64 max relative difference vs loop: "
          f"{report['float64_max_relative_difference_vs_loop']}")
    if args.leak_check:
        report["leak_check_rss_mb"] = leak_check(args.leak_check, device)
        print(f"RSS after each tenth of {args.leak_check} scores (MB): "
              + ", ".join(f"{v:.0f}" for v in report["leak_check_rss_mb"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(out, json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


def _print_table(name: str, floor_s: float, backprop_s: float, train_steps: tuple[float, float], rows: dict) -> None:
    print(f"\n{name}: arithmetic floor {floor_s:.3f} s; forward + backward to the input {backprop_s:.3f} s "
          f"({backprop_s / floor_s:.1f}x the floor; gram {rows['gram']['wall_s'] / backprop_s:.2f}x that)")
    for label, seconds, gram in zip(("", " (channels_last copy)"), train_steps, ("gram", "gram_cl")):
        if gram not in rows:
            continue
        bound = (f"; opacus {rows['opacus']['wall_s'] / seconds:.2f}x that, the most a per-sample method on these "
                 f"kernels can gain over opacus" if "opacus" in rows else "")
        print(f"  a training step's forward + backward to the weights{label} {seconds:.3f} s ({gram} "
              f"{rows[gram]['wall_s'] / seconds:.2f}x that{bound})")
    print(f"{'strategy':8s} {'wall s':>8s} {'cpu s':>8s} {'sys s':>7s} {'faults':>9s} {'vs loop':>8s} "
          f"{'vs opacus':>9s} "
          f"{'rel. diff':>10s} {'CUDA GiB':>8s}")
    for k, r in rows.items():
        cuda = f"{r['peak_cuda_gib']:.2f}" if r["peak_cuda_gib"] is not None else "-"
        print(f"{k:8s} {r['wall_s']:8.3f} {r['cpu_s']:8.3f} {r['system_s']:7.2f} {r['minor_page_faults']:9d} "
              f"{r.get('speedup_vs_loop', float('nan')):8.2f} "
              f"{r.get('speedup_vs_opacus', float('nan')):9.2f} {r['relative_difference_vs_gram']:10.2e} {cuda:>8s}")


if __name__ == "__main__":
    sys.exit(main())
