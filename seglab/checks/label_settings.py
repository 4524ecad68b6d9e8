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
  is learnt as that class (mmseg #932, #1955).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
            _check_sigmoid(key, num, out, loss_key, loss)
            _check_class_weight(num, out, loss_key, loss)
            _check_ignore_index(num, f"{loss_key}.ignore_index", loss.get("ignore_index"))
        _check_ignore_index(num, f"{key}.ignore_index", head.get("ignore_index"))
        pad = (model.get("data_preprocessor") or {}).get("seg_pad_val")
        if isinstance(pad, int) and 0 <= pad < num:
            # where the command line sets it: upstream's model reads the top-level one
            shared = (cfg.get("data_preprocessor") or {}).get("seg_pad_val") == pad
            pad_key = f"{'' if shared else 'model.'}data_preprocessor.seg_pad_val"
            raise ConfigError(
                f"{pad_key}={pad}: a class index ({key} predicts {num} classes, 0 to "
                f"{num - 1}): the padding around every crop would be learnt as class {pad}; "
                f"set {pad_key}={IGNORE} (the ignore index)"
            )


def _check_sigmoid(key: str, num: int, out: int, loss_key: str, loss: dict) -> None:
    if out != 1 or loss.get("type") != "CrossEntropyLoss" or loss.get("use_sigmoid"):
        return
    raise ConfigError(
        f"{loss_key}.use_sigmoid=False with one output channel ({key}.num_classes={num}"
        f"{'' if num == out else ', out_channels=1'}): the softmax of one "
        "channel is 1 everywhere, so the loss is 0 and nothing is learnt; set "
        f"{loss_key}.use_sigmoid=true (a binary task: num_classes=2 with out_channels=1), or "
        f"predict each class in a channel of its own ({key}.num_classes=2 and "
        f"{key}.out_channels=2)"
    )


def _check_class_weight(num: int, out: int, loss_key: str, loss: dict) -> None:
    weights = loss.get("class_weight")
    if not isinstance(weights, (list, tuple)) or out == 1:  # a sigmoid channel: per class
        return
    # a mask-classification head scores each query over the classes and "no object"
    expected = num + 1 if "cls" in str(loss.get("loss_name", "")) else num
    if len(weights) != expected:
        raise ConfigError(
            f"{loss_key}.class_weight has {len(weights)} values: expected {expected}, one per "
            "class the head predicts (torch stops at the first iteration otherwise); give "
            f"{expected} weights, or set {loss_key}.class_weight=null (all classes alike)"
        )


def _check_ignore_index(num: int, key: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < num:
        raise ConfigError(
            f"{key}={value}: a class index (the head predicts {num} classes, 0 to {num - 1}): "
            f"every pixel of class {value} would be left out of the loss; set {key}={IGNORE} "
            "(labels that mean 'not labelled' must hold a value no class has)"
        )
