"""``metantk --help`` and ``metantk COMMAND --help`` are quick: the parsers import neither
torch nor the proxies nor h5py, pandas or matplotlib, and the names they offer (written out
in ``metantk_plugin.commands._vocabulary``) are those of the modules that use them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from metantk_plugin.commands import _vocabulary as vocabulary

_HEAVY = ("torch", "h5py", "pandas", "matplotlib", "scipy", "metantk_plugin.proxies", "metantk_plugin.scoring")
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
    from metantk_plugin.proxies import available_proxies, get_proxy, resolve_proxy
    from metantk_plugin.scoring import architectures, executors, settings
    from metantk_plugin.search.pruning import INDICATORS
    from metantk_plugin.search.spaces import SEARCH_SPACES
    from metantk_plugin.spaces import nasbench201
    from metantk_plugin.spaces.nasbench201.ground_truth import CSV_ENV_VAR

    assert vocabulary.ARCH_SPACES == architectures.ARCH_SPACES
    assert vocabulary.SPACES == settings.SPACES
    assert vocabulary.SEARCH_SPACES == tuple(sorted(SEARCH_SPACES))
    assert vocabulary.INDICATORS == INDICATORS
    assert vocabulary.EXECUTORS == executors.EXECUTORS
    assert vocabulary.DTYPES == settings.DTYPES
    assert vocabulary.NETWORK_NORMS == settings.NETWORK_NORMS
    assert vocabulary.KERNEL_PROXIES == settings.KERNEL_PROXIES
    builtin = [n for n in available_proxies() if get_proxy(n).function.__module__.startswith("metantk_plugin.")]
    assert list(vocabulary.BUILTIN_PROXIES) == builtin
    assert vocabulary.POPULATION_INPUTS == {n: resolve_proxy(n).inputs for n in available_proxies("population")}
    assert (vocabulary.SPLITS, vocabulary.EPOCHS) == (nasbench201.SPLITS, nasbench201.EPOCHS)
    assert vocabulary.CSV_ENV_VAR == CSV_ENV_VAR


def test_score_help_names_the_installed_plugins(monkeypatch, capsys):
    from metantk_plugin.cli import main
    from metantk_plugin.commands import score

    monkeypatch.setattr(score, "proxy_plugins", lambda: ["my_proxies"])
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "zen, my_proxies (plugin)" in capsys.readouterr().out
