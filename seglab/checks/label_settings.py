"""Label settings of the model that disagree with its own class count, refused before training.

Each of these trains without an error and gives a result that is silently wrong, or fails only
at the first iteration:
- one output channel (`num_classes=1`, or `out_channels=1`) scored with a softmax
  cross-entropy: the softmax of one channel is 1 everywhere, the loss is 0 and nothing is
  learnt (mmseg #2201, #3787);
- a `class_weight` whose length is not the number of classes: torch fails at iteration 1
  (`weight tensor should be defined either for all N classes or no classes`);
- an `ignore_index` that is a class index: every pixel of that class is left out of the loss;
- a `seg_pad_val` (the label of the padding around a crop) that is a class index: the padding
  is learnt as that class (mmseg #932, #1955);
- one sigmoid channel for more than two classes (mmseg's loss stops at the first batch holding
  a label above 1), or a one-class head whose sigmoid predicts 0 and 1, two classes;
- a value of the wrong kind: a `class_weight` that is not a list of numbers, an `ignore_index`
  that is no integer, an argument the loss class does not take. A `class_weight` given as a
  file name is read by mmseg with mmengine.load, which runs code in a pickle or YAML file: only
  a `.json` file is accepted, and its list is checked like a list given inline.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from seglab.errors import ConfigError

# mmseg's default ignore index (decode heads, losses, the data preprocessor's padding)
IGNORE = 255


def heads(model: dict) -> Iterator[tuple[str, dict]]:
    """(override key, head) of the decode head and every auxiliary head; a list's items are
    keyed as Hydra overrides write them (`model.auxiliary_head.0`)."""
    for name in ("decode_head", "auxiliary_head"):
        head = model.get(name)
        items = head if isinstance(head, (list, tuple)) else [head] if head else []
        for i, item in enumerate(items):
            key = f"model.{name}" + (f".{i}" if isinstance(head, (list, tuple)) else "")
            yield key, item


def losses(key: str, head: dict) -> Iterator[tuple[str, dict]]:
    """(override key, loss) of a head's `loss_decode`, a dict or a list of them."""
    loss = head.get("loss_decode")
    if isinstance(loss, dict):
        yield f"{key}.loss_decode", loss
    elif isinstance(loss, (list, tuple)):
        for i, item in enumerate(loss):
            if isinstance(item, dict):
                yield f"{key}.loss_decode.{i}", item


def check_label_settings(cfg: Any) -> None:
    """One line for the first label setting (module docstring) that disagrees with a head's
    class count, with the setting that fits."""
    model = cfg.get("model") or {}
    if model.get("text_encoder") is not None:
        return  # open vocabulary (SAN): its classes are its text encoder's, not a count
    for key, head in heads(model):
        num = head.get("num_classes")
        if not isinstance(num, int) or isinstance(num, bool):
            continue
        out = head.get("out_channels") or num
        for loss_key, loss in losses(key, head):
            _check_loss_arguments(key, head, loss_key, loss)
            _check_sigmoid(key, num, out, loss_key, loss)
            _check_class_weight(num, out, loss_key, loss)
            _check_ignore_index(num, f"{loss_key}.ignore_index", loss.get("ignore_index"))
        _check_ignore_index(num, f"{key}.ignore_index", head.get("ignore_index"))
        pad = (model.get("data_preprocessor") or {}).get("seg_pad_val")
        # where the command line sets it: upstream's model reads the top-level one
        shared = (cfg.get("data_preprocessor") or {}).get("seg_pad_val") == pad
        pad_key = f"{'' if shared else 'model.'}data_preprocessor.seg_pad_val"
        _check_integer(pad_key, pad)
        if isinstance(pad, int) and 0 <= pad < num:
            raise ConfigError(
                f"{pad_key}={pad}: a class index ({key} predicts {num} classes, 0 to "
                f"{num - 1}): the padding around every crop would be learnt as class {pad}; "
                f"set {pad_key}={IGNORE} (the ignore index)"
            )


def _check_loss_arguments(key: str, head: dict, loss_key: str, loss: dict) -> None:
    """An argument the loss class does not take (`ignore_index` of CrossEntropyLoss, which
    leaves out the head's): mmseg would stop while building the model."""
    from mmseg.registry import MODELS

    loss_cls = MODELS.get(loss.get("type")) if isinstance(loss.get("type"), str) else None
    if loss_cls is None:
        return  # an unknown type: the registry check names it
    params = inspect.signature(loss_cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for name in loss:
        if name == "type" or name in params:
            continue
        hint = (
            f"the head's {key}.ignore_index (now {head.get('ignore_index', IGNORE)}) is the "
            "label its losses leave out: set that instead, or drop the override"
            if name == "ignore_index"
            else f"expected one of: {', '.join(p for p in params if p != 'self')}"
        )
        raise ConfigError(
            f"{loss_key}.{name}: {loss['type']} takes no argument {name} (mmseg would stop "
            f"building the model); {hint}"
        )


def _check_sigmoid(key: str, num: int, out: int, loss_key: str, loss: dict) -> None:
    """One output channel tells two classes apart, with a sigmoid: num_classes=2,
    out_channels=1, use_sigmoid=true (mmseg's binary set-up)."""
    if out != 1 or loss.get("type") != "CrossEntropyLoss":
        return
    channel = (
        f"one output channel ({key}.num_classes={num}{'' if num == out else ', out_channels=1'})"
    )
    if not loss.get("use_sigmoid"):
        if num == 2:
            fix = f"{loss_key}.use_sigmoid=true (a binary task: 2 classes, one sigmoid channel)"
        elif num > 2:
            fix = f"{key}.out_channels={num} (a channel per class)"
        else:
            fix = _two_classes(key)
        raise ConfigError(
            f"{loss_key}.use_sigmoid=False with {channel}: the softmax of one channel is 1 "
            f"everywhere, so the loss is 0 and nothing is learnt; set {fix}"
        )
    if num > 2:
        raise ConfigError(
            f"{loss_key}.use_sigmoid=true with {channel}: one sigmoid channel tells 2 classes "
            f"apart, not {num} (mmseg's loss stops at the first label above 1); set "
            f"{key}.out_channels={num} (a channel per class)"
        )
    if num == 1:
        raise ConfigError(
            f"{loss_key}.use_sigmoid=true with {key}.num_classes=1: the sigmoid predicts 0 or 1, "
            f"two classes, but the metrics count one, so the object is scored as no class; set "
            + _two_classes(key)
        )


def _two_classes(key: str) -> str:
    return (
        "dataset.classes=[background,NAME] (with dataset.palette for 2; or dataset.num_classes=2"
        f" where the data set has no class list): a binary task has 2 classes, and {key} gets "
        "its count from there"
    )


def _check_class_weight(num: int, out: int, loss_key: str, loss: dict) -> None:
    weights = loss.get("class_weight")
    if weights is None:
        return
    key = f"{loss_key}.class_weight"
    if isinstance(weights, str):
        weights = _weights_file(key, weights)
    # a mask-classification head scores each query over the classes and "no object"
    expected = num + 1 if "cls" in str(loss.get("loss_name", "")) else num
    example = f"[{','.join(['1.0'] * expected)}]"
    if not isinstance(weights, (list, tuple)) or not all(_is_number(w) for w in weights):
        given = (
            next((w for w in weights if not _is_number(w)), None)
            if isinstance(weights, (list, tuple))
            else None
        )
        raise ConfigError(
            f"{key}={weights!r}: expected a list of {expected} numbers, one per class"
            + (f" ({given!r} is not a number)" if given is not None else "")
            + f"; set {key}={example} with your weights, or {key}=null (all classes alike)"
        )
    if out == 1:  # a sigmoid channel: per class
        return
    if len(weights) != expected:
        raise ConfigError(
            f"{key} has {len(weights)} values: expected {expected}, one per "
            "class the head predicts (torch stops at the first iteration otherwise); give "
            f"{expected} weights, or set {key}=null (all classes alike)"
        )


def _weights_file(key: str, path: str) -> Any:
    """The list in a `.json` class_weight file. mmseg reads the file with mmengine.load, which
    unpickles a `.pkl` and constructs Python objects from YAML tags: only JSON runs no code
    (and `.npy`, which mmseg reads with NumPy, whose loader refuses pickles)."""
    if path.endswith(".npy"):  # np.load without pickles, as mmseg reads it
        try:
            return np.load(os.path.expanduser(path), allow_pickle=False).tolist()
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{key}={path!r}: cannot be read as a NumPy array without pickles ({err}); "
                "expected a .npy file of numbers, one per class"
            ) from None
    if not path.endswith(".json"):
        raise ConfigError(
            f"{key}={path!r}: a file name, which mmseg reads with mmengine.load, and a pickle "
            "or YAML file can run code as it loads; give the weights as a list "
            f"({key}=[w0,w1,...]) or in a .json file holding that list (or a .npy array)"
        )
    try:
        with open(os.path.expanduser(path)) as file:
            return json.load(file)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"{key}={path!r}: cannot be read as JSON ({getattr(err, 'strerror', None) or err}); "
            "expected a .json file holding a list of numbers, one per class"
        ) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_integer(key: str, value: Any) -> None:
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(
            f"{key}={value!r}: expected an integer label value ({IGNORE}: mmseg's ignore index); "
            f"set {key}={IGNORE}"
        )


def _check_ignore_index(num: int, key: str, value: Any) -> None:
    _check_integer(key, value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < num:
        raise ConfigError(
            f"{key}={value}: a class index (the head predicts {num} classes, 0 to {num - 1}): "
            f"every pixel of class {value} would be left out of the loss; set {key}={IGNORE} "
            "(labels that mean 'not labelled' must hold a value no class has)"
        )
