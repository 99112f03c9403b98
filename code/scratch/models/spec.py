"""Model specs: the typed settings that build a model, saved beside its weights.

Each model module defines a small spec next to its model (as nanoGPT's
``GPTConfig`` sits beside ``GPT``): a :class:`ModelSpec` whose fields are the
architecture's choices, with the same types and rules as a chapter's config, and
whose :meth:`~ModelSpec.build` returns the network. A chapter nests the spec in
its config (``cfg.model``), so ``--model.widths=32,64`` changes the network, and
:func:`save_model` stores the spec with the weights, so that one call,
:func:`load_model`, rebuilds and loads a saved model in any later chapter.

Values a model learns from data rather than from its spec (the per-channel mean
and standard deviation of a :class:`~scratch.models.layers.Normalize` layer) are
arguments of ``build`` and buffers of the model, so they travel in the
``state_dict``.

Chapter: "ResNet" (book/vision/resnet.md) saves one; "Adversarial examples"
(book/vision/adversarial.md) loads it.

Chapter: "Residual networks" (book/vision/resnet.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigError, Spec
from ..utils import atomic_path


@dataclass
class ModelSpec(Spec):
    """A spec that builds a model: ``spec.build(**data_stats) -> nn.Module``."""

    def build(self, **stats) -> nn.Module:
        raise NotImplementedError


def _qualified(spec: ModelSpec) -> str:
    return f"{type(spec).__module__}.{type(spec).__qualname__}"


def spec_record(spec: ModelSpec) -> dict:
    """The spec as a checkpoint holds it: its class's dotted name and its fields."""
    return {"class": _qualified(spec), "fields": spec.to_dict()}


def save_model(path, model: nn.Module, spec: ModelSpec, **extra) -> None:
    """Write ``{"spec": ..., "model": state_dict, **extra}`` atomically. Only plain
    values and tensors, so that :func:`load_model` reads it with
    ``weights_only=True``. (:func:`scratch.train.fit`'s checkpoints hold the spec
    too, when the config's ``model`` is one, so they load the same way.)"""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    record = {"spec": spec_record(spec), "model": state, **extra}
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def spec_from_record(record: dict) -> ModelSpec:
    """The spec stored by :func:`save_model`; only classes of ``scratch.models``
    are imported, so a file cannot make us import arbitrary code."""
    name = record["spec"]["class"]
    module, _, cls = name.rpartition(".")
    if not module.startswith("scratch.models."):
        raise ConfigError(
            f"model file names spec class {name!r}, not one of scratch.models"
        )
    kind = getattr(importlib.import_module(module), cls)
    if not (isinstance(kind, type) and issubclass(kind, ModelSpec)):
        raise ConfigError(f"{name} is not a ModelSpec")
    return kind.from_dict(record["spec"]["fields"])


def load_model(path, map_location="cpu") -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model saved at ``path`` from its spec and load its weights:
    ``(model in eval mode, spec)``."""
    record = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(record, dict) or "spec" not in record:
        raise ConfigError(
            f"{path} holds no model spec: not written by save_model, or "
            "by fit for a config without a `model` spec"
        )
    spec = spec_from_record(record)
    model = spec.build()
    model.load_state_dict(record["model"])
    return model.eval(), spec
