"""``saliency explain --model`` on the files people have, and the input shape models declare.

Every model here is built in the test and saved to ``tmp_path``: Keras 2 HDF5 files (with
their legacy optimizer settings, and a Keras 2 Sequential config), a state_dict, a pickled
module, TorchScript, a ``torch.export`` program exported in training mode with a fixed
batch, and ONNX files exported by ``torch.onnx.export``.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from adapters.cli import main
from adapters.cli.loading import InputShape, load_model, reading_shape, refusal
from tests.cli.cli_models import lenet_torch, tiny_torch
from tests.conftest import require

KERAS_2_OPTIMIZER = {
    "class_name": "Adam",
    "config": {"lr": 0.0010000000474974513, "beta_1": 0.8999999761581421,
               "beta_2": 0.9990000128746033, "decay": 0.0, "epsilon": 1e-07, "amsgrad": False},
}


# --------------------------------------------------------------------------- helpers


def grey_digit(path: Path, digit: int, size: int = 28) -> Path:
    """A white digit on black, drawn with Pillow's own font (deterministic)."""
    image = Image.new("L", (size, size))
    font = ImageFont.load_default(size=round(size * 0.75))
    ImageDraw.Draw(image).text((size / 2, size / 2), str(digit), fill=255, anchor="mm",
                               font=font)
    image.save(path)
    return path


def colour_photo(path: Path, height: int = 97, width: int = 131, seed: int = 0) -> Path:
    """A smooth colour picture with noise, saved as JPEG (its size is not the model's)."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    picture = np.stack([rows / height, columns / width, (rows + columns) / (height + width)],
                       axis=-1) * 200 + rng.uniform(0, 55, (height, width, 3))
    Image.fromarray(picture.astype(np.uint8)).save(path, quality=95)
    return path


def explain(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["explain", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_refused(status: int, err: str, out_folder: Path, *fragments: str) -> None:
    """One line on stderr, exit status 2, and nothing written."""
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("saliency: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert not out_folder.exists() or not any(out_folder.iterdir())


def keras_classifier(keras, *, shape=(64, 64, 1), classes=7, seed=0):
    """A small seeded Keras CNN classifier, compiled the way trained models are saved."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def as_keras_2_file(path: Path) -> None:
    """Give an HDF5 model file the training config a Keras 2 file carries (``lr``, ...)."""
    import h5py

    with h5py.File(path, "r+") as file:
        training = json.loads(file.attrs["training_config"])
        training["optimizer_config"] = KERAS_2_OPTIMIZER
        file.attrs["training_config"] = json.dumps(training).encode()
        file.attrs["keras_version"] = b"2.2.4"


def keras_2_sequential_file(path: Path, weights: list[np.ndarray]) -> None:
    """An HDF5 file as Keras 2.2 wrote a Sequential model: the input shape in the first
    layer's config (``batch_input_shape``), ``name:0`` weight names, a Keras 2 optimizer."""
    import h5py

    kernel, bias, dense_kernel, dense_bias = weights
    initialiser = {"class_name": "VarianceScaling",
                   "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform",
                              "seed": None}}
    none = {key: None for key in ("kernel_regularizer", "bias_regularizer",
                                  "activity_regularizer", "kernel_constraint",
                                  "bias_constraint")}
    layers = [
        {"class_name": "Conv2D", "config": {
            "name": "conv2d_1", "trainable": True, "batch_input_shape": [None, 48, 40, 3],
            "dtype": "float32", "filters": int(kernel.shape[-1]), "kernel_size": [3, 3],
            "strides": [1, 1], "padding": "valid", "data_format": "channels_last",
            "dilation_rate": [1, 1], "activation": "relu", "use_bias": True,
            "kernel_initializer": initialiser, "bias_initializer": {"class_name": "Zeros",
                                                                    "config": {}}, **none}},
        {"class_name": "GlobalAveragePooling2D", "config": {
            "name": "global_average_pooling2d_1", "trainable": True,
            "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {
            "name": "dense_1", "trainable": True, "units": int(dense_kernel.shape[1]),
            "activation": "softmax", "use_bias": True, "kernel_initializer": initialiser,
            "bias_initializer": {"class_name": "Zeros", "config": {}}, **none}},
    ]
    config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": layers}}
    training = {"optimizer_config": KERAS_2_OPTIMIZER, "loss": "categorical_crossentropy",
                "metrics": ["accuracy"], "sample_weight_mode": None, "loss_weights": None}
    with h5py.File(path, "w") as file:
        file.attrs["keras_version"] = b"2.2.4"
        file.attrs["backend"] = b"tensorflow"
        file.attrs["model_config"] = json.dumps(config).encode()
        file.attrs["training_config"] = json.dumps(training).encode()
        group = file.create_group("model_weights")
        names = ["conv2d_1", "global_average_pooling2d_1", "dense_1"]
        group.attrs["layer_names"] = [name.encode() for name in names]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.2.4"
        for name, arrays in zip(names, [(kernel, bias), (), (dense_kernel, dense_bias)],
                                strict=True):
            layer = group.create_group(name)
            weight_names = [f"{name}/{kind}:0" for kind in ("kernel", "bias")][:len(arrays)]
            layer.attrs["weight_names"] = [weight.encode() for weight in weight_names]
            for weight_name, array in zip(weight_names, arrays, strict=True):
                layer.create_dataset(weight_name, data=array)


def smoothgrad_reference(model, x, target, n_samples):
    """The command's default map (SmoothGrad, noise 15%, seed 0) computed through the API."""
    from saliency_core import smoothgrad

    return smoothgrad(model.gradient_fn(), x, np.asarray(target), n_samples=n_samples,
                      noise_level=0.15, seed=0)


def onnx2torch_or_skip():
    """onnx2torch, or a skip where it is missing or does not import: it is an optional
    extra, and it imports torchvision, which has no build for a CPU-only torch here."""
    try:
        return importlib.import_module("onnx2torch")
    except Exception as error:  # ImportError, or RuntimeError from a mismatched torchvision
        pytest.skip(f"onnx2torch is not usable ({type(error).__name__}: {error})")


# --------------------------------------------------------------------------- Keras files


@pytest.fixture(scope="module")
def keras_2_hdf5(tmp_path_factory):
    """A Keras 2 style ``.hdf5`` emotion-like classifier (64 x 64 grey, 7 classes)."""
    keras = require("keras")
    folder = tmp_path_factory.mktemp("keras2")
    model = keras_classifier(keras)
    h5 = folder / "emotion_model.h5"
    model.save(h5)
    as_keras_2_file(h5)
    hdf5 = folder / "emotion_model.hdf5"
    shutil.copyfile(h5, hdf5)
    return model, h5, hdf5


@pytest.mark.slow
def test_the_keras_2_file_fails_to_load_with_its_optimizer(keras_2_hdf5):
    """The test file reproduces the failure a Keras 2 file meets in Keras 3."""
    keras = require("keras")
    _, h5, hdf5 = keras_2_hdf5
    for path in (h5, hdf5):
        with pytest.raises(ValueError, match="Argument\\(s\\) not recognized: \\{'lr'"):
            keras.saving.load_model(path)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".h5", ".hdf5"])
def test_keras_2_files_load_without_their_optimizer(keras_2_hdf5, suffix):
    original, h5, hdf5 = keras_2_hdf5
    loaded, shape = load_model(str(h5 if suffix == ".h5" else hdf5), None)
    assert loaded.framework == "tensorflow"
    assert shape == InputShape(1, (64, 64), "from its input shape (None, 64, 64, 1)")
    x = np.random.default_rng(1).uniform(size=(3, 64, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict_fn()(x), original.predict_on_batch(x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_explain_a_keras_hdf5_classifier_on_a_colour_photo_of_any_size(keras_2_hdf5, tmp_path,
                                                                         capsys):
    """The issue's "done when": no --channels, no --size."""
    original, _, hdf5 = keras_2_hdf5
    photo = colour_photo(tmp_path / "face.jpg")
    out = tmp_path / "out"
    status, printed, err = explain(capsys, "--model", str(hdf5), "--input", str(photo),
                                   "--n-samples", "6", "--out", str(out))
    assert status == 0, err
    raw = np.load(out / "face_smoothgrad.npy")
    assert raw.shape == (64, 64, 1)
    # the reference: the photo read as Pillow's luma, resized to 64 x 64, by hand
    with Image.open(photo) as image:
        grey = image.convert("L").resize((64, 64), Image.BILINEAR)  # type: ignore[attr-defined]
    x = (np.asarray(grey, dtype=np.float32) / 255.0)[None, :, :, None]
    scores = original.predict_on_batch(x)[0]
    predicted = int(scores.argmax())
    assert f"of class {predicted} (score {scores[predicted]:.3f})" in printed
    from adapters.models import Model

    expected = smoothgrad_reference(Model(original, "tensorflow"), x, [predicted], 6)[0]
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.slow
def test_the_users_channels_override_the_model_and_a_mismatch_is_one_line(keras_2_hdf5,
                                                                         tmp_path, capsys):
    _, _, hdf5 = keras_2_hdf5
    photo = colour_photo(tmp_path / "face.jpg")
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(hdf5), "--input", str(photo),
                             "--channels", "3", "--out", str(out))
    assert_refused(status, err, out, "could not run on 64 x 64 images with 3 channels",
                   "it takes 64 x 64 pixels, 1 channel (from its input shape (None, 64, 64, 1))",
                   "pass --channels 1")


@pytest.mark.slow
def test_a_keras_2_sequential_file_with_its_input_shape_in_the_first_layer(tmp_path, capsys):
    """Keras 3 reads a Keras 2 Sequential's ``batch_input_shape`` with one axis too many;
    the loader reads a patched copy, and the file itself is left as it was."""
    keras = require("keras")
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4), rng.normal(size=(4, 5)),
               rng.normal(size=5)]
    weights = [w.astype(np.float32) for w in weights]
    path = tmp_path / "sequential.hdf5"
    keras_2_sequential_file(path, weights)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        keras.saving.load_model(path, compile=False)  # what Keras 3 does with it alone
    model, shape = load_model(str(path), None)
    assert path.read_bytes() == before
    assert shape.channels == 3 and shape.size == (48, 40)
    # the weights are the file's: the model equals numpy's conv, ReLU, mean, dense, softmax
    x = rng.uniform(size=(2, 48, 40, 3)).astype(np.float32)
    kernel, bias, dense_kernel, dense_bias = weights
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
    features = np.maximum(np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias, 0)
    logits = features.mean(axis=(1, 2)) @ dense_kernel + dense_bias
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_fn()(x), expected, rtol=1e-4, atol=1e-6)
    status, _, err = explain(capsys, "--model", str(path), "--input",
                             str(colour_photo(tmp_path / "p.png", 30, 70)), "--method",
                             "gradient", "--out", str(tmp_path / "out"))
    assert status == 0, err
    assert np.load(tmp_path / "out" / "p_gradient.npy").shape == (48, 40, 3)


@pytest.mark.slow
def test_keras_weights_only_and_four_channel_models_are_one_line(tmp_path, capsys):
    keras = require("keras")
    photo = colour_photo(tmp_path / "p.png", 16, 16)
    out = tmp_path / "out"
    weights = tmp_path / "classifier.weights.h5"
    keras_classifier(keras).save_weights(weights)
    renamed = tmp_path / "classifier.h5"
    shutil.copyfile(weights, renamed)
    status, _, err = explain(capsys, "--model", str(renamed), "--input", str(photo),
                             "--out", str(out))
    assert_refused(status, err, out, "holds weights without the model's architecture",
                   "model.load_weights(")
    four = tmp_path / "four.keras"
    keras_classifier(keras, shape=(16, 16, 4)).save(four)
    status, _, err = explain(capsys, "--model", str(four), "--input", str(photo),
                             "--out", str(out))
    assert_refused(status, err, out, "the model takes 16 x 16 pixels, 4 channels",
                   "grey (1) or RGB (3) only")


# --------------------------------------------------------------------------- PyTorch files


@pytest.mark.slow
def test_explain_a_pytorch_module_function_on_grey_digits(tmp_path, capsys):
    """The issue's "done when": a LeNet (``.view`` into a fixed Linear) on 28 x 28 grey
    digits, no --channels: the first convolution says 1 channel."""
    torch = require("torch")
    digits = [grey_digit(tmp_path / f"digit{d}.png", d) for d in (3, 7)]
    out = tmp_path / "out"
    status, printed, err = explain(capsys, "--model", "tests.cli.cli_models:lenet_torch",
                                   "--input", *map(str, digits), "--n-samples", "6",
                                   "--out", str(out))
    assert status == 0, err
    x = np.stack([np.asarray(Image.open(d), dtype=np.float32) / 255.0 for d in digits])[..., None]
    model = lenet_torch()
    with torch.no_grad():
        scores = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    from adapters.models import Model

    expected = smoothgrad_reference(Model(model, "torch"), x, scores.argmax(axis=1), 6)
    for i, d in enumerate((3, 7)):
        raw = np.load(out / f"digit{d}_smoothgrad.npy")
        assert raw.shape == (28, 28, 1)
        np.testing.assert_allclose(raw, expected[i], rtol=1e-4,
                                   atol=1e-5 * np.abs(expected[i]).max())
        assert f"digit{d}.png: SmoothGrad of class {scores[i].argmax()}" in printed


def test_digits_of_another_size_name_the_flag_that_fixes_it(tmp_path, capsys):
    require("torch")
    digit = grey_digit(tmp_path / "small.png", 5, size=20)
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", "tests.cli.cli_models:lenet_torch",
                             "--input", str(digit), "--out", str(out))
    assert_refused(status, err, out, "could not run on 20 x 20 images with 1 channel",
                   "RuntimeError: mat1 and mat2 shapes cannot be multiplied",
                   "pass --size H W as the model was trained",
                   "(it takes 1 channel, from its first convolution)")
    assert main(["explain", "--model", "tests.cli.cli_models:lenet_torch", "--input",
                 str(digit), "--size", "28", "28", "--method", "gradient", "--out",
                 str(out)]) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("state_dict", "is a state_dict: the weights without the model's architecture; pass "
                       "--model module:function, a function that builds the model, calls "
                       "model.load_state_dict(torch.load("),
        ("checkpoint", "is a checkpoint with a state_dict under 'model_state_dict'"),
        ("module", "is a pickle of Python objects (torch.save of a model"),
        ("garbage", "is neither TorchScript nor a file torch.save wrote"),
        ("tensor", "holds a Tensor, not a model"),
    ],
)
@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_pytorch_files_that_are_not_models_are_named(tmp_path, capsys, content, message,
                                                     suffix):
    torch = require("torch")
    path = tmp_path / f"lenet{suffix}"
    weights = lenet_torch().state_dict()
    if content == "garbage":
        path.write_bytes(b"not a model at all")
    else:
        torch.save({"state_dict": weights,
                    "checkpoint": {"epoch": 3, "model_state_dict": weights},
                    "module": tiny_torch(), "tensor": torch.zeros(3)}[content], path)
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(path), "--input",
                             str(grey_digit(tmp_path / "d.png", 1)), "--out", str(out))
    assert_refused(status, err, out, message)
    assert "corrupted" not in err


@pytest.mark.slow
def test_torchscript_keeps_working_and_declares_its_channels(tmp_path, capsys):
    torch = require("torch")
    model = lenet_torch()
    traced = tmp_path / "traced.pt"
    torch.jit.trace(model, torch.zeros(1, 1, 28, 28)).save(str(traced))
    scripted = tmp_path / "scripted.pth"
    torch.jit.script(model).save(str(scripted))
    digit = grey_digit(tmp_path / "d.png", 4)
    maps = {}
    for name, spec in (("module", "tests.cli.cli_models:lenet_torch"), ("traced", traced),
                       ("scripted", scripted)):
        out = tmp_path / name
        status, _, err = explain(capsys, "--model", str(spec), "--input", str(digit),
                                 "--n-samples", "4", "--out", str(out))
        assert status == 0, err
        maps[name] = np.load(out / "d_smoothgrad.npy")
        if name != "module":
            assert load_model(str(spec), None).shape.channels == 1
    for name in ("traced", "scripted"):
        np.testing.assert_allclose(maps[name], maps["module"], rtol=1e-5,
                                   atol=1e-6 * np.abs(maps["module"]).max())


def dropout_net(torch):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Dropout(0.5), torch.nn.Flatten(), torch.nn.Linear(4 * 12 * 12, 6))


@pytest.mark.slow
def test_an_exported_program_in_training_mode_runs_as_in_eval_mode(tmp_path, capsys):
    """Exported with dropout and batch-norm in training mode and a fixed batch of 2: no
    "call model.eval() first", the eval-mode outputs, any number of images, and the
    declared 12 x 12 x 1 used for a colour photo of another size."""
    torch = require("torch")
    net = dropout_net(torch)
    with torch.no_grad():  # batch-norm statistics that are not the defaults
        net[1].running_mean.copy_(torch.linspace(-1, 1, 4))
        net[1].running_var.copy_(torch.linspace(0.5, 2, 4))
    net.train()
    path = tmp_path / "trained.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(2, 1, 12, 12),)), str(path))
    net.eval()
    model, shape = load_model(str(path), None)
    assert shape == InputShape(1, (12, 12), "from its exported example input")
    x = np.random.default_rng(0).uniform(size=(3, 12, 12, 1)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the training-mode warning would fail here
        outputs = model.predict_fn()(x)
        gradients = model.gradient_fn()(x, np.array([0, 1, 2]))
    with torch.no_grad():
        expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    tensor = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_(True)
    net(tensor)[torch.arange(3), torch.tensor([0, 1, 2])].sum().backward()
    np.testing.assert_allclose(gradients, tensor.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-5,
                               atol=1e-7)
    counter = model.handle.program.get_submodule("1").num_batches_tracked.item()
    photo = colour_photo(tmp_path / "photo.png", 40, 30)
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(path), "--input", str(photo),
                             "--n-samples", "5", "--out", str(out))
    assert status == 0, err
    assert "eval()" not in err
    assert np.load(out / "photo_smoothgrad.npy").shape == (12, 12, 1)
    assert model.handle.program.get_submodule("1").num_batches_tracked.item() == counter


@pytest.mark.slow
def test_an_exported_program_with_a_dynamic_batch_declares_its_size(tmp_path):
    torch = require("torch")
    net = dropout_net(torch).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.zeros(2, 1, 12, 12),),
                                  dynamic_shapes=({0: batch},))
    path = tmp_path / "dynamic.pt2"
    torch.export.save(program, str(path))
    model, shape = load_model(str(path), None)
    assert (shape.channels, shape.size) == (1, (12, 12))
    assert type(model.handle).__name__ != "FixedBatch"  # a free batch needs no groups
    x = np.random.default_rng(0).uniform(size=(5, 12, 12, 1)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(model.predict_fn()(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_decomposed_training_mode_program_is_refused_in_one_line(tmp_path, capsys):
    """After ``run_decompositions``, training-mode batch-norm updates its statistics in a
    form with no inference twin: refused, with the way out."""
    torch = require("torch")
    program = torch.export.export(dropout_net(torch).train(), (torch.zeros(2, 1, 12, 12),))
    path = tmp_path / "decomposed.pt2"
    torch.export.save(program.run_decompositions(), str(path))
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(path), "--input",
                             str(grey_digit(tmp_path / "d.png", 1, size=12)), "--out", str(out))
    assert_refused(status, err, out, "was exported in training mode",
                   "export it from model.eval()")


def test_a_file_that_is_not_an_exported_program_is_one_line(tmp_path, capsys):
    require("torch")
    path = tmp_path / "model.pt2"
    path.write_bytes(b"not a zip")
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(path), "--input",
                             str(grey_digit(tmp_path / "d.png", 1)), "--out", str(out))
    assert_refused(status, err, out, "is not a torch.export archive")


# --------------------------------------------------------------------------- ONNX


def test_onnx_without_onnx2torch_names_the_extra(tmp_path, capsys, monkeypatch):
    require("torch")
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # importing it raises ImportError
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(path), "--input",
                             str(grey_digit(tmp_path / "d.png", 1)), "--out", str(out))
    assert_refused(status, err, out, "onnx2torch, which is not installed",
                   'pip install "saliency-toolkit[onnx]"')


class ChannelsLastNet:
    """A torch module factory taking NHWC images, as a Keras model exported to ONNX does."""

    @staticmethod
    def build(torch):
        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = dropout_net(torch).eval()

            def forward(self, x):
                return self.body(x.permute(0, 3, 1, 2))

        return Net().eval()


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_an_onnx_file_explains_like_the_module_it_was_exported_from(tmp_path, capsys, layout):
    torch = require("torch")
    onnx2torch_or_skip()  # the onnx extra (onnx2torch and onnx), first: it is optional
    require("onnx")
    net = dropout_net(torch).eval() if layout == "NCHW" else ChannelsLastNet.build(torch)
    example = torch.zeros(1, 1, 12, 12) if layout == "NCHW" else torch.zeros(1, 12, 12, 1)
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(net, (example,), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    model, shape = load_model(str(path), None)
    dims = ("N", 1, 12, 12) if layout == "NCHW" else ("N", 12, 12, 1)
    assert shape == InputShape(1, (12, 12), f"from its ONNX input shape {dims}")
    x = np.random.default_rng(0).uniform(size=(3, 12, 12, 1)).astype(np.float32)
    reference = dropout_net(torch).eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(model.predict_fn()(x), expected, rtol=1e-5, atol=1e-5)
    photo = colour_photo(tmp_path / "photo.png", 30, 20)
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(path), "--input", str(photo), "--method",
                             "gradient", "--target", "2", "--out", str(out))
    assert status == 0, err
    from adapters.models import Model

    grey = np.asarray(Image.open(photo).convert("L").resize((12, 12), Image.BILINEAR),  # type: ignore[attr-defined]
                      dtype=np.float32)[None, :, :, None] / 255.0
    gradient = Model(reference, "torch").gradient_fn()(grey, np.array([2]))[0]
    np.testing.assert_allclose(np.load(out / "photo_gradient.npy"), gradient, rtol=1e-4,
                               atol=1e-6)


@pytest.mark.slow
def test_a_file_that_is_not_onnx_is_one_line(tmp_path, capsys):
    require("torch")
    onnx2torch_or_skip()  # the onnx extra (onnx2torch and onnx), first: it is optional
    require("onnx")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a protobuf \xff\xfe")
    out = tmp_path / "out"
    status, _, err = explain(capsys, "--model", str(path), "--input",
                             str(grey_digit(tmp_path / "d.png", 1)), "--out", str(out))
    assert_refused(status, err, out, "--model: could not")


# --------------------------------------------------------------------------- declared shapes


@pytest.mark.slow
def test_the_backends_read_the_declared_input_shape():
    torch = require("torch")
    from adapters import torch as torch_adapter

    assert torch_adapter.input_spec(lenet_torch()) == (1, None)
    assert torch_adapter.input_spec(torch.jit.trace(lenet_torch(),
                                                    torch.zeros(1, 1, 28, 28))) == (1, None)
    grouped = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, groups=2))
    assert torch_adapter.input_spec(torch.jit.script(grouped)) == (4, None)
    assert torch_adapter.input_spec(torch.nn.Sequential(torch.nn.LazyConv2d(4, 3))) == (None,
                                                                                        None)
    assert torch_adapter.input_spec(torch.nn.Linear(3, 2)) == (None, None)
    assert torch_adapter.input_spec(lambda x: x) == (None, None)
    width = torch.export.Dim("width", min=4, max=64)
    program = torch.export.export(torch.nn.Conv2d(3, 2, 3), (torch.zeros(2, 3, 16, 16),),
                                  dynamic_shapes=({3: width},))
    assert torch_adapter.input_spec(program.module()) == (3, None)


@pytest.mark.slow
def test_keras_and_jax_declared_input_shapes():
    keras = require("keras")
    require("jax")
    from adapters import jax as jax_adapter
    from adapters import tensorflow as tf_adapter

    assert tf_adapter.input_spec(keras_classifier(keras, shape=(32, 24, 3))) == (3, (32, 24))
    assert tf_adapter.input_spec(keras_classifier(keras, shape=(None, None, 1))) == (1, None)
    flat = keras.Sequential([keras.Input((10,)), keras.layers.Dense(2)])
    assert tf_adapter.input_spec(flat) == (None, None)
    first, second = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([first, second], keras.layers.Add()([first, second]))
    assert tf_adapter.input_spec(two) == (None, None)
    assert tf_adapter.input_spec(keras.Sequential([keras.layers.Dense(2)])) == (None, None)
    assert jax_adapter.input_spec((lambda params, x: x, {"w": np.ones(3)})) == (None, None)


def test_reading_shape_prefers_the_users_flags_then_the_model_then_three_channels():
    declared = InputShape(1, (64, 64), "from its input shape (None, 64, 64, 1)")
    assert reading_shape(declared, channels=None, size=None) == (1, (64, 64))
    assert reading_shape(declared, channels=3, size=(10, 20)) == (3, (10, 20))
    assert reading_shape(InputShape(1, None, "x"), channels=None, size=None) == (1, None)
    assert reading_shape(InputShape(), channels=None, size=(5, 6)) == (3, (5, 6))
    with pytest.raises(Exception, match="2 channels"):
        reading_shape(InputShape(2, None, "from its first convolution"), channels=None,
                      size=None)
    assert reading_shape(InputShape(2, None, "x"), channels=1, size=None) == (1, None)


def test_refusal_names_the_flags_that_give_the_declared_shape():
    error = RuntimeError("shapes do not match\nmore detail on a second line")
    message = str(refusal(error, (1, 30, 40, 3), InputShape(1, (28, 28), "from its example")))
    assert message == ("the model could not run on 30 x 40 images with 3 channels "
                       "(RuntimeError: shapes do not match); it takes 28 x 28 pixels, "
                       "1 channel (from its example): pass --size 28 28 --channels 1")
    message = str(refusal(error, (1, 30, 40, 3), InputShape()))
    assert message.endswith("; pass --size H W and --channels 1 or 3 as the model was trained")
    message = str(refusal(error, (1, 28, 28, 1), InputShape(1, (28, 28), "from its example")))
    assert message.endswith("the images have the shape it declares, 28 x 28 pixels, "
                            "1 channel, from its example")


def test_an_unknown_model_suffix_lists_the_files_read(tmp_path, capsys):
    out = tmp_path / "out"
    image = grey_digit(tmp_path / "d.png", 1)
    status, _, err = explain(capsys, "--model", "model.caffemodel", "--input", str(image),
                             "--out", str(out))
    assert_refused(status, err, out, "--model: expected module:function or a "
                   ".keras/.h5/.hdf5/.pt/.pth/.pt2/.onnx file, got 'model.caffemodel'")
