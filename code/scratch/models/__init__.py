"""Models built in the book's chapters, each from plain ``torch.nn`` layers.

Import a model from its own module, e.g. ``from scratch.models.lenet import LeNet5``.

Reference numbers a model is checked against have one name per kind of source:
``PAPER_<QUANTITY>`` for what a paper reports (table named in a comment, the paper
in ``references.bib``), ``TORCHVISION_<QUANTITY>`` for what torchvision's version
of the model gives, ``TABLE_<QUANTITY>`` for a chapter's own design table.
Counting tools (parameters, multiply-adds) live in :mod:`scratch.models.inspection`.

Chapter: "Vision" (book/vision/index.md).
"""

from .lenet import LeNet5

__all__ = ["LeNet5"]
