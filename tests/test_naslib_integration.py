"""MetaNTK inside NASLib, on both branches: against the real NASLib where it is installed
(``tox -e naslib-develop``, ``tox -e naslib-zerocost``), else against the stand-in
``naslib`` of tests/naslib_standin (see naslib_support.py). The stand-in is put on
``sys.path`` only inside :func:`_naslib`; each test sees a fresh measure registry and a
freshly imported integration, which picks its Predictor base anew."""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
import types
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from naslib_support import BRANCHES, REAL_BRANCH, STANDIN, use_standin
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from metantk_plugin.data.omniglot import read_omniglot
from metantk_plugin.data.transforms import prepare_images
from metantk_plugin.integrations.naslib import tasks_from_batch
from metantk_plugin.kernels import DegenerateKernelWarning
from metantk_plugin.proxies import compute_proxy, get_proxy
from metantk_plugin.spaces.nasbench201 import all_architectures, build_network

LAYOUTS = BRANCHES  # layout root (branch) -> the module path of its measure registry
INTEGRATION = "metantk_plugin.integrations.naslib"
ARCH = (2, 2, 3, 4, 3, 2)  # a NASLib op-index tuple


def _owned(name: str, roots) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _drop_modules(roots) -> None:
    """Forget the modules under ``roots``, also as attributes of their kept parent packages
    (``from . import measures`` would otherwise find the old registry there)."""
    for name in list(sys.modules):
        if _owned(name, roots):
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if sys.modules.get(parent) is not None and getattr(sys.modules[parent], child, None) is not None:
                delattr(sys.modules[parent], child)


def _fresh_modules(layout: str | None) -> tuple[str, ...]:
    """What each test imports afresh. The real NASLib takes seconds to import, so only its
    measure registry and the modules bound to it are reloaded (a fresh registry per test)."""
    if layout is not None and layout == REAL_BRANCH:
        registry = LAYOUTS[layout]
        return registry, registry.rsplit(".", 1)[0] + ".predictive", "naslib.predictors.zerocost", INTEGRATION
    return "naslib", "naslib_standin_core", INTEGRATION


@contextlib.contextmanager
def _naslib(layout: str | None):
    """NASLib ``layout`` importable as ``naslib`` (None: ``import naslib`` fails), with a
    freshly imported integration module: the real package where it is installed, else the
    stand-in (put on ``sys.path`` here and removed afterwards)."""
    saved_path = list(sys.path)
    fresh = _fresh_modules(layout)
    kept = {name: sys.modules.pop(name) for name in list(sys.modules) if _owned(name, ("naslib",))} \
        if layout is None else {}
    _drop_modules(fresh)
    try:
        if layout is None:
            sys.modules["naslib"] = None  # makes `import naslib` raise ImportError
        elif layout != REAL_BRANCH:
            use_standin(layout)
            sys.path[:0] = [str(STANDIN / layout), str(STANDIN)]
        env = SimpleNamespace(layout=layout, integration=importlib.import_module(INTEGRATION))
        if layout is not None:
            env.registry = importlib.import_module(LAYOUTS[layout])
            env.predictive = importlib.import_module(LAYOUTS[layout].rsplit(".", 1)[0] + ".predictive")
            env.ZeroCost = importlib.import_module("naslib.predictors.zerocost").ZeroCost
            env.Predictor = importlib.import_module("naslib.predictors.predictor").Predictor
            env.SearchSpace = importlib.import_module("naslib.search_spaces.nasbench201.graph").NasBench201SearchSpace
        yield env
    finally:
        sys.path[:] = saved_path
        _drop_modules(fresh)
        sys.modules.update(kept)


@pytest.fixture(params=sorted(LAYOUTS))
def naslib(request):
    with _naslib(request.param) as env:
        yield env


@pytest.fixture
def one_naslib():
    """The real NASLib installed here (either branch), else the stand-in's Develop layout."""
    with _naslib(REAL_BRANCH or "develop") as env:
        yield env


@pytest.fixture
def no_naslib():
    with _naslib(None) as env:
        yield env


def _graph(env, op_indices=ARCH, *, n_classes=10, in_channels=3, parse=True, seed=0):
    """A NASLib NB201 graph built the way NASLib's zero-cost runner builds one."""
    torch.manual_seed(seed)
    graph = env.SearchSpace(n_classes=n_classes, in_channels=in_channels).clone()
    graph.set_spec(op_indices)
    if parse:
        graph.parse()
    return graph


def _loader(n=40, classes=10, size=8, channels=3, seed=0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(n, channels, size, size, generator=gen), torch.arange(n) % classes)
    return DataLoader(data, batch_size=n)


def test_the_standin_leaves_no_trace():
    use_standin("zerocost")
    path = list(sys.path)
    with _naslib("zerocost") as env:
        assert env.integration.MetaNTKPredictor.__mro__[1] is env.Predictor
        assert "naslib" in sys.modules
    assert sys.path == path
    assert not [m for m in sys.modules if m.split(".")[0] in ("naslib", "naslib_standin_core")]
    assert INTEGRATION not in sys.modules


# ------------------------------------------------------------------ registration
def test_register_fills_the_registry_of_the_branch(naslib):
    names = naslib.integration.register()
    assert names == ["metantk", "metantk_maml", "metantk_anil"]
    assert set(names) <= set(naslib.registry.available_measures)
    assert {"grad_norm", "jacov"} <= set(naslib.registry.available_measures)  # NASLib's own are still there
    other = next(path for layout, path in LAYOUTS.items() if layout != naslib.layout)
    with pytest.raises(ModuleNotFoundError):  # the layouts really differ: only one path exists
        importlib.import_module(other)


def test_register_twice_is_harmless_although_naslib_refuses_duplicates(naslib):
    first = naslib.integration.register(ways=4)
    count = len(naslib.registry.available_measures)
    assert naslib.integration.register(ways=4) == first
    assert len(naslib.registry.available_measures) == count
    with pytest.raises(KeyError, match="Duplicated measure! metantk"):  # what a naive second registration meets
        naslib.registry.measure("metantk")(lambda net, inputs, targets, **kw: [torch.zeros(())])


def test_register_refuses_other_settings_and_foreign_names(one_naslib):
    nl = one_naslib.integration
    nl.register()
    with pytest.raises(ValueError, match="already registered with .*another prefix"):
        nl.register(ways=3)
    assert nl.register(prefix="metantk3w", ways=3) == ["metantk3w", "metantk3w_maml", "metantk3w_anil"]
    one_naslib.registry.measure("mine_anil")(lambda net, inputs, targets, **kw: [torch.zeros(())])
    with pytest.raises(ValueError, match="'mine_anil' that metantk_plugin did not register"):
        nl.register(prefix="mine")
    assert "mine" not in one_naslib.registry.available_measures  # a refusal registers nothing
    for bad, message in (({"prefix": "meta-ntk"}, "prefix must be an identifier"), ({"shots": 0}, "shots must be"),
                         ({"reg": -1.0}, "reg must be"), ({"inner_lr_time": "1"}, "inner_lr_time must be a number"),
                         ({"backend": "fast"}, "backend")):
        with pytest.raises(ValueError, match=message):
            nl.register(**bad)


def test_register_without_naslib_says_how_to_get_it(no_naslib):
    with pytest.raises(ImportError, match="NASLib is not importable.*source checkout"):
        no_naslib.integration.register()


# ------------------------------------------------------------------ the measure inside NASLib
def test_measure_returns_one_tensor_that_naslib_sums_to_the_score(naslib):
    naslib.integration.register()
    graph, loader = _graph(naslib), _loader()
    inputs, targets = next(iter(loader))
    graph.get_prunable_copy = types.MethodType(naslib.predictive.copynet, graph)  # as find_measures attaches it
    raw = naslib.registry.calc_measure("metantk", graph, "cpu", inputs, targets, loss_fn=graph.get_loss_fn(),
                                       split_data=1)
    assert isinstance(raw, list) and len(raw) == 1
    assert torch.is_tensor(raw[0]) and raw[0].dim() == 0 and raw[0].dtype == torch.float64
    total = naslib.predictive.find_measures(graph, loader, ("random", 1, 10), "cpu", graph.get_loss_fn(),
                                            measure_names=["metantk"], measures_arr={"metantk": raw})
    assert total == float(raw[0])
    score = naslib.ZeroCost("metantk").query(graph, loader)  # NASLib's own path: copy, batch, measure, sum_arr
    assert score == pytest.approx(total, rel=1e-6)
    assert math.isfinite(score) and score <= 0.0  # -log κ with κ >= 1: higher is better


def test_measures_sharing_one_batch_in_one_call(one_naslib):
    one_naslib.integration.register()
    values = one_naslib.predictive.find_measures_arrays(_graph(one_naslib), _loader(), ("random", 1, 10), "cpu",
                                                     measure_names=["jacov", "metantk", "grad_norm"])
    assert np.isfinite(values["jacov"])  # jacov made the shared batch require grad before metantk ran
    assert values["metantk"][0].item() <= 0.0 and len(values["grad_norm"]) > 1


def test_zerocost_and_predictor_agree_for_each_variant(one_naslib):
    one_naslib.integration.register()
    graph, loader = _graph(one_naslib), _loader()
    scores = {}
    for name in ("metantk", "metantk_maml", "metantk_anil"):
        scores[name] = one_naslib.ZeroCost(name).query(graph, loader)
        predicted = one_naslib.integration.MetaNTKPredictor(name).query(graph, loader)
        assert predicted == pytest.approx(scores[name], rel=1e-6, abs=1e-9)
    assert scores["metantk"] == scores["metantk_maml"]
    assert scores["metantk_anil"] != scores["metantk"]


def _kernel_layers_in_official_order(graph) -> list[nn.Module]:
    """The Conv2d/Linear layers of an NB201 graph in :class:`NB201Network`'s order (cell
    edges sorted by target node, then source, as in the official string): the stand-in
    keeps its macro edges in ``macro_edges``, the real NASLib graph on the networkx edges
    (i, i + 1), a cell being a graph whose edges hold the operations."""
    if hasattr(graph, "macro_edges"):
        macro = list(graph.macro_edges.values())
        cells = {id(op): {edge: op.edge_ops[edge] for edge in op.edge_ops} for op in macro if hasattr(op, "edge_ops")}
    else:
        macro = [graph.edges[i, i + 1]["op"] for i in range(1, graph.number_of_nodes())]
        cells = {id(op): {edge: op.edges[edge]["op"] for edge in op.edges} for op in macro if hasattr(op, "edges")}
    layers = []
    for op in macro:
        edge_ops = cells.get(id(op), {})
        parts = [edge_ops[edge] for edge in sorted(edge_ops, key=lambda edge: edge[::-1])] if edge_ops else [op]
        layers += [m for part in parts for m in part.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return layers


def test_naslib_score_is_the_core_proxy_on_the_official_network(one_naslib):
    one_naslib.integration.register()
    graph, loader = _graph(one_naslib), _loader()
    network = build_network(one_naslib.integration.op_indices_to_arch_str(ARCH), norm="group")
    targets = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    sources = _kernel_layers_in_official_order(graph)
    assert [t.weight.shape for t in targets] == [s.weight.shape for s in sources]
    with torch.no_grad():
        for target, source in zip(targets, sources):
            target.load_state_dict(source.state_dict())
    tasks = tasks_from_batch(*next(iter(loader)))  # the defaults: 3 tasks, 5-way, 1-shot, 1 query, seed 0
    core = get_proxy("metantk").oriented(compute_proxy("metantk", network, tasks))
    assert one_naslib.ZeroCost("metantk").query(graph, loader) == pytest.approx(core, rel=1e-5)


def test_a_degenerate_kernel_ranks_last(one_naslib):
    one_naslib.integration.register()
    loader = _loader()
    with pytest.warns(DegenerateKernelWarning, match="condition number set to inf"):
        cut_off = one_naslib.ZeroCost("metantk").query(_graph(one_naslib, (1, 1, 1, 1, 1, 1)), loader)  # all 'none'
    assert cut_off == -1e8 == one_naslib.integration.NON_FINITE_SCORE
    assert one_naslib.ZeroCost("metantk").query(_graph(one_naslib, ARCH), loader) > cut_off


def test_registered_settings_reach_the_measure(one_naslib):
    one_naslib.integration.register(prefix="tight", ways=10, shots=3, queries=1, n_tasks=1)
    with pytest.raises(ValueError, match=r"needs 10 classes with 4 unused samples"):
        one_naslib.ZeroCost("tight").query(_graph(one_naslib), _loader(n=30))  # 3 samples per class: too few
    assert math.isfinite(one_naslib.ZeroCost("tight").query(_graph(one_naslib), _loader(n=40)))  # 4 per class


# ------------------------------------------------------------------ NASLib's own behaviour (the stand-in mirrors it)
@pytest.mark.parametrize(
    ("bare", "message"),
    [
        (1.5, "object of type 'float' has no len()"),
        (np.float64(1.5), "object of type 'numpy.float64' has no len()"),
        (torch.tensor(1.5), "len() of a 0-d tensor"),
        ([1.5], "must be Tensor, not float"),
    ],
)
def test_a_measure_that_does_not_return_a_tensor_list_breaks_find_measures(naslib, bare, message):
    nl = naslib.integration

    def unwrapped_metantk(net, inputs, targets, loss_fn=None, split_data=1):
        score = nl._metantk_measure(net, inputs, targets, algorithm="maml", **vars(nl.MeasureSettings()))
        assert score[0].item() <= 0.0  # the real score was computed; only the return shape is wrong
        return bare

    naslib.registry.measure("metantk_bare")(unwrapped_metantk)
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        naslib.ZeroCost("metantk_bare").query(_graph(naslib), _loader())


def test_naslib_special_cases_the_same_float_measures(one_naslib):
    score = one_naslib.ZeroCost("jacov").query(_graph(one_naslib), _loader())  # jacov returns a float, by name
    assert isinstance(score, float)
    assert one_naslib.ZeroCost("grad_norm").query(_graph(one_naslib), _loader()) > 0  # a per-layer list, summed


def test_naslib_graph_has_the_official_parameter_count(one_naslib, shared_data):
    table = pd.read_csv(shared_data / "nasbench201" / "nb201_accuracies.csv.gz", usecols=["arch", "params_M"])
    params_m = dict(zip(table["arch"], table["params_M"]))
    for arch in all_architectures()[::3125]:
        graph = _graph(one_naslib, arch.to_naslib())
        params = sum(p.numel() for p in graph.parameters())
        assert params / 1e6 == pytest.approx(params_m[arch.to_string()], abs=5e-7)
        assert graph.get_hash() == arch.to_naslib()
        assert one_naslib.integration.op_indices_to_arch_str(graph.get_hash()) == arch.to_string()


def test_naslib_graph_follows_the_set_spec_rules(one_naslib):
    graph = one_naslib.SearchSpace()
    with pytest.raises(ValueError, match="Unknown class as op"):  # edges still hold lists of candidate operations
        graph(torch.zeros(1, 3, 8, 8))
    graph.set_spec(ARCH)
    assert sum(p.numel() for p in graph.parameters()) == 0  # modules are registered by parse()
    refusal = (AssertionError, "already been assigned") if one_naslib.layout == "develop" else (TypeError, "iterable")
    with pytest.raises(refusal[0], match=refusal[1]):  # the zerocost branch has no assertion, just fails
        graph.set_spec(ARCH)
    graph.parse()
    assert graph(torch.zeros(2, 3, 8, 8)).shape == (2, 10)
    assert graph.forward_before_global_avg_pool(torch.zeros(2, 3, 8, 8)).shape == (2, 64, 2, 2)


# ------------------------------------------------------------------ the predictor
def test_predictor_subclasses_naslib_predictor_when_naslib_imports(naslib):
    predictor = naslib.integration.MetaNTKPredictor("metantk_anil", ways=4, seed=3)
    assert isinstance(predictor, naslib.Predictor)
    assert predictor.method_type == "metantk_anil" and predictor.settings.ways == 4
    predictor.set_ss_type("nasbench201")
    predictor.pre_process()
    predictor.fit([], [])
    assert predictor.ss_type == "nasbench201"
    assert predictor.get_data_reqs()["requires_partial_lc"] is False


def test_predictor_scores_lists_and_leaves_graphs_unchanged(one_naslib):
    predictor = one_naslib.integration.MetaNTKPredictor()
    graphs = [_graph(one_naslib, ARCH), _graph(one_naslib, (0, 4, 3, 2, 0, 3), seed=1)]
    before = [{k: v.clone() for k, v in g.state_dict().items()} for g in graphs]
    predictor.train_loader = _loader()  # what NASLib's ZeroCostPredictorEvaluator sets
    scores = predictor.query(graphs)
    assert isinstance(scores, np.ndarray) and scores.shape == (2,) and np.isfinite(scores).all()
    assert scores[0] == predictor.query(graphs[0], _loader())  # seeded: the same score again
    for graph, state in zip(graphs, before):
        assert any(isinstance(m, nn.BatchNorm2d) for m in graph.modules())
        assert graph.training
        assert all(torch.equal(state[k], v) for k, v in graph.state_dict().items())


def test_predictor_stands_alone_without_naslib(no_naslib):
    nl = no_naslib.integration
    assert nl.MetaNTKPredictor.__mro__[1] is nl._StandalonePredictor
    network = build_network("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
                            C=8, N=1, norm="batch", seed=0)  # returns (features, logits); BatchNorm as official
    predictor = nl.MetaNTKPredictor()
    score = predictor.query(network, _loader())
    assert math.isfinite(score) and score <= 0.0
    assert predictor.get_data_reqs()["unlabeled"] is False
    predictor.set_ss_type("nasbench201")
    assert predictor.ss_type == "nasbench201"


def test_predictor_errors_name_the_problem(one_naslib):
    nl = one_naslib.integration
    predictor = nl.MetaNTKPredictor()
    with pytest.raises(ValueError, match="needs labelled batches"):
        predictor.query(_graph(one_naslib))
    with pytest.raises(ValueError, match=r"set_spec\(op_indices\)"):
        predictor.query(one_naslib.SearchSpace(), _loader())
    with pytest.raises(ValueError, match=r"graph.parse\(\)"):
        predictor.query(_graph(one_naslib, parse=False), _loader())
    with pytest.raises(ValueError, match=r"yielded 1 batches, but num_imgs_or_batches=2"):
        nl.MetaNTKPredictor(num_imgs_or_batches=2).query(_graph(one_naslib), _loader())
    with pytest.raises(ValueError, match=r"\(inputs, targets\) tensor pairs"):
        predictor.query(_graph(one_naslib), [{"x": torch.zeros(2)}])
    with pytest.raises(TypeError, match="graph must be a NASLib graph"):
        predictor.query("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", _loader())
    with pytest.raises(ValueError, match="method_type must be one of metantk, metantk_maml, metantk_anil"):
        nl.MetaNTKPredictor("synflow")
    with pytest.raises(TypeError, match="unexpected keyword argument 'wayz'"):
        nl.MetaNTKPredictor(wayz=5)


def test_real_omniglot_batch_through_zerocost(one_naslib, shared_data):
    """A real labelled batch, as a NASLib dataloader would give it: 12 Omniglot characters
    x 4 drawings, 16 x 16 grey, inverted and standardised, shuffled."""
    data = read_omniglot(shared_data / "fewshot" / "omniglot" / "images_background_small1.zip")
    keep = np.concatenate([np.flatnonzero(data.labels == c)[:4] for c in range(0, 120, 10)])
    images = 1.0 - prepare_images(torch.from_numpy(data.images[keep]), image_size=16).float() / 255.0
    images = (images - images.mean()) / images.std()
    order = torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(images[order], torch.from_numpy(data.labels[keep])[order]), batch_size=48)
    one_naslib.integration.register(n_tasks=2, shots=2, queries=2)
    scores = [one_naslib.ZeroCost("metantk").query(_graph(one_naslib, arch, in_channels=1), loader)
              for arch in (ARCH, (0, 4, 3, 2, 0, 3))]
    assert all(math.isfinite(s) and s < 0 for s in scores)
    assert scores[0] != scores[1]
