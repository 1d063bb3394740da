"""The shipped demo model without any framework: files, numpy forward pass, honest numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from adapters import demo
from tests.conftest import require

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "jaxlib", "flax", "sklearn")


@pytest.fixture(scope="module")
def weights():
    return demo.load_weights()


@pytest.fixture(scope="module")
def samples():
    return demo.load_samples()


def test_importing_the_demo_and_running_numpy_imports_no_framework():
    code = (
        "import json, sys\n"
        "from adapters import demo\n"
        "images, labels = demo.load_samples()\n"
        "demo.forward_numpy(demo.load_weights(), images[:2])\n"
        "demo.load_metadata()\n"
        f"print(json.dumps([m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_weight_file_is_small_and_ships_in_the_package():
    package = resources.files("adapters.demo")
    size = len(package.joinpath(demo.WEIGHTS_FILE).read_bytes())
    assert 10_000 < size < 500_000
    assert len(package.joinpath(demo.SAMPLES_FILE).read_bytes()) < 100_000


def test_weights_have_the_architecture_shapes_in_float32(weights):
    assert list(weights) == list(demo.weight_shapes())
    for name, shape in demo.weight_shapes().items():
        assert weights[name].shape == shape, name
        assert weights[name].dtype == np.float32, name
        assert np.isfinite(weights[name]).all(), name
    assert weights["conv1_w"].shape == (3, 3, 1, 16)  # HWIO
    assert weights["fc_w"].shape == (32, 10)


def test_load_weights_returns_fresh_arrays(weights):
    again = demo.load_weights()
    again["conv1_w"][...] = 0.0
    assert np.abs(demo.load_weights()["conv1_w"]).max() > 0


def test_architecture_names_and_shapes_chain():
    names = [layer.name for layer in demo.ARCHITECTURE]
    assert names == "conv1 relu1 pool1 conv2 relu2 pool2 conv3 relu3 gap fc".split()
    assert demo.ARCHITECTURE[-1].output_shape == (len(demo.CLASS_NAMES),)
    assert demo.CLASS_NAMES == tuple(str(digit) for digit in range(10))


def test_samples_are_two_real_digits_of_each_class(samples):
    images, labels = samples
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (20,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert (images.reshape(20, -1).max(axis=1) > 0.5).all()  # real strokes, not blank
    assert len({image.tobytes() for image in images}) == 20


def test_activations_have_the_documented_shapes(weights, samples):
    images, _ = samples
    activations = demo.activations_numpy(weights, images[:3])
    assert list(activations) == [layer.name for layer in demo.ARCHITECTURE]
    for layer in demo.ARCHITECTURE:
        assert activations[layer.name].shape == (3, *layer.output_shape), layer.name
        assert activations[layer.name].dtype == np.float64
    np.testing.assert_array_equal(activations["fc"], demo.forward_numpy(weights, images[:3]))


def test_numpy_forward_classifies_the_shipped_samples(weights, samples):
    images, labels = samples
    predictions = demo.forward_numpy(weights, images).argmax(axis=1)
    assert (predictions == labels).sum() >= 18


def test_metadata_reports_a_held_out_accuracy(weights):
    meta = demo.load_metadata()
    assert meta["n_test"] + meta["n_train"] == 1797
    assert meta["n_test"] == 360
    assert 0.95 <= meta["test_accuracy"] <= 1.0
    assert meta["test_accuracy"] <= meta["train_accuracy"] + 0.05
    assert isinstance(meta["split_seed"], int) and isinstance(meta["train_seed"], int)
    assert meta["noise_std"] > 0


def test_held_out_accuracy_and_samples_reproduce_from_scikit_learn(weights, samples):
    """Recompute the split: the samples are held-out digits, the accuracy is what is claimed."""
    require("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    meta = demo.load_metadata()
    digits = load_digits()
    indices = np.arange(len(digits.target))
    train_idx, test_idx = train_test_split(
        indices,
        test_size=meta["test_fraction"],
        stratify=digits.target,
        random_state=meta["split_seed"],
    )
    images, labels = samples
    sample_idx = np.array(meta["sample_indices"])
    assert set(sample_idx) <= set(test_idx) and not set(sample_idx) & set(train_idx)
    np.testing.assert_array_equal(labels, digits.target[sample_idx])
    np.testing.assert_array_equal(images, demo.prepare_digits(digits.images[sample_idx]))

    held_out = demo.prepare_digits(digits.images[test_idx])
    predictions = demo.forward_numpy(weights, held_out).argmax(axis=1)
    accuracy = float(np.mean(predictions == digits.target[test_idx]))
    assert abs(accuracy - meta["test_accuracy"]) <= 1 / len(test_idx)


def test_prepare_digits_is_bilinear_with_half_pixel_centres():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 17, size=(3, 8, 8)).astype(np.float64)
    out = demo.prepare_digits(raw)
    assert out.shape == (3, 28, 28, 1) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(demo.prepare_digits(raw.reshape(3, 64)), out)
    # Constant images stay constant; a horizontal ramp stays a ramp that is constant down.
    np.testing.assert_allclose(demo.prepare_digits(np.full((1, 8, 8), 8.0)), 0.5)
    ramp = demo.prepare_digits(np.tile(np.arange(8.0), (1, 8, 1)) * 2)[0, :, :, 0]
    assert (np.diff(ramp, axis=1) >= 0).all() and (np.diff(ramp, axis=0) == 0).all()
    # Half-pixel centres: output pixel 0 sits at source -0.36, clamped to source pixel 0;
    # output pixel 2 at source (2.5 * 8 / 28 - 0.5) = 0.214.
    assert ramp[0, 0] == 0.0
    np.testing.assert_allclose(ramp[0, 2], 2 * (2.5 * 8 / 28 - 0.5) / 16, rtol=1e-6)


def test_prepare_digits_matches_torch_interpolate():
    torch = require("torch")
    raw = np.random.default_rng(1).uniform(0, 16, size=(2, 8, 8))
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(raw[:, None] / 16), size=(28, 28), mode="bilinear", align_corners=False
    ).numpy()
    np.testing.assert_allclose(demo.prepare_digits(raw)[..., 0], expected[:, 0], atol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda w, x: demo.forward_numpy(w, x[:, :, :, 0]), ValueError, "(n, 28, 28, 1)"),
        (lambda w, x: demo.forward_numpy(w, x[:, :26]), ValueError, "multiples of 4"),
        (lambda w, x: demo.forward_numpy(w, np.repeat(x, 3, axis=3)), ValueError, "got (2,"),
        (lambda w, x: demo.forward_numpy(w, x.astype(str)), TypeError, "real numeric"),
        (lambda w, x: demo.forward_numpy({**w, "fc_w": w["fc_w"].T}, x), ValueError, "fc_w"),
        (lambda w, x: demo.forward_numpy({"conv1_w": w["conv1_w"]}, x), ValueError, "conv1_b"),
        (lambda w, x: demo.forward_numpy([w], x), TypeError, "dict"),
        (lambda w, x: demo.prepare_digits(np.zeros((2, 7, 7))), ValueError, "(n, 8, 8)"),
        (lambda w, x: demo.prepare_digits(np.array([["a"]])), TypeError, "real numeric"),
        (lambda w, x: demo.build("pytorch"), ValueError, "'pytorch'"),
        (lambda w, x: demo.build(0), TypeError, "str"),
        (lambda w, x: demo.build("jax", weights={}), ValueError, "conv1_w"),
        (lambda w, x: demo.model("pytorch"), ValueError, "'pytorch'"),
    ],
)
def test_bad_input_is_refused_with_what_was_expected(weights, samples, call, error, message):
    with pytest.raises(error, match="expected") as raised:
        call(weights, samples[0][:2])
    assert message in str(raised.value)
