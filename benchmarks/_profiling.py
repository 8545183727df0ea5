"""Where a run spends its time: self CPU seconds of every op under ``torch.profiler``,
attributed to the package's ``record_function`` ranges (``PROFILE_PREFIX``) and, inside the
ranges that ask for it, to a layer kind (``conv 3x3``, ``depthwise conv 3x3``, ...) or op
family. A convolution's kind is read from the shapes it ran with: under ``vmap`` and in
double-backward passes weight gradients run as grouped or depthwise convolutions, or as
convolutions whose kernel is a feature map (``conv 7x7``), and are named so. Profiling
inflates small ops, so shares, not totals, are the reading."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch.profiler import ProfilerActivity, profile

from metantk_plugin.kernels.ntk import PROFILE_PREFIX

_CONV_OPS = ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::convolution_backward",
             "aten::thnn_conv2d", "aten::_convolution", "aten::conv2d", "aten::convolution")


def _conv_kind(event) -> str:
    """Layer kind of a convolution op from its recorded shapes (weight [O, I/g, kh, kw])."""
    shapes = event.input_shapes
    x, w = (shapes[1], shapes[2]) if event.name == "aten::convolution_backward" else (shapes[0], shapes[1])
    if len(w) != 4 or len(x) != 4:
        return "conv"
    size = f"{w[2]}x{w[3]}"
    if w[1] == x[1]:
        return f"conv {size}"
    return f"depthwise conv {size}" if w[1] == 1 else f"grouped conv {size}"


def _op_category(event) -> str:
    """What an op is: a conv kind, or a family of ops."""
    conv = event
    while conv is not None and conv.name not in _CONV_OPS:
        conv = conv.cpu_parent
    if conv is not None and conv.input_shapes:
        return _conv_kind(conv)
    name = event.name.lower()
    for word, category in (("norm", "normalisation"), ("relu", "activation"), ("threshold", "activation"),
                           ("clamp", "activation"), ("pool", "pooling"), ("mm", "linear"), ("linear", "linear")):
        if word in name:
            return category
    return "elementwise, copies and the rest"


def time_breakdown(run: Callable[[], object], *, outside: str, detailed: Iterable[str]) -> list[dict]:
    """Rows ``{"phase", "layer", "seconds", "share"}`` of a call of ``run`` under the profiler
    (the second of two), largest first: ``phase`` is the innermost package range around an op
    (``outside`` for ops in none), ``layer`` its kind or family inside the ``detailed`` phases,
    else ``""``."""
    detailed = set(detailed)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True):  # the profiler's first use is slow
        run()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    seconds: dict[tuple[str, str], float] = {}
    for event in prof.events():
        if event.name.startswith(PROFILE_PREFIX):
            continue
        phase, parent = outside, event.cpu_parent
        while parent is not None and not parent.name.startswith(PROFILE_PREFIX):
            parent = parent.cpu_parent
        if parent is not None:
            phase = parent.name[len(PROFILE_PREFIX):]
        detail = _op_category(event) if phase in detailed else ""
        seconds[phase, detail] = seconds.get((phase, detail), 0.0) + event.self_cpu_time_total / 1e6
    total = sum(seconds.values())
    rows = [{"phase": phase, "layer": detail, "seconds": s, "share": s / total}
            for (phase, detail), s in seconds.items()]
    return sorted(rows, key=lambda r: -r["seconds"])


def print_breakdown(title: str, rows: list[dict]) -> None:
    print(f"where {title}'s time goes (self CPU time under torch.profiler, one run; rows under 1 % left out):")
    for r in rows:
        if r["share"] >= 0.01:
            label = r["phase"] + (f" / {r['layer']}" if r["layer"] else "")
            print(f"  {label:62s} {r['seconds']:7.3f} s {100 * r['share']:5.1f} %")
