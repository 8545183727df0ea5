"""``metantk score`` and ``evaluate --archs`` on a real two-node Ray cluster on this machine:
the scores and accuracies of a local run, the cluster left running, a worker node stopped
mid-run losing nothing, and an unreachable address refused in one line that names it.

The cluster is a head and a worker node of one CPU each, started here with ``ray start``
(``--block``, each in its own process group and with its own ``--temp-dir``) and protected
by a token of its own. ``ray stop`` cannot stop one of two nodes on one machine (it stops
every Ray process here, other people's too), so a node is stopped by killing its process
group with SIGKILL, as when a machine dies; the teardown does the same for whatever is
left, and kills any stray process that names the cluster's temp folder. Should the tests
themselves be killed, each ``ray start`` is killed too, and its node with it.

Ray on Linux advertises a node's routable address even when given ``127.0.0.1`` and binds
its GCS and raylets on all interfaces (it has no option for loopback only); the token
keeps anyone else out.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_support import act_on_metantk, run_metantk

from metantk_plugin.cli import main
from metantk_plugin.fewshot.table import read_fewshot_table
from metantk_plugin.scoring.store import read_scores

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")

RAY = Path(sys.executable).parent / "ray"
REPOSITORY = Path(__file__).resolve().parents[1]
TINY = ["--proxies", "params,flops,synflow", "--channels", "2", "--cells", "1", "--image-size", "8", "--tasks", "1",
        "--ways", "3"]
TINY_TABLE = ["--ways", "3", "--queries", "2", "--meta-iterations", "3", "--batch-size", "16", "--episodes", "6",
              "--image-size", "16", "--channels", "4", "--cells", "1", "--quiet"]
_STARTED = "Ray runtime started"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _end_with_this_process() -> None:
    """In a node's ``ray start``: be killed if the tests die; the node's processes follow it
    (Ray ties them to ``ray start --block``). SIGTERM would make the head drain for 30 s."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


class RayCluster:
    """A head node and worker nodes started with ``ray start --block`` under ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY),
                                                                                        os.environ.get("PYTHONPATH")])),
                            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                            "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        self.nodes: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    def start_head(self) -> None:
        self.head = self._start("head", "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                                "--include-dashboard", "false")

    def driver_environment(self) -> dict[str, str]:
        """What a driver needs to join: the token and the repository on the path."""
        return {k: self.environment[k] for k in ("PYTHONPATH", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                                                 "RAY_USAGE_STATS_ENABLED")}

    def add_worker(self) -> subprocess.Popen:
        node = self._start(f"worker{len(self.workers)}", "--address", self.address)
        self.workers.append(node)
        return node

    def live_workers(self) -> list[subprocess.Popen]:
        return [node for node in self.workers if node.poll() is None]

    def ran_on(self, worker: int, function: str) -> bool:
        """Whether the logs of worker node number ``worker`` name ``function`` (a task it ran)."""
        logs = (self.folder / f"worker{worker}").rglob("*")
        return any(function in path.read_text(errors="replace") for path in logs if path.is_file())

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        with open(log, "wb") as sink:
            node = subprocess.Popen([str(RAY), "start", *args, "--num-cpus", "1", "--object-store-memory", "100000000",
                                     "--temp-dir", str(self.folder / name), "--block"], env=self.environment,
                                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_end_with_this_process)
        self.nodes.append(node)
        deadline = time.monotonic() + 180
        while _STARTED not in log.read_text(errors="replace"):
            if node.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ray start of the {name} node failed: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        return node

    def stop(self, node: subprocess.Popen) -> None:
        """Kill a node's whole process group, as when its machine dies."""
        try:
            os.killpg(node.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node.wait(timeout=30)

    def close(self) -> None:
        for node in self.nodes:
            self.stop(node)
        for pid in self.stray_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stray_processes(self) -> list[int]:
        """Processes that still name this cluster's folder on their command line."""
        marker = str(self.folder).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if marker in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found


@pytest.fixture(scope="module")
def cluster():
    if not sys.platform.startswith("linux"):
        pytest.skip("the cluster's processes are found and stopped the Linux way")
    folder = Path(tempfile.mkdtemp(prefix="metantk-ray-"))  # short: Ray's socket paths live under it
    started = RayCluster(folder)
    try:
        started.start_head()
        yield started
    finally:
        started.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def two_nodes(cluster) -> RayCluster:
    """The cluster with its head and one live worker node."""
    if not cluster.live_workers():
        cluster.add_worker()
    return cluster


def _local_scores(tmp_path: Path, archs: str) -> pd.DataFrame:
    assert main(["score", "--archs", archs, *TINY, "--quiet", "--out", str(tmp_path / "local.h5")]) == 0
    return read_scores(tmp_path / "local.h5")


def test_a_cluster_gives_the_scores_of_a_local_run_and_keeps_running(two_nodes, tmp_path):
    out = tmp_path / "cluster.h5"
    done = run_metantk(["score", "--archs", "sample:12", *TINY, "--quiet", "--executor", "ray", "--ray-address",
                        two_nodes.address, "--out", str(out)], cwd=tmp_path, env=two_nodes.driver_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(read_scores(out), _local_scores(tmp_path, "sample:12"), check_exact=True)
    assert two_nodes.ran_on(len(two_nodes.workers) - 1, "_ray_apply")  # the second node took its share
    assert two_nodes.head.poll() is None and two_nodes.live_workers()  # disconnected from, not shut down


def test_evaluate_on_a_cluster_gives_the_local_table(two_nodes, tmp_path, shared_data):
    command = ["evaluate", "--archs", "sample:2:2", "--data", f"omniglot:{shared_data / 'fewshot' / 'omniglot'}",
               *TINY_TABLE]
    done = run_metantk([*command, "--executor", "ray", "--ray-address", two_nodes.address, "--out",
                        str(tmp_path / "cluster.h5")], cwd=tmp_path, env=two_nodes.driver_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*command, "--out", str(tmp_path / "local.h5")]) == 0
    cluster, local = (read_fewshot_table(tmp_path / name)[0].drop(columns="train_seconds")
                      for name in ("cluster.h5", "local.h5"))
    pd.testing.assert_frame_equal(cluster, local, check_exact=True)


def test_a_worker_node_stopped_mid_run_loses_nothing(two_nodes, tmp_path):
    """Measured: Ray sees the task on the stopped node fail with NODE_DIED and runs it again
    on the head (it retries 3 times), so the run ends normally some seconds later. Were the
    retries to fail too, the run would end in one error line, keeping its finished rows,
    and the same command would resume on the nodes that remain."""
    out = tmp_path / "cluster.h5"
    args = ["score", "--archs", "sample:24", *TINY, "--chunk", "1", "--executor", "ray", "--out", str(out)]
    by_environment = {**two_nodes.driver_environment(), "RAY_ADDRESS": two_nodes.address}
    worker = two_nodes.live_workers()[0]
    status, err = act_on_metantk(args, cwd=tmp_path, wait_for=r"scoring: .*\| *[1-9]\d*/24 ",
                                 action=lambda run: two_nodes.stop(worker), env=by_environment)
    if status != 0:
        assert err.strip().splitlines()[-1].startswith("metantk score: error: Ray could not finish a task"), err
        again = run_metantk(args, cwd=tmp_path, env=by_environment)
        assert again.returncode == 0, again.stderr[-3000:]
    assert worker.poll() is not None and two_nodes.head.poll() is None
    pd.testing.assert_frame_equal(read_scores(out), _local_scores(tmp_path, "sample:24"), check_exact=True)


def test_an_unreachable_address_is_one_line_naming_it(tmp_path, capsys, shared_data):
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    omniglot = f"omniglot:{shared_data / 'fewshot' / 'omniglot'}"
    for command in (["score", "--archs", "sample:2", *TINY], ["evaluate", "--archs", "sample:2", "--data", omniglot]):
        assert main([*command, "--executor", "ray", "--ray-address", address, "--out", str(tmp_path / "t.h5")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"cannot reach the Ray cluster at {address}" in err, err
        assert not (tmp_path / "t.h5").exists()
    assert main(["score", "--archs", "sample:2", *TINY, "--executor", "processes", "--ray-address", address,
                 "--out", str(tmp_path / "t.h5")]) == 2
    assert "is for the ray executor" in capsys.readouterr().err
