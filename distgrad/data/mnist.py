"""MNIST and Fashion-MNIST: 28x28 greyscale images in ten classes, read from their IDX files."""
from __future__ import annotations

import os

import numpy as np

from distgrad import backend, envvars
from distgrad.data.dataset import Dataset
from distgrad.data.download import DownloadError, download
from distgrad.data.idx import read_idx
from distgrad.tensor import Tensor

__all__ = ["DatasetNotFoundError", "MNIST", "FashionMNIST", "data_root"]

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


class DatasetNotFoundError(RuntimeError):
    """A dataset's files are missing and could not be downloaded. ``folder`` is where they were
    looked for, ``files`` the missing names, ``reason`` why no download (None: not allowed)."""

    def __init__(self, message: str, folder: str, files: list, reason: str | None):
        super().__init__(message)
        self.folder, self.files, self.reason = folder, files, reason


def data_root(root: str | None = None) -> str:
    """Where datasets live: ``root``, else ``$DISTGRAD_DATA``, else ``~/.cache/distgrad``."""
    return os.path.expanduser(root or os.environ.get(envvars.DATA_ROOT) or os.path.join("~", ".cache", "distgrad"))


class MNIST(Dataset):
    """The MNIST digits (60000 training, 10000 test images), as torchvision's ``MNIST``.

    Files are read from ``<root>/mnist/`` (``train-images-idx3-ubyte.gz`` etc., gzipped or not), see
    ``data_root``; missing ones are downloaded from ``mirrors`` when ``download`` is true.
    ``dataset[i]`` is ``(image, label)``: a float32 Tensor 1x28x28 in [0, 1] (then ``transform``) and
    an int (then ``target_transform``). ``.data`` holds all images (uint8 Nx28x28), ``.targets`` the
    labels (int64); ``tensors()`` gives them ready for a ``TensorDataset``.
    """

    folder = "mnist"
    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    md5s = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    mean, std = 0.1307, 0.3081  # of the training pixels scaled to [0, 1]

    def __init__(self, root: str | None = None, train: bool = True, download: bool = True,
                 transform=None, target_transform=None):
        self.root = data_root(root)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        split = "train" if train else "t10k"
        images_path, labels_path = self._locate([f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"],
                                                download)
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        if len(images) != len(labels):
            raise RuntimeError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                               f"{len(labels)} labels")
        self.data = Tensor(images)
        self.targets = Tensor(labels.astype(np.int64))

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, self.folder)

    def _locate(self, names: list[str], download_missing: bool) -> list[str]:
        """The path of each file, uncompressed or ``.gz``, downloading the missing ones if allowed."""
        paths, missing = {}, []
        for name in names:
            for candidate in (name, name + ".gz"):
                if os.path.isfile(os.path.join(self.raw_folder, candidate)):
                    paths[name] = os.path.join(self.raw_folder, candidate)
                    break
            else:
                missing.append(name + ".gz")
        if missing and not download_missing:
            raise DatasetNotFoundError(f"Dataset not found. You can use download=True to download it. "
                                       f"{self._where(missing)}", self.raw_folder, missing, None)
        created = _folders_to_create(self.raw_folder) if missing else []
        for gz_name in missing:
            try:
                paths[gz_name[:-3]] = download(gz_name, self.md5s[gz_name], self.raw_folder, self.mirrors)
            except DownloadError as exc:
                for folder in created:  # leave no empty folders behind a failed download
                    if os.path.isdir(folder) and not os.listdir(folder):
                        os.rmdir(folder)
                raise DatasetNotFoundError(f"{type(self).__name__}: {exc}\n{self._where(missing)}",
                                           self.raw_folder, missing, str(exc)) from None
        return [paths[name] for name in names]

    def _where(self, files: list[str]) -> str:
        """Where the files were looked for, and how to point the class at them."""
        return (f"{type(self).__name__} needs {', '.join(files)} in {self.raw_folder} (root {self.root!r}): "
                f"copy them there, pass root=, or set the environment variable DISTGRAD_DATA to a directory "
                f"with a {self.folder}/ folder holding them.")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image = Tensor((self.data.array[index].astype(np.float32) / 255.0)[None])
        target = int(self.targets.array[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def tensors(self, normalize: bool = True, device=None) -> tuple[Tensor, Tensor]:
        """All images as float32 Nx1x28x28 and labels as int64, for a ``TensorDataset``.

        Pixels are scaled to [0, 1], then with ``normalize`` standardised with the class's ``mean``
        and ``std`` (as ``ToTensor()`` then ``Normalize((mean,), (std,))``). ``device``: where they go.
        """
        images = self.data.array[:, None].astype(np.float32)
        images /= np.float32(255)
        if normalize:
            images -= np.float32(self.mean)
            images /= np.float32(self.std)
        device = backend.CPU if device is None else backend.Device(device)
        return (Tensor(backend.to_device(images, device)),
                Tensor(backend.to_device(self.targets.array.copy(), device)))

    def __repr__(self) -> str:
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
                f"    Root location: {self.root}\n    Split: {'Train' if self.train else 'Test'}")


def _folders_to_create(folder: str) -> list[str]:
    """``folder`` and its missing parents, deepest first (what making it would create)."""
    created = []
    while folder and not os.path.exists(folder):
        created.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return created


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: clothes in MNIST's format, read from ``<root>/fashion-mnist/``."""

    folder = "fashion-mnist"
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
               "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"]
    md5s = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    mean, std = 0.2860, 0.3530
