"""adapters.demo.evaluation: the paper's claims measured on the digits model, and its figure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adapters import demo
from adapters.cli import demo as demo_command
from adapters.cli import main
from adapters.demo import evaluation
from tests.conftest import FRAMEWORKS, require

TINY = {"n_inputs": 4, "noise_levels": (0.0, 0.15), "sample_sizes": (2, 8), "n_samples": 8,
        "steps": 8, "stability_samples": 2}


@pytest.fixture(scope="module")
def torch_study():
    require("torch")
    return evaluation.study("torch", **TINY)


def test_a_study_holds_every_sweep_method_and_layer(torch_study):
    s = torch_study
    assert s.framework == "torch" and s.n_inputs == 4 and s.layers == ("fc", "conv3", "conv2",
                                                                        "conv1")
    for sweep, points in ((s.noise, 2), (s.samples, 2)):
        assert set(sweep) == {"deletion AUC", "insertion AUC", "sparseness", "stability"}
        assert all(values.shape == (points,) for values in sweep.values())
    assert list(s.methods) == list(evaluation.METHOD_NAMES)
    assert "stability" not in s.methods["random"]
    for curve in s.randomisation.values():
        assert curve.shape == (5,) and curve[0] == 1.0
    assert set(s.training) == set(demo.VARIANTS)
    for variant in demo.VARIANTS:
        assert list(s.training[variant]) == list(evaluation.TRAINING_METHODS)
        for values in s.training[variant].values():
            assert set(values) == {"deletion AUC", "insertion AUC", "sparseness", "stability"}
    json.dumps(s.as_dict())  # plain numbers throughout


def test_the_training_comparison_measures_each_variant(torch_study):
    """The plain variant's numbers are the methods' own; each accuracy is the shipped one."""
    training, methods = torch_study.training, torch_study.methods
    assert training["plain"]["gradient"] == methods["gradient"]
    assert training["plain"]["SmoothGrad"] == methods["SmoothGrad"]
    assert training["noise"]["gradient"] != training["plain"]["gradient"]
    for variant in demo.VARIANTS:
        assert torch_study.accuracy[variant] == demo.load_metadata(variant)["test_accuracy"]


def test_the_figure_numbers_are_the_studys(torch_study):
    lines = demo_command.figure_numbers("training_noise.png", torch_study)
    assert len(lines) == 2 + 2 * len(evaluation.TRAINING_METHODS)
    stability = torch_study.training["noise"]["SmoothGrad"]["stability"]
    assert f"stability {stability:.3f}" in lines[-1] and "trained with noise" in lines[3]
    sweep = demo_command.figure_numbers("noise_levels.png", torch_study)
    best = int(np.argmax(torch_study.noise["stability"]))
    assert sweep[-1].endswith(f"({torch_study.noise['stability'][best]:.3f})")
    assert demo_command.figure_numbers("discriminativity.png", torch_study) == []


def test_the_measures_separate_real_maps_from_a_random_one(torch_study):
    methods = torch_study.methods
    real = methods["integrated gradients"]
    assert methods["random"]["deletion AUC"] > real["deletion AUC"]  # deletion: lower is better
    assert methods["random"]["insertion AUC"] < real["insertion AUC"]
    # 0 noise is the plain gradient itself
    assert torch_study.noise["sparseness"][0] == pytest.approx(
        methods["gradient"]["sparseness"], abs=1e-12)


def test_the_sanity_check_finds_what_adebayo_et_al_found(torch_study):
    curves = torch_study.randomisation
    final = {name: curve[-1] for name, curve in curves.items()}
    # randomising every layer decorrelates the gradient and SmoothGrad from the original ...
    assert final["gradient"] < 0.4 and final["SmoothGrad"] < 0.3
    # ... while guided backpropagation stays the closest to it (Adebayo et al. 2018, fig. 2)
    assert all(final["guided backprop"] > final[name] + 0.1
               for name in ("gradient", "SmoothGrad", "Grad-CAM"))


@pytest.mark.slow
@pytest.mark.parametrize("framework", [f for f in FRAMEWORKS if f != "torch"])
def test_the_same_study_in_every_framework(torch_study, framework):
    require({"tensorflow": "tensorflow", "jax": "jax"}[framework])
    other = evaluation.study(framework, **TINY)
    for name, values in torch_study.methods.items():
        for metric, value in values.items():
            assert other.methods[name][metric] == pytest.approx(value, abs=2e-3), (name, metric)
    for metric, values in torch_study.noise.items():
        np.testing.assert_allclose(other.noise[metric], values, atol=2e-3, err_msg=metric)
    for variant, by_method in torch_study.training.items():
        for name, values in by_method.items():
            for metric, value in values.items():
                assert other.training[variant][name][metric] == pytest.approx(value, abs=2e-3)
    assert other.accuracy == torch_study.accuracy


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"n_inputs: expected an int in \[1, 20\], got 0"):
        evaluation.study("torch", n_inputs=0)


@pytest.mark.slow
def test_demo_evaluation_writes_the_figure_and_the_numbers(tmp_path, monkeypatch, capsys,
                                                          torch_study):
    monkeypatch.setattr(demo_command.evaluation, "study", lambda framework, **_: torch_study)
    out = tmp_path / "figures"
    assert main(["demo", "--out", str(out), "--evaluation"]) == 0
    printed = capsys.readouterr().out
    for line in demo_command.figure_numbers("training_noise.png", torch_study):
        assert line in printed
    written = json.loads((out / "evaluation.json").read_text())
    assert written["methods"]["gradient"]["deletion AUC"] == pytest.approx(
        torch_study.methods["gradient"]["deletion AUC"])
    figure = demo_command.evaluation_figure(torch_study)
    from PIL import Image

    saved = Image.open(out / "evaluation.png")
    assert saved.size == figure.size
    np.testing.assert_array_equal(np.asarray(saved.convert("RGB")), np.asarray(figure))
