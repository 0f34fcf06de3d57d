"""python -m fastcnn: argument parsing, the applications it trains, and tiny end-to-end runs; the examples."""
import importlib.util
import runpy
import subprocess
import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import applications
from fastcnn.__main__ import load, main, parse_args
from conftest import REPO, data_dir

EXAMPLES = REPO / "examples"


def test_defaults_train_the_mnist_convnet():
    args = parse_args([])
    assert (args.dataset, args.model, args.epochs, args.batch_size, args.optimizer) == \
        ("mnist", "convnet", 15, 128, "adam")
    assert args.learning_rate is args.threads is args.seed is args.save is args.plot is None
    assert args.limit is None


def test_every_option_parses():
    args = parse_args(["--dataset", "cifar10", "--model", "lenet5", "--epochs", "3",
                       "--batch-size", "64", "--optimizer", "sgd", "--learning-rate", "0.1",
                       "--threads", "2", "--seed", "7", "--save", "m.keras", "--plot", "c.png",
                       "--limit", "100"])
    assert (args.dataset, args.model, args.epochs, args.batch_size, args.optimizer,
            args.learning_rate, args.threads, args.seed, args.save, args.plot, args.limit) == \
        ("cifar10", "lenet5", 3, 64, "sgd", 0.1, 2, 7, "m.keras", "c.png", 100)


@pytest.mark.parametrize("argv", [["--model", "resnet"], ["--dataset", "imagenet"],
                                  ["--epochs", "0"], ["--batch-size", "-1"],
                                  ["--learning-rate", "0"], ["--limit", "x"],
                                  ["--threads", "0"], ["--threads", "100000"], ["--seed", "-1"],
                                  ["--save", "no-such-folder/m.keras"],
                                  ["--plot", "no-such-folder/c.png"], ["--save", "."],
                                  ["--save", ""]])
def test_bad_options_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: python -m fastcnn" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--threads", "0"], ["--seed", "-1"],
                                  ["--save", "{missing}/m.keras"]])
def test_bad_options_stop_before_training(argv, tmp_path, capsys):
    # main exits with argparse's usage error before loading data or training: no traceback,
    # and a path that cannot be written is found before the training it would waste.
    argv = [a.format(missing=tmp_path / "missing") for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "mlp", "--epochs", "1", "--limit", "64", *argv])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "usage: python -m fastcnn" in captured.err and argv[0] in captured.err
    assert "Epoch" not in captured.out


def test_negative_threads_mean_all_cores_but_some():
    assert parse_args(["--threads", "-1"]).threads == -1


def test_help_lists_options_but_hides_limit():
    result = subprocess.run([sys.executable, "-m", "fastcnn", "--help"], capture_output=True,
                            text=True, check=True)
    for option in ("--dataset", "--model", "--epochs", "--batch-size", "--threads", "--seed",
                   "--save", "--plot", "fashion_mnist", "lenet5", "mlp"):
        assert option in result.stdout
    assert "--limit" not in result.stdout


@pytest.mark.parametrize("name,shape,params", [
    ("convnet", (28, 28, 1), 34826),   # Keras's summary of the same model
    ("lenet5", (28, 28, 1), 61706),
    ("mlp", (28, 28, 1), 13002),       # 784*16+16 + 16*16+16 + 16*10+10
    ("convnet", (32, 32, 3), 42442),
    ("lenet5", (32, 32, 3), 83126),
])
def test_classic_models(name, shape, params):
    model = applications.MODELS[name](input_shape=shape, classes=10)
    assert model.count_params() == params
    assert model.output_shape == (None, 10)
    assert model.layers[-1].activation == "softmax"


def test_convnet_with_batch_norm():
    model = applications.convnet(batch_norm=True)
    names = [type(layer).__name__ for layer in model.layers]
    assert names[:5] == ["Conv2D", "BatchNormalization", "MaxPooling2D", "Conv2D",
                         "BatchNormalization"]
    assert model.count_params() == 34826 + 4 * (32 + 64)  # gamma, beta and two moving stats


def test_load_scales_and_adds_a_channel_axis():
    data_dir()
    (x, y), (xt, yt) = load("mnist", limit=50)
    assert x.shape == (50, 28, 28, 1) and xt.shape == (50, 28, 28, 1)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == yt.shape == (50, 10)


def test_end_to_end_with_save_and_plot(tmp_path, capsys):
    data_dir()
    model_path, plot_path = tmp_path / "mlp.keras", tmp_path / "curves.png"
    argv = ["--model", "mlp", "--epochs", "2", "--batch-size", "32", "--limit", "400",
            "--seed", "3", "--threads", "1", "--save", str(model_path)]
    plotting = importlib.util.find_spec("matplotlib") is not None
    if plotting:
        argv += ["--plot", str(plot_path)]
    main(argv)
    out = capsys.readouterr().out
    assert "Trained mlp on mnist for 2 epochs" in out
    accuracy = float(out.split("Test accuracy: ")[1].split()[0])
    # The saved model reproduces the accuracy the run printed.
    (_, _), (xt, yt) = load("mnist", limit=400)
    loaded = fastcnn.models.load_model(model_path)
    assert loaded.evaluate(xt, yt, verbose=0)[1] == pytest.approx(accuracy, abs=1e-4)
    if plotting:
        assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_end_to_end_lenet5_learns(capsys):
    """Four epochs on 460 MNIST images take LeNet-5 well past chance (0.1 accuracy, and a loss of
    log(10) = 2.30 for a uniform guess): about 0.5-0.6 and 1.6 over seeds 0-3; seed 0 gives 0.59."""
    data_dir()
    main(["--model", "lenet5", "--epochs", "4", "--limit", "512", "--seed", "0"])
    out = capsys.readouterr().out
    loss = float(out.split("Test loss: ")[1].split()[0])
    accuracy = float(out.split("Test accuracy: ")[1].split()[0])
    assert accuracy > 0.35 and loss < 2.0, out


@pytest.mark.parametrize("script,dataset,shape,label_shape", [
    ("mnist_convnet.py", "mnist", (28, 28), ()),
    ("fashion_mnist_lenet5.py", "fashion_mnist", (28, 28), ()),
    ("cifar10_convnet.py", "cifar10", (32, 32, 3), (1,)),
])
def test_examples_run_as_is(script, dataset, shape, label_shape, tmp_path, monkeypatch, rng):
    # The scripts as shipped, on 40 random images instead of the downloaded dataset.
    def tiny():
        return tuple((rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                      rng.integers(0, 10, (n, *label_shape), dtype=np.uint8)) for n in (40, 20))
    monkeypatch.setattr(getattr(fastcnn.datasets, dataset), "load_data", tiny)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
