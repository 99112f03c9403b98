"""Models built in the book's chapters, each from plain ``torch.nn`` layers.

Import a model from its own module, e.g. ``from scratch.models.lenet import LeNet5``.
"""
from .lenet import LeNet5

__all__ = ["LeNet5"]
