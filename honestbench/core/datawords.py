"""The user's words for the evaluation data (``bench run --data``, ``honestbench.evaluate_model(data=...)``) and
the two axes of :mod:`honestbench.data` each one means: the dataset and where its files come from. Torch-free
(``bench --help`` lists them)."""

from __future__ import annotations

from honestbench.core.errors import BenchError

#: data word -> (dataset, source)
DATA_CHOICES: dict[str, tuple[str, str]] = {
    "cifar10": ("cifar10", "npz"), "npz": ("cifar10", "npz"), "torchvision": ("cifar10", "torchvision"),
    "digits": ("digits", "npz")}


def data_word(word: str) -> tuple[str, str]:
    """``(dataset, source)`` of a data word; one-line :class:`BenchError` listing the words otherwise."""
    if word not in DATA_CHOICES:
        raise BenchError(f"unknown data {word!r}: choose one of {', '.join(DATA_CHOICES)}")
    return DATA_CHOICES[word]
