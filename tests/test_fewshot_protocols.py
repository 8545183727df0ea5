"""Training protocols as objects, the output folder and the one seeded global RNG, on
synthetic data (no shared data needed)."""

from __future__ import annotations

import json

import pytest
import torch

from metantk_plugin.data.batches import SupervisedBatches
from metantk_plugin.data.sources import parse_data_spec
from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.output_folder import OutputConflict, OutputFolder
from metantk_plugin.fewshot.pipeline import EvaluationSettings, build_protocol
from metantk_plugin.fewshot.protocols import MetaLearning, RFSPretraining
from metantk_plugin.fewshot.rfs import PretrainConfig
from metantk_plugin.fewshot.training import TrainingHistory, seeded_global_rng


def _meta_settings(protocol: str = "fomaml") -> EvaluationSettings:
    return EvaluationSettings(network="conv4", data="synthetic", protocol=protocol, ways=3, shots=1, queries=2,
                              meta_iterations=4, episodes=3, meta_batch=2, inner_steps=1, image_size=16).resolved()


def _meta_protocol(protocol: str = "fomaml") -> MetaLearning:
    settings = _meta_settings(protocol)
    channels = parse_data_spec(settings.data).channels
    return build_protocol(settings, lambda classes: Conv4(num_classes=classes, in_channels=channels, hidden=8))


def _rfs_protocol() -> RFSPretraining:
    images = torch.randint(0, 256, (24, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    batches = SupervisedBatches(images, torch.arange(24) % 4, batch_size=8, seed=0)
    return RFSPretraining(Conv4(num_classes=4, in_channels=1, hidden=8), PretrainConfig(steps=4, batch_size=8),
                          batches)


def _parameters(protocol) -> list[torch.Tensor]:
    return [p.detach().clone() for p in protocol.network.parameters()]


@pytest.mark.parametrize("make", [_meta_protocol, _rfs_protocol], ids=["meta-learning", "rfs"])
def test_a_protocol_resumed_from_its_state_continues_bitwise(make):
    with seeded_global_rng(0):
        straight = make()
        straight.train(start=0, stop=4, history=TrainingHistory(), progress=False)
    with seeded_global_rng(0):
        first = make()
        first.train(start=0, stop=2, history=TrainingHistory(), progress=False)
        state = first.state()
    with seeded_global_rng(7):  # another network and RNG: the state replaces both
        resumed = make()
        resumed.load_state(state)
        resumed.train(start=2, stop=4, history=TrainingHistory(), progress=False)
    for a, b in zip(_parameters(resumed), _parameters(straight)):
        assert torch.equal(a, b)


def test_meta_learning_step_and_score_are_the_learners():
    settings = _meta_settings("anil")
    with seeded_global_rng(0):
        protocol = _meta_protocol("anil")
    assert isinstance(protocol, MetaLearning) and protocol.description == "meta-train"
    loss, accuracy = protocol.step(0, protocol.batch(0))
    assert loss > 0 and 0 <= accuracy <= 1
    result = protocol.evaluate(settings.episode_sampler("test"), episodes=3, seed=0, batch_size=2, progress=False)
    assert result.episodes == 3 and 0 <= result.accuracy <= 1
    assert protocol.score(protocol.batch(1)).shape == (settings.meta_batch,)


def test_seeded_global_rng_gives_manual_seed_draws_and_restores_the_caller():
    torch.manual_seed(123)
    expected_after = torch.rand(3)
    torch.manual_seed(123)
    with seeded_global_rng(5):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected_after)
    torch.manual_seed(5)
    assert torch.equal(inside, torch.rand(3))


def test_an_output_folder_of_none_keeps_nothing(tmp_path):
    folder = OutputFolder(None, {"seed": 0}, steps=2)
    assert folder.finished_result() is None and folder.resume_point() is None
    folder.save_checkpoint(1, {"x": torch.zeros(1)}, TrainingHistory())
    assert folder.write_result({"accuracy": 0.5}, TrainingHistory(), title="t") == {"accuracy": 0.5}
    assert not any(tmp_path.iterdir())


def test_an_output_folder_writes_its_files_and_refuses_a_file_as_folder(tmp_path):
    settings = {"seed": 0, "device": "cpu"}
    folder = OutputFolder(tmp_path / "run", settings, steps=2)
    assert folder.resume_point() is None and (tmp_path / "run").is_dir()
    history = TrainingHistory([1], [0.7], [0.5], [0.01])
    folder.save_checkpoint(1, {"x": torch.zeros(1)}, history)
    assert folder.resume_point().iteration == 1
    result = folder.write_result({"accuracy": 0.5, "settings": settings}, history, title="t")
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == result
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "result.json",
                                                                  "training_curve.png"]
    assert OutputFolder(tmp_path / "run", {**settings, "device": "cuda"}, steps=2).finished_result() == result
    with pytest.raises(OutputConflict, match="a result of other settings"):
        OutputFolder(tmp_path / "run", {**settings, "seed": 1}, steps=2).finished_result()
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputConflict, match="is not a folder"):
        OutputFolder(tmp_path / "file", settings, steps=2)


def test_a_result_from_before_query_precision_existed_is_one_of_float32(tmp_path):
    """result.json and checkpoint.pt written before the setting was added lack it: they were
    made in float32, so float32 settings reuse them and bfloat16 ones are refused."""
    folder = OutputFolder(tmp_path / "run", {"seed": 0}, steps=2)
    history = TrainingHistory([1], [0.7], [0.5], [0.01])
    folder.save_checkpoint(1, {"x": torch.zeros(1)}, history)
    result = folder.write_result({"accuracy": 0.5, "settings": {"seed": 0}}, history, title="t")
    now = {"seed": 0, "query_precision": "float32"}
    assert OutputFolder(tmp_path / "run", now, steps=2).finished_result() == result
    (tmp_path / "run" / "result.json").unlink()
    assert OutputFolder(tmp_path / "run", now, steps=2).resume_point().iteration == 1
    with pytest.raises(OutputConflict, match="query_precision"):
        OutputFolder(tmp_path / "run", {**now, "query_precision": "bfloat16"}, steps=2).resume_point()
