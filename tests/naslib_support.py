"""Which NASLib the NASLib tests run against.

The real NASLib (one branch per venv, installed by ``../shared/vendor/naslib/install.sh``)
is used wherever it is installed: ``tox -e naslib-develop`` and ``tox -e naslib-zerocost``
install it and set ``METANTK_NASLIB_BRANCH``, which turns "not installed" from a skip
into a failure. Elsewhere (the plain ``tox -e test``) the stand-in of tests/naslib_standin
takes its place for what it mirrors, and the tests that need the real package are skipped.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

BRANCHES = {  # branch -> the module path of its measure registry
    "develop": "naslib.predictors.utils.pruners.measures",
    "zerocost": "naslib.predictors.pruners.measures",
}
REQUIRED_BRANCH_VAR = "METANTK_NASLIB_BRANCH"
STANDIN = Path(__file__).resolve().parent / "naslib_standin"


def installed_branch() -> str | None:
    """The branch of the real NASLib installed in this environment (found without importing
    it), or None. The stand-in is never on ``sys.path`` when this runs (see conftest)."""
    spec = importlib.util.find_spec("naslib")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    if STANDIN in root.parents:
        return None
    for branch, registry in BRANCHES.items():
        if (root.parent / Path(*registry.split("."))).is_dir():
            return branch
    return None


REAL_BRANCH = installed_branch()


def require_real_naslib(branch: str) -> None:
    """Skip the calling test unless the real NASLib ``branch`` is installed; fail instead
    when the environment says it must be (``METANTK_NASLIB_BRANCH``)."""
    if REAL_BRANCH == branch:
        return
    found = f"the real NASLib {REAL_BRANCH} branch is" if REAL_BRANCH else "no real NASLib is"
    if os.environ.get(REQUIRED_BRANCH_VAR) == branch:
        pytest.fail(f"{REQUIRED_BRANCH_VAR}={branch}, but {found} installed (../shared/vendor/naslib/install.sh)")
    pytest.skip(f"{found} installed here; tox -e naslib-{branch} runs this test against the real package")


def use_standin(layout: str) -> None:
    """Skip a test of the stand-in's ``layout`` where a real NASLib is installed (the real
    package is tested instead, in this environment or the other branch's)."""
    if REAL_BRANCH is not None:
        where = "here" if REAL_BRANCH == layout else f"by tox -e naslib-{layout}"
        pytest.skip(f"the stand-in is not used where the real NASLib is installed; {layout} is tested {where}")
    if os.environ.get(REQUIRED_BRANCH_VAR):
        pytest.fail(f"{REQUIRED_BRANCH_VAR} is set, but no real NASLib is installed")
