"""MNIST / FashionMNIST: IDX parsing, the data root, downloads (from a local server) and the real files."""
import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import struct
import threading

import numpy as np
import pytest

from distgrad.data import MNIST, DataLoader, FashionMNIST, TensorDataset, data_root
from distgrad.data.idx import read_idx
from helpers import idx_bytes, write_split

REAL_ROOT = os.environ.get("DISTGRAD_DATA")
needs_real_mnist = pytest.mark.skipif(
    not REAL_ROOT or not os.path.isfile(os.path.join(REAL_ROOT, "mnist", "train-images-idx3-ubyte.gz")),
    reason="real MNIST not found: set DISTGRAD_DATA to a directory holding mnist/")




def md5_of(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


# --- IDX files --------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_parse_raw_and_gzipped(tmp_path, gz):
    images, labels = write_split(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    parsed = read_idx(str(tmp_path / f"train-images-idx3-ubyte{suffix}"), magic=2051)
    assert parsed.dtype == np.uint8 and np.array_equal(parsed, images)
    assert np.array_equal(read_idx(str(tmp_path / f"train-labels-idx1-ubyte{suffix}"), magic=2049), labels)


def test_idx_wider_types_are_read_big_endian(tmp_path):
    path = tmp_path / "values.idx"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + np.array([1, -2, 70000], ">i4").tobytes())
    assert read_idx(str(path)).tolist() == [1, -2, 70000]


def test_truncated_idx_file_is_refused(tmp_path):
    write_split(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(RuntimeError, match=r"train-images-idx3-ubyte is truncated: .* shape \[6, 28, 28\]"):
        read_idx(str(path), magic=2051)


def test_truncated_gzip_file_is_refused(tmp_path):
    write_split(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(RuntimeError, match="is corrupt or truncated"):
        read_idx(str(path))


def test_wrong_magic_number_and_non_idx_files_are_refused(tmp_path):
    write_split(tmp_path, gz=False)
    with pytest.raises(RuntimeError, match="has magic number 2049 where 2051 was expected"):
        read_idx(str(tmp_path / "train-labels-idx1-ubyte"), magic=2051)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RuntimeError, match="is not an IDX file"):
        read_idx(str(tmp_path / "notes.txt"))


# --- the dataset on small files ---------------------------------------------------------------------
def test_data_root_is_argument_then_env_var_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTGRAD_DATA", str(tmp_path / "env"))
    assert data_root("/somewhere") == "/somewhere"
    assert data_root() == str(tmp_path / "env")
    monkeypatch.delenv("DISTGRAD_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_root() == str(tmp_path / ".cache" / "distgrad")


def test_samples_are_scaled_images_and_int_labels(tmp_path, monkeypatch):
    images, labels = write_split(tmp_path / "mnist", split="t10k", gz=False)
    monkeypatch.setenv("DISTGRAD_DATA", str(tmp_path))
    ds = MNIST(train=False, download=False)
    assert len(ds) == 6 and ds.data.dtype == np.uint8 and ds.targets.dtype == np.int64
    image, label = ds[4]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32 and label == 4 and type(label) is int
    assert np.allclose(image.numpy()[0], images[4] / 255.0)
    ds = MNIST(train=False, download=False, transform=lambda t: t.shape, target_transform=lambda y: y * 10)
    assert ds[3] == ((1, 28, 28), 30)


def test_tensors_are_normalised_for_a_tensor_dataset(tmp_path):
    images, labels = write_split(tmp_path / "mnist")
    ds = MNIST(root=str(tmp_path))
    x, y = ds.tensors()
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    expected = ((images.astype(np.float32) / 255) - 0.1307) / 0.3081
    assert np.allclose(x.numpy()[:, 0], expected, atol=1e-6) and y.numpy().tolist() == labels.tolist()
    raw, _ = ds.tensors(normalize=False)
    assert raw.numpy().min() >= 0 and raw.numpy().max() <= 1
    assert [len(b) for b, _ in DataLoader(TensorDataset(x, y), batch_size=4)] == [4, 2]


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    write_split(tmp_path / "fashion-mnist", n=3)
    ds = FashionMNIST(root=str(tmp_path))
    assert len(ds) == 3 and ds.classes[9] == "Ankle boot"


def test_missing_files_without_download_say_where_to_put_them(tmp_path):
    with pytest.raises(RuntimeError, match="Dataset not found") as info:
        MNIST(root=str(tmp_path), download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "mnist") in message
    assert "DISTGRAD_DATA" in message


def test_images_and_labels_of_different_lengths_are_refused(tmp_path):
    write_split(tmp_path / "mnist", n=6)
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(RuntimeError, match="holds 6 images but .* holds 5 labels"):
        MNIST(root=str(tmp_path))


# --- downloads, from a server on 127.0.0.1 ----------------------------------------------------------
@contextlib.contextmanager
def http_server(directory):
    """A static file server for ``directory`` on 127.0.0.1; yields its base URL."""
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror_server(tmp_path):
    """Serves ``tmp_path/www``: ``good/`` holds tiny MNIST files, ``bad/`` the same files corrupted."""
    www = tmp_path / "www"
    write_split(www / "good")
    os.makedirs(www / "bad")
    for name in os.listdir(www / "good"):
        data = bytearray((www / "good" / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (www / "bad" / name).write_bytes(bytes(data))
    with http_server(www) as url:
        yield url, www


def tiny_mnist_class(www, mirrors):
    """MNIST with the given mirrors and the checksums of the tiny files in ``www/good``."""
    md5s = {name: md5_of(www / "good" / name) for name in os.listdir(www / "good")}
    return type("TinyMNIST", (MNIST,), {"mirrors": mirrors, "md5s": md5s})


def test_download_skips_a_corrupt_mirror_and_keeps_only_verified_files(tmp_path, mirror_server):
    url, www = mirror_server
    dataset_class = tiny_mnist_class(www, [f"{url}/missing/", f"{url}/bad/", f"{url}/good/"])
    ds = dataset_class(root=str(tmp_path / "data"))
    assert len(ds) == 6 and ds[1][1] == 1
    assert sorted(os.listdir(tmp_path / "data" / "mnist")) == ["train-images-idx3-ubyte.gz",
                                                                "train-labels-idx1-ubyte.gz"]


def test_download_from_only_corrupt_mirrors_is_a_clear_error(tmp_path, mirror_server):
    url, www = mirror_server
    with pytest.raises(RuntimeError, match="MD5 mismatch") as info:
        tiny_mnist_class(www, [f"{url}/bad/"])(root=str(tmp_path / "data"))
    assert f"{url}/bad/train-images-idx3-ubyte.gz" in str(info.value)
    assert not (tmp_path / "data").exists()  # no half-written or unverified file, and no empty folder, left


def test_offline_download_names_the_files_the_root_and_the_env_var(tmp_path, mirror_server):
    url, www = mirror_server
    closed_port_url = "http://127.0.0.1:9/"  # the discard port: nothing listens there
    with pytest.raises(RuntimeError, match="could not download train-images-idx3-ubyte.gz") as info:
        tiny_mnist_class(www, [closed_port_url])(root=str(tmp_path / "data"))
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message and str(tmp_path / "data") in message
    assert "DISTGRAD_DATA" in message and closed_port_url in message


# --- the real MNIST files ---------------------------------------------------------------------------
@needs_real_mnist
def test_checksums_match_the_published_md5sums():
    with open(os.path.join(REAL_ROOT, "mnist", "MD5SUMS")) as f:
        published = dict(reversed(line.split()) for line in f if line.strip())
    assert MNIST.md5s == published


@pytest.fixture(scope="module")
def real_train():
    return MNIST(root=REAL_ROOT, download=False)


@needs_real_mnist
def test_real_training_set_has_60000_digits_with_the_known_label_counts(real_train):
    assert real_train.data.shape == (60000, 28, 28) and real_train.data.dtype == np.uint8
    assert np.bincount(real_train.targets.numpy()).tolist() == [5923, 6742, 5958, 6131, 5842,
                                                                 5421, 5918, 6265, 5851, 5949]
    assert real_train[0][1] == 5
    assert abs(real_train.data.numpy().mean() / 255 - MNIST.mean) < 1e-4


@needs_real_mnist
def test_real_test_set_has_10000_digits():
    test = MNIST(root=REAL_ROOT, train=False, download=False)
    assert len(test) == 10000
    assert np.bincount(test.targets.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_real_mnist
def test_real_files_download_through_the_md5_check(tmp_path):
    www = tmp_path / "www"
    os.makedirs(www)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(os.path.join(REAL_ROOT, "mnist", name), www / name)

    with http_server(www) as url:
        local_mnist = type("LocalMNIST", (MNIST,), {"mirrors": [url + "/"]})
        assert len(local_mnist(root=str(tmp_path / "data"), train=False)) == 10000
