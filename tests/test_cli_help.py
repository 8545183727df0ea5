"""``metantk --help`` and ``metantk COMMAND --help`` are quick: the parsers import neither
torch nor numpy nor the proxies nor h5py, pandas or matplotlib; they import the settings
dataclasses and the names they offer from their light defining modules, and the few names
whose modules are heavy (written out in ``metantk_plugin.commands._vocabulary``) are those of
the modules that use them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from metantk_plugin.commands import _vocabulary as vocabulary

_HEAVY = ("torch", "numpy", "h5py", "pandas", "matplotlib", "scipy", "metantk_plugin.proxies",
          "metantk_plugin.scoring.run", "metantk_plugin.scoring.store", "metantk_plugin.fewshot.pipeline",
          "metantk_plugin.search.pruning")
_IMPORTED = (
    "import json, sys\n"
    "from metantk_plugin.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as done:\n"
    "    assert done.code == 0, done.code\n"
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
)


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["search", "--help"], ["evaluate", "--help"],
                                  ["correlate", "--help"]])
def test_help_imports_nothing_heavy(argv):
    done = subprocess.run([sys.executable, "-c", _IMPORTED, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: metantk" in done.stdout
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    heavy = [m for m in modules if any(m == h or m.startswith(f"{h}.") for h in _HEAVY)]
    assert heavy == [], f"metantk {' '.join(argv)} imported {heavy}"


def test_the_names_the_parsers_offer_are_those_of_the_package():
    from metantk_plugin.fewshot import maml
    from metantk_plugin.proxies import available_proxies, get_proxy, metantk, resolve_proxy
    from metantk_plugin.scoring import architectures

    assert vocabulary.ARCH_SPACES == architectures.ARCH_SPACES
    assert vocabulary.METANTK_ALGORITHMS == metantk.METANTK_ALGORITHMS
    assert vocabulary.STRATEGIES == maml.STRATEGIES
    assert vocabulary.QUERY_PRECISIONS == maml.QUERY_PRECISIONS
    builtin = [n for n in available_proxies() if get_proxy(n).function.__module__.startswith("metantk_plugin.")]
    assert list(vocabulary.BUILTIN_PROXIES) == builtin
    assert vocabulary.POPULATION_INPUTS == {n: resolve_proxy(n).inputs for n in available_proxies("population")}


def test_the_parsers_offer_the_names_of_the_defining_modules():
    from metantk_plugin.cli import build_parser
    from metantk_plugin.fewshot.settings import PROTOCOLS
    from metantk_plugin.scoring.executors import EXECUTORS
    from metantk_plugin.scoring.settings import DTYPES, KERNEL_PROXIES, NETWORK_NORMS, SPACES
    from metantk_plugin.search.settings import INDICATORS
    from metantk_plugin.search.spaces import SEARCH_SPACES
    from metantk_plugin.spaces.nasbench201 import EPOCHS, SPLITS
    from metantk_plugin.spaces.nasbench201.ground_truth import CSV_ENV_VAR

    commands = build_parser()._subparsers._group_actions[0].choices
    choices = {(name, action.dest): tuple(action.choices) for name, parser in commands.items()
               for action in parser._actions if action.choices is not None}
    assert choices == {
        ("score", "space"): SPACES, ("score", "dtype"): DTYPES, ("score", "executor"): EXECUTORS,
        ("search", "space"): tuple(sorted(SEARCH_SPACES)), ("search", "indicator"): INDICATORS,
        ("search", "algorithm"): vocabulary.METANTK_ALGORITHMS, ("search", "executor"): EXECUTORS,
        ("evaluate", "space"): vocabulary.ARCH_SPACES, ("evaluate", "protocol"): PROTOCOLS,
        ("evaluate", "strategy"): vocabulary.STRATEGIES, ("evaluate", "query_precision"): vocabulary.QUERY_PRECISIONS,
        ("evaluate", "executor"): EXECUTORS,
        ("correlate", "metric"): SPLITS, ("correlate", "epochs"): EPOCHS,
    }
    assert f"${CSV_ENV_VAR}" in commands["correlate"].epilog
    assert f"kernel proxies ({', '.join(KERNEL_PROXIES)})" in commands["score"].epilog
    norm = next(action for action in commands["score"]._actions if action.dest == "norms")
    assert f"which network a proxy sees: {', '.join(NETWORK_NORMS)}" in norm.help


def test_score_help_names_the_installed_plugins(monkeypatch, capsys):
    from metantk_plugin.cli import main
    from metantk_plugin.commands import score

    monkeypatch.setattr(score, "proxy_plugins", lambda: ["my_proxies"])
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "zico, my_proxies (plugin)" in capsys.readouterr().out
