"""One prepared GPU check (under 8 minutes on an H100): correctness on CUDA against the CPU,
then the timings of the speed issue. Writes its tables (JSON and Markdown) under ``$OUT``
(default benchmarks/results).

    OUT=/some/dir python benchmarks/gpu_check.py [--archs 300] [--search-candidates 12]

1. The MetaNTK of 4 NAS-Bench-201 cells in float64 on CUDA and on the CPU (same weights,
   same tasks): the condition numbers must agree to 1e-10 relative.
2. One MetaNTK score of both networks, four strategies (``benchmarks/speed.py --device cuda``).
3. Throughput: ``--archs`` NAS-Bench-201 cells (C=16, N=5) built and scored one after the
   other, in float32 and with TF32 matmuls/convolutions; the time for all 15,625 is
   extrapolated, and the two rankings are compared (Spearman).
4. The full-size few-shot DARTS search (C=48, 5 cells, 3 repeats): the first round's origin
   and ``--search-candidates`` candidates are timed, and the whole search (1,521 MetaNTK
   evaluations and as many region counts) is extrapolated from them (``--cpu-search-estimate``
   does only this, on the CPU).
5. MAML on Omniglot-shaped tasks (Conv-4, 32 tasks of 5-way 1-shot with 15 queries, 28x28):
   seconds per meta-step of the ``vmap`` and ``batched`` strategies in float32 and of
   ``batched`` with bfloat16 query passes, and how far each meta-gradient is from ``vmap``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.maml import MetaConfig, MetaLearner, meta_gradient
from metantk_plugin.proxies import MetaNTK
from metantk_plugin.proxies.te_nas import linear_region_count
from metantk_plugin.search.darts_space import DartsFewshotSearchSpace
from metantk_plugin.search.pruning import _region_inputs
from metantk_plugin.search.space import REMOVED
from metantk_plugin.spaces.nasbench201 import all_architectures, build_network
from metantk_plugin.tasks import synthetic_tasks

FULL_SEARCH_KERNEL_EVALUATIONS = 1521  # 500 candidates x 3 repeats + 7 rounds x 3 origins


def correctness(device: torch.device) -> dict:
    tasks = synthetic_tasks(seed=5)
    rows = []
    for i in (1, 857, 6111, 9930):
        net = build_network(i, C=8, N=2, norm="group", seed=i).double()
        cpu = MetaNTK().condition_number(net, tasks.to(dtype=torch.float64))
        gpu = MetaNTK().condition_number(net.to(device), tasks.to(device, torch.float64))
        rows.append({"index": i, "cpu": cpu, "cuda": gpu, "relative_difference": abs(cpu - gpu) / cpu})
    return {"rows": rows, "ok": all(r["relative_difference"] < 1e-10 for r in rows)}


def throughput(device: torch.device, n: int, tf32: bool) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    tasks = synthetic_tasks(seed=0).to(device)
    archs = all_architectures()
    picks = [(k * 7919) % len(archs) for k in range(n)]
    scores, times = [], []
    torch.cuda.reset_peak_memory_stats(device)
    for k in picks:
        torch.cuda.synchronize()
        start = time.perf_counter()
        net = build_network(archs[k], C=16, N=5, norm="group", seed=k).to(device)
        scores.append(MetaNTK().condition_number(net, tasks, label=str(k)))
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    per_arch = statistics.median(times[5:] or times)
    return {"tf32": tf32, "archs": n, "median_s_per_arch": per_arch, "all_15625_minutes": per_arch * 15625 / 60,
            "peak_cuda_gib": torch.cuda.max_memory_allocated(device) / 2**30, "scores": scores}


def darts_search_estimate(device: torch.device, candidates: int) -> dict:
    space = DartsFewshotSearchSpace(channels=48, cells=5)
    alphas = space.initial_alphas()
    net = space.kernel_network(alphas).to(device)
    thin = space.region_network(alphas).to(device)
    tasks = synthetic_tasks(seed=0).to(device)
    crops = _region_inputs(tasks.inputs(), 1000, torch.Generator().manual_seed(0)).to(device)
    proxy = MetaNTK()
    proxy.condition_number(net, tasks)  # warm-up
    kernel_s, region_s = [], []

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for j in range(candidates):
        trial = {k: v.clone() for k, v in alphas.items()}
        trial["normal" if j % 2 == 0 else "reduce"][j // 2 % 9, 1 + j % 7] = REMOVED
        space.apply_alphas(net, trial)
        space.apply_alphas(thin, trial)
        sync()
        start = time.perf_counter()
        proxy.condition_number(net, tasks)
        sync()
        kernel_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        linear_region_count(thin, crops)
        sync()
        region_s.append(time.perf_counter() - start)
    k, r = statistics.median(kernel_s), statistics.median(region_s)
    return {"kernel_s_first_round": k, "region_s_first_round": r,
            "estimated_full_search_minutes_upper_bound": FULL_SEARCH_KERNEL_EVALUATIONS * (k + r) / 60,
            "note": "first-round networks hold all 7 operations per edge; later rounds are cheaper"}


def maml_steps(device: torch.device, steps: int = 10) -> dict:
    """Seconds per meta-step (median of ``steps`` after 2 warm-ups) and the largest meta-gradient
    difference from ``vmap`` float32 (relative to its largest entry), per setting."""
    tasks = synthetic_tasks(32, ways=5, shots=1, queries=15, image_size=28, channels=1, seed=0).to(device)
    settings = {"vmap float32": ("vmap", "float32"), "batched float32": ("batched", "float32"),
                "batched bfloat16 queries": ("batched", "bfloat16")}
    out, reference = {}, None
    for name, (strategy, precision) in settings.items():
        torch.manual_seed(0)
        learner = MetaLearner(Conv4(num_classes=5, in_channels=1),
                              MetaConfig(strategy=strategy, query_precision=precision), device=device)
        grads, _, _ = meta_gradient(learner.network, tasks, learner.config)
        reference = reference or grads
        scale = max(float(g.abs().max()) for g in reference.values())
        seconds = []
        for i in range(steps + 2):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            learner.meta_step(tasks)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                seconds.append(time.perf_counter() - start)
        out[name] = {"seconds_per_step": statistics.median(seconds),
                     "gradient_difference": max(float((grads[k] - reference[k]).abs().max()) for k in grads) / scale}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=300)
    parser.add_argument("--search-candidates", type=int, default=12)
    parser.add_argument("--cpu-search-estimate", action="store_true",
                        help="only step 4, on the CPU (writes darts_search_cpu_estimate.json)")
    args = parser.parse_args()
    out = Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "results")
    out.mkdir(parents=True, exist_ok=True)
    if args.cpu_search_estimate:
        torch.set_num_threads(2)
        estimate = {"threads": 2, **darts_search_estimate(torch.device("cpu"), args.search_candidates)}
        print(json.dumps(estimate, indent=1))
        (out / "darts_search_cpu_estimate.json").write_text(json.dumps(estimate, indent=1))
        return 0
    if not torch.cuda.is_available():
        print("gpu_check needs a CUDA device", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    report = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__}
    report["correctness"] = correctness(device)
    print("CUDA vs CPU float64:", report["correctness"], flush=True)
    subprocess.run([sys.executable, str(Path(__file__).with_name("speed.py")), "--device", "cuda", "--repeats", "7",
                    "--out", str(out / "speed_cuda.json")], check=True)
    fp32 = throughput(device, args.archs, tf32=False)
    tf32 = throughput(device, args.archs, tf32=True)
    rho = float(spearmanr(fp32.pop("scores"), tf32.pop("scores")).statistic)
    report["nb201_throughput"] = {"float32": fp32, "tf32": tf32, "spearman_float32_vs_tf32": rho}
    print("NB201 throughput:", report["nb201_throughput"], flush=True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    report["darts_search"] = darts_search_estimate(device, args.search_candidates)
    print("DARTS search:", report["darts_search"], flush=True)
    report["maml"] = maml_steps(device)
    print("MAML:", report["maml"], flush=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    return 0 if report["correctness"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
