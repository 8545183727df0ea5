from __future__ import annotations

import pytest
import torch

from metantk_plugin.data.episodes import EpisodeSampler
from metantk_plugin.data.sources import input_transform, load_split
from metantk_plugin.fewshot.checkpoint import load_checkpoint
from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.evaluation import evaluate_episodes
from metantk_plugin.fewshot.maml import MetaConfig, MetaLearner
from metantk_plugin.fewshot.pipeline import EvaluationSettings, OutputConflict, run_evaluation
from metantk_plugin.fewshot.rfs import Pretrainer
from metantk_plugin.fewshot.training import meta_train


@pytest.fixture(scope="module")
def omniglot_spec(shared_data):
    return f"omniglot:{shared_data / 'fewshot' / 'omniglot'}"


def test_meta_training_conv4_on_omniglot_beats_chance(omniglot_spec):
    def sampler(split):
        return EpisodeSampler.from_images(load_split(omniglot_spec, split), ways=5, shots=1, queries=5,
                                          image_size=28, transform=input_transform(omniglot_spec))

    torch.manual_seed(0)
    learner = MetaLearner(Conv4(num_classes=5, in_channels=1), MetaConfig(algorithm="maml", meta_lr=5e-3))
    untrained = evaluate_episodes(learner.evaluate, sampler("test"), episodes=100, seed=1, progress=False)
    history = meta_train(learner, sampler("train"), iterations=30, meta_batch=4, seed=0, progress=False)
    trained = evaluate_episodes(learner.evaluate, sampler("test"), episodes=100, seed=1, progress=False)
    # 5-way: chance is 20 %; classes of the test split were never seen in training
    assert trained.accuracy - trained.ci95 > 0.38, trained  # measured: 0.47 ± 0.03
    assert trained.accuracy > untrained.accuracy + 0.10  # measured: 0.29 before training
    assert len(history.iteration) == 30 and history.loss[-1] < history.loss[0]


def _settings(spec: str, protocol: str, iterations: int, **extra) -> EvaluationSettings:
    return EvaluationSettings(network="conv4", data=spec, protocol=protocol, queries=2, meta_iterations=iterations,
                              episodes=4, meta_batch=2, batch_size=16, **extra)


@pytest.mark.parametrize("protocol, trainer, method",
                         [("maml", MetaLearner, "meta_step"), ("rfs", Pretrainer, "step")])
def test_resume_after_an_interruption_continues_bitwise(tmp_path, monkeypatch, omniglot_spec, protocol, trainer,
                                                        method):
    step, calls = getattr(trainer, method), []

    def interrupted(self, *args):  # Ctrl-C during the 4th step
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return step(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(trainer, method, interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_evaluation(_settings(omniglot_spec, protocol, 6), out=tmp_path / "split", progress=False)
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt").iteration == 3
    messages = []
    resumed = run_evaluation(_settings(omniglot_spec, protocol, 6), out=tmp_path / "split", progress=False,
                             log=messages.append)
    straight = run_evaluation(_settings(omniglot_spec, protocol, 6), out=tmp_path / "straight", progress=False)
    assert any("resuming" in m and "iteration 3" in m for m in messages)
    a = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    assert a.iteration == b.iteration == 6
    for name, tensor in b.state["network"].items():
        assert torch.equal(a.state["network"][name], tensor), name
    assert a.history["loss"] == b.history["loss"]
    assert resumed["accuracy"] == straight["accuracy"] and resumed["meta_iterations"] == 6


def test_meta_training_can_be_extended(tmp_path, omniglot_spec):
    run_evaluation(_settings(omniglot_spec, "fomaml", 3), out=tmp_path / "a", progress=False)
    extended = run_evaluation(_settings(omniglot_spec, "fomaml", 5), out=tmp_path / "a", force=True, progress=False)
    straight = run_evaluation(_settings(omniglot_spec, "fomaml", 5), out=tmp_path / "b", progress=False)
    assert extended["accuracy"] == straight["accuracy"]
    a, b = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a.history["loss"] == b.history["loss"] and a.history["iteration"] == [1, 2, 3, 4, 5]


def test_output_folder_is_never_overwritten_silently(tmp_path, omniglot_spec):
    out = tmp_path / "run"
    first = run_evaluation(_settings(omniglot_spec, "fomaml", 2), out=out, progress=False)
    assert (out / "training_curve.png").stat().st_size > 1000
    again = run_evaluation(_settings(omniglot_spec, "fomaml", 2), out=out, progress=False)
    assert again == first  # the stored result, nothing recomputed
    with pytest.raises(OutputConflict, match="protocol: 'fomaml' there vs 'maml' now"):
        run_evaluation(_settings(omniglot_spec, "maml", 2), out=out, progress=False)
    (out / "result.json").unlink()
    with pytest.raises(OutputConflict, match=r"checkpoint.pt: it was made with other training settings \(seed"):
        run_evaluation(_settings(omniglot_spec, "fomaml", 2, seed=5), out=out, progress=False)
    with pytest.raises(OutputConflict, match="already run 2 iterations, more than the 1 asked"):
        run_evaluation(_settings(omniglot_spec, "fomaml", 1), out=out, progress=False)
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(OutputConflict, match="not a readable metantk checkpoint"):
        run_evaluation(_settings(omniglot_spec, "fomaml", 2), out=out, progress=False)
    fresh = run_evaluation(_settings(omniglot_spec, "fomaml", 2), out=out, force=True, progress=False)
    assert fresh["accuracy"] == first["accuracy"]  # same seed, same result
