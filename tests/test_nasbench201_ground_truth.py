"""GroundTruth over its four sources. The shared CSV is read in place; the .pth, NATS-Bench
and NNI formats are written small by the tests, in their real formats: the .pth and NATS
files with the real nas_201_api / nats_bench result classes and savers, the NNI database
with the exact schema peewee creates for NNI's models."""

from __future__ import annotations

import json
import sqlite3
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from metantk_plugin.spaces.nasbench201 import GroundTruth, NB201Arch, all_architectures
from metantk_plugin.spaces.nasbench201.ground_truth import CSV_ENV_VAR

# (NAS-Bench-201 run, evaluation set) -> our (dataset, split) whose value it is
_EVALS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}


# ---------------------------------------------------------------- shared CSV
def test_shared_table_gives_the_published_optima(shared_data):
    truth = GroundTruth.from_csv(shared_data / "nasbench201" / "nb201_accuracies.csv.gz")
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert truth.accuracy(best) == pytest.approx(94.3733, abs=1e-4)
    assert truth.accuracy(6111, "cifar10", "valid") == pytest.approx(91.6067, abs=1e-4)
    assert truth.accuracy(9930, "cifar100") == pytest.approx(73.5133, abs=1e-4)
    assert truth.accuracy(NB201Arch.from_index(857).to_nni(), "ImageNet16-120") == pytest.approx(47.3111, abs=1e-4)
    c10 = truth.accuracies(dataset="cifar10")
    assert c10.shape == (15625,) and c10.idxmax() == 6111 and c10.name == "cifar10_test_200ep"
    assert truth.accuracies(None, "cifar100", "test", 12).max() == pytest.approx(61.18)
    frame = truth.table([1, 0])
    assert list(frame.index) == [1, 0] and frame.loc[1, "arch"] == all_architectures()[1].to_string()
    assert len(truth.metrics) == 10 and "cifar100_valid_200ep" not in frame.columns


def test_shared_table_refuses_combinations_it_does_not_hold(shared_data):
    truth = GroundTruth.from_csv(shared_data / "nasbench201" / "nb201_accuracies.csv.gz")
    with pytest.raises(ValueError, match="no cifar100 valid accuracy after 200 epochs; it has: cifar10_valid_200ep"):
        truth.accuracy(1, "cifar100", "valid", 200)
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        truth.accuracy(1, "svhn")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        truth.accuracy(1, split="val")
    with pytest.raises(ValueError, match="epochs=90"):
        truth.accuracy(1, epochs=90)
    with pytest.raises(ValueError, match="out of range"):
        truth.accuracy(15625)


def test_default_csv_comes_from_the_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "mine.csv"
    _small_csv(path)
    monkeypatch.setenv(CSV_ENV_VAR, str(path))
    assert GroundTruth.from_csv().accuracy(2) == 71.5
    assert GroundTruth.open().description.endswith("mine.csv")
    monkeypatch.setenv(CSV_ENV_VAR, str(tmp_path / "absent.csv.gz"))
    with pytest.raises(FileNotFoundError, match=CSV_ENV_VAR):
        GroundTruth.from_csv()


def _small_csv(path, arch_of_2=None):
    archs = all_architectures()
    pd.DataFrame({
        "index": [2, 7],
        "arch": [arch_of_2 or archs[2].to_string(), archs[7].to_string()],
        "cifar10_test": [71.5, 80.25],
        "cifar100_valid_12ep": [10.0, 20.0],
    }).to_csv(path, index=False)


def test_csv_in_the_shared_layout_with_a_subset_of_rows_and_columns(tmp_path):
    path = tmp_path / "part.csv"
    _small_csv(path)
    truth = GroundTruth.open(path)
    assert [m.name for m in truth.metrics] == ["cifar10_test_200ep", "cifar100_valid_12ep"]
    assert truth.accuracy(7, "cifar100", "valid", "12") == 20.0
    values = truth.accuracies([7, 3, 2])
    assert values.loc[7] == 80.25 and np.isnan(values.loc[3]) and values.loc[2] == 71.5
    with pytest.raises(ValueError, match="has no cifar10 test accuracy after 200 epochs for architecture 3"):
        truth.accuracy(3)


def test_csv_whose_arch_strings_disagree_with_the_official_index_is_refused(tmp_path):
    path = tmp_path / "wrong.csv"
    _small_csv(path, arch_of_2=all_architectures()[3].to_string())
    with pytest.raises(ValueError, match="row with index 2 has arch"):
        GroundTruth.from_csv(path)
    (tmp_path / "noindex.csv").write_text("arch,cifar10_test\nx,1\n")
    with pytest.raises(ValueError, match="no 'index' column"):
        GroundTruth.from_csv(tmp_path / "noindex.csv")
    (tmp_path / "empty.csv").write_text("index,arch,cifar10_test\n")
    with pytest.raises(ValueError, match="has no rows"):
        GroundTruth.from_csv(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="cannot tell the format"):
        GroundTruth.open(tmp_path / "results.txt")


# ---------------------------------------------------------------- NAS-Bench-201 .pth / NATS-Bench
def _trial_accuracies(index: int, run: str, epochs: int, seed: int) -> dict:
    """Deterministic made-up accuracy per evaluation set for one trial."""
    base = 10 + index % 50 + 5 * list(_EVALS).index(run) + (0.5 if epochs == 200 else 0.0)
    return {name: base + k + seed / 1000 for k, name in enumerate(_EVALS[run])}


def _arch_results(api, index: int, epochs: int, runs, seeds=(777, 888)) -> dict:
    """``ArchResults.state_dict()`` built with the API's own result classes."""
    arch_str = all_architectures()[index].to_string()
    results = api.ArchResults(index, arch_str)
    for run in runs:
        for seed in seeds:
            accs = _trial_accuracies(index, run, epochs, seed)
            trial = api.ResultsCount(
                run, None, {e: 50.0 for e in range(epochs)}, {e: 1.0 for e in range(epochs)}, 0.1, 10.0,
                {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": arch_str, "class_num": 10},
                seed, epochs, [0.01],
            )
            keys = [f"{name}@{e}" for name in accs for e in range(epochs)]
            trial.update_eval(
                {k: accs[k.split("@")[0]] for k in keys}, {k: 0.5 for k in keys}, {k: 0.1 for k in keys}
            )
            results.update(run, seed, trial)
    return results.state_dict()


def _expected(index: int, dataset: str, split: str, epochs: int, seeds=(777, 888)) -> float:
    run, name = {
        ("cifar10", "test"): ("cifar10", "ori-test"),
        ("cifar10", "valid"): ("cifar10-valid", "x-valid"),
        ("cifar100", "test"): ("cifar100", "x-test"),
        ("cifar100", "valid"): ("cifar100", "x-valid"),
        ("imagenet16-120", "test"): ("ImageNet16-120", "x-test"),
        ("imagenet16-120", "valid"): ("ImageNet16-120", "x-valid"),
    }[(dataset, split)]
    return float(np.mean([_trial_accuracies(index, run, epochs, s)[name] for s in seeds]))


_EVALUATED = (1, 42, 15624)
_SOME_METRICS = [("cifar10", "test"), ("cifar10", "valid"), ("cifar100", "valid"), ("imagenet16-120", "test")]


@pytest.fixture
def nas_201_pth(tmp_path):
    api = pytest.importorskip("nas_201_api")
    path = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
    torch.save({
        "meta_archs": [a.to_string() for a in all_architectures()],
        # v1_0 layout: 'less' (12 epochs) holds cifar10-valid only, 'full' (200 epochs) all four runs
        "arch2infos": {i: {"less": _arch_results(api, i, 12, ["cifar10-valid"]),
                           "full": _arch_results(api, i, 200, list(_EVALS))} for i in _EVALUATED},
        "evaluated_indexes": list(_EVALUATED),
    }, path)
    return path


def test_nas_bench_201_pth_through_nas_201_api(nas_201_pth):
    truth = GroundTruth.open(nas_201_pth)
    for dataset, split in _SOME_METRICS:
        assert truth.accuracy(42, dataset, split) == pytest.approx(_expected(42, dataset, split, 200))
    assert truth.accuracy(1, "cifar10", "valid", 12) == pytest.approx(_expected(1, "cifar10", "valid", 12))
    with pytest.raises(ValueError, match="no cifar100 test accuracy after 12 epochs for architecture 1"):
        truth.accuracy(1, "cifar100", "test", 12)  # v1_0 trained only cifar10-valid for 12 epochs
    with pytest.raises(ValueError, match="for architecture 2"):
        truth.accuracy(2)  # not evaluated in this file
    series = truth.accuracies([15624, 2], "cifar100", "test")
    assert series.loc[15624] == pytest.approx(_expected(15624, "cifar100", "test", 200)) and np.isnan(series.loc[2])


def test_nas_bench_201_file_with_other_architecture_order_is_refused(tmp_path):
    pytest.importorskip("nas_201_api")
    path = tmp_path / "shuffled.pth"
    archs = [a.to_string() for a in all_architectures()]
    archs[0], archs[1] = archs[1], archs[0]
    torch.save({"meta_archs": archs, "arch2infos": {}, "evaluated_indexes": []}, path)
    with pytest.raises(ValueError, match="architecture 0 is"):
        GroundTruth.from_nas_bench_201(path)
    torch.save({"meta_archs": archs}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a NAS-Bench-201 benchmark file"):
        GroundTruth.from_nas_bench_201(tmp_path / "bad.pth")


def _nats_infos(nats, index):
    return {"12": _arch_results(nats, index, 12, list(_EVALS)), "200": _arch_results(nats, index, 200, list(_EVALS))}


@pytest.mark.parametrize("fast_mode", [True, False])
def test_nats_bench_file_and_fast_mode_folder(tmp_path, fast_mode):
    nats = pytest.importorskip("nats_bench")
    meta_archs = [a.to_string() for a in all_architectures()]
    if fast_mode:
        path = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
        path.mkdir()
        nats.pickle_save({"meta_archs": meta_archs}, str(path / "meta.pickle"))
        for i in _EVALUATED:
            nats.pickle_save(_nats_infos(nats, i), str(path / f"{i:06d}.pickle"))
    else:
        path = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
        nats.pickle_save(
            {"meta_archs": meta_archs, "arch2infos": {i: _nats_infos(nats, i) for i in _EVALUATED},
             "evaluated_indexes": list(_EVALUATED)},
            str(tmp_path / "NATS-tss-v1_0-3ffb9.pickle"),
        )
    truth = GroundTruth.open(path)
    assert ("folder" in truth.description) == fast_mode
    for epochs in (12, 200):
        assert truth.accuracy(15624, "imagenet16-120", "valid", epochs) == pytest.approx(
            _expected(15624, "imagenet16-120", "valid", epochs))
    frame = truth.table([42, 3])
    assert frame.loc[42, "cifar10_test_12ep"] == pytest.approx(_expected(42, "cifar10", "test", 12))
    assert frame.loc[3].drop("arch").isna().all()


def test_missing_optional_packages_name_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nas_201_api", None)
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    with pytest.raises(ImportError, match="pip install nas-bench-201"):
        GroundTruth.from_nas_bench_201(tmp_path / "x.pth")
    with pytest.raises(ImportError, match="pip install nats_bench"):
        GroundTruth.from_nats_bench(tmp_path / "x.pickle.pbz2")


# ---------------------------------------------------------------- NNI SQLite database
# The DDL peewee 3 emits for NNI 3.0's Nb201TrialConfig / Nb201TrialStats / Nb201IntermediateStats.
_NNI_SCHEMA = (
    'CREATE TABLE "nb201trialconfig" ("id" INTEGER NOT NULL PRIMARY KEY, "arch" JSON NOT NULL, '
    '"num_epochs" INTEGER NOT NULL, "num_channels" INTEGER NOT NULL, "num_cells" INTEGER NOT NULL, '
    '"dataset" VARCHAR(20) NOT NULL);\n'
    'CREATE INDEX "nb201trialconfig_arch" ON "nb201trialconfig" ("arch");\n'
    'CREATE INDEX "nb201trialconfig_num_epochs" ON "nb201trialconfig" ("num_epochs");\n'
    'CREATE INDEX "nb201trialconfig_dataset" ON "nb201trialconfig" ("dataset");\n'
    'CREATE TABLE "nb201trialstats" ("id" INTEGER NOT NULL PRIMARY KEY, "config_id" INTEGER NOT NULL, '
    '"seed" INTEGER NOT NULL, "train_acc" REAL NOT NULL, "valid_acc" REAL NOT NULL, '
    '"test_acc" REAL NOT NULL, "ori_test_acc" REAL NOT NULL, "train_loss" REAL, "valid_loss" REAL, '
    '"test_loss" REAL, "ori_test_loss" REAL, "parameters" REAL NOT NULL, "latency" REAL NOT NULL, '
    '"flops" REAL NOT NULL, "training_time" REAL NOT NULL, "valid_evaluation_time" REAL NOT NULL, '
    '"test_evaluation_time" REAL NOT NULL, "ori_test_evaluation_time" REAL NOT NULL, '
    'FOREIGN KEY ("config_id") REFERENCES "nb201trialconfig" ("id"));\n'
    'CREATE INDEX "nb201trialstats_config_id" ON "nb201trialstats" ("config_id");\n'
    'CREATE TABLE "nb201intermediatestats" ("id" INTEGER NOT NULL PRIMARY KEY, '
    '"trial_id" INTEGER NOT NULL, "current_epoch" INTEGER NOT NULL, "train_acc" REAL, "valid_acc" REAL, '
    '"test_acc" REAL, "ori_test_acc" REAL, "train_loss" REAL, "valid_loss" REAL, "test_loss" REAL, '
    '"ori_test_loss" REAL, FOREIGN KEY ("trial_id") REFERENCES "nb201trialstats" ("id"));\n'
    'CREATE INDEX "nb201intermediatestats_trial_id" ON "nb201intermediatestats" ("trial_id");\n'
    'CREATE INDEX "nb201intermediatestats_current_epoch" ON "nb201intermediatestats" ("current_epoch");\n'
)
# NNI's db_gen: valid_acc / test_acc hold x-valid / ori-test for cifar10-valid, ori-test for cifar10,
# x-valid / x-test for cifar100 and imagenet16-120.
_NNI_STATS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test", "ori-test"),
              "cifar100": ("x-valid", "x-test"), "imagenet16-120": ("x-valid", "x-test")}


def _nni_database(path, runs=("cifar10-valid", "cifar10", "cifar100", "imagenet16-120"), epochs=(200,)):
    connection = sqlite3.connect(path)
    connection.executescript(_NNI_SCHEMA)
    for index in _EVALUATED:
        arch = json.dumps(NB201Arch.from_index(index).to_nni(label=None), sort_keys=True, separators=(",", ":"))
        for run in runs:
            api_run = "ImageNet16-120" if run == "imagenet16-120" else run
            for e in epochs:
                cursor = connection.execute(
                    "INSERT INTO nb201trialconfig (arch, num_epochs, num_channels, num_cells, dataset) "
                    "VALUES (?,?,?,?,?)",
                    (arch, e, 16, 5, run))
                for seed in (777, 888):
                    accs = _trial_accuracies(index, api_run, e, seed)
                    valid_set, test_set = _NNI_STATS[run]
                    connection.execute(
                        "INSERT INTO nb201trialstats (config_id, seed, train_acc, valid_acc, test_acc, ori_test_acc, "
                        "parameters, latency, flops, training_time, valid_evaluation_time, test_evaluation_time, "
                        "ori_test_evaluation_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (cursor.lastrowid, seed, 50.0, accs[valid_set], accs[test_set], accs["ori-test"],
                         0.1, 0.01, 10.0, 100.0, 1.0, 1.0, 1.0))
    connection.commit()
    connection.close()


def test_nni_sqlite_database(tmp_path):
    path = tmp_path / "nasbench201-b2b60732.db"
    _nni_database(path)
    truth = GroundTruth.open(path)
    assert len(truth.metrics) == 6 and all(m.epochs == 200 for m in truth.metrics)
    for dataset, split in _SOME_METRICS:
        assert truth.accuracy(15624, dataset, split) == pytest.approx(_expected(15624, dataset, split, 200))
    assert np.isnan(truth.accuracies([3], "cifar100").loc[3])
    with pytest.raises(ValueError, match="has no cifar10 test accuracy after 12 epochs"):
        truth.accuracy(1, epochs=12)
    with sqlite3.connect(path) as connection:  # the reader opened the file read-only and left it as it was
        assert connection.execute("SELECT COUNT(*) FROM nb201trialstats").fetchone() == (24,)


def test_files_that_are_not_nni_databases_are_refused(tmp_path):
    (tmp_path / "text.db").write_text("not a database at all, just text " * 10)
    with pytest.raises(ValueError, match="not an SQLite database"):
        GroundTruth.from_nni_database(tmp_path / "text.db")
    sqlite3.connect(tmp_path / "other.db").executescript("CREATE TABLE t (x INTEGER);")
    with pytest.raises(ValueError, match="has no table nb201trialconfig"):
        GroundTruth.from_nni_database(tmp_path / "other.db")
    with pytest.raises(FileNotFoundError, match="absent.db"):
        GroundTruth.from_nni_database(tmp_path / "absent.db")
