"""Data loading shared by all applications."""
from .core import DataLoader, DataLoaders, as_tensor, split_indices
from .transforms import Normalize
from .external import download_url, untar_data

__all__ = ["DataLoader", "DataLoaders", "as_tensor", "split_indices", "Normalize", "download_url", "untar_data"]
