"""``distgrad.data``: datasets, samplers and the DataLoader (``torch.utils.data``'s API), and MNIST."""
from distgrad.data.collate import default_collate, default_convert
from distgrad.data.dataloader import DataLoader
from distgrad.data.dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from distgrad.data.mnist import MNIST, DatasetNotFoundError, FashionMNIST, data_root
from distgrad.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "random_split",
           "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "BatchSampler",
           "DataLoader", "default_collate", "default_convert", "MNIST", "FashionMNIST", "DatasetNotFoundError",
           "data_root"]
