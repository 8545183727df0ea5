"""The imports of the last release keep working for one release, with a DeprecationWarning."""

import subprocess
import sys


def test_metantk_plugin_bench_still_imports_and_warns():
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n"
        "    import metantk_plugin.bench\n"
        "except DeprecationWarning as w:\n"
        "    print('warned:', w)\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        "import metantk_plugin.bench.store, metantk_plugin.scoring.store, metantk_plugin.scoring.run\n"
        "from metantk_plugin.bench import ScoreSettings, scoring\n"
        "from metantk_plugin.bench.scoring import score_architectures\n"
        "assert metantk_plugin.bench.store is metantk_plugin.scoring.store\n"
        "assert score_architectures is metantk_plugin.scoring.run.score_architectures\n"
        "assert ScoreSettings is metantk_plugin.scoring.ScoreSettings\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "warned: metantk_plugin.bench is deprecated; import metantk_plugin.scoring instead" in out
    assert out.strip().endswith("ok")
