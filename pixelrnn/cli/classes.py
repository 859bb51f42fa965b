"""``--class`` and ``--per-class``: which classes a class-conditional model draws, from numbers or the checkpoint's names."""

from __future__ import annotations

import torch

from .common import UserError


def accepted(model) -> str:
    classes, names = model.config.classes, model.config.class_names
    numbers = f"a number in 0..{classes - 1}"
    return f"{numbers} or a name: {', '.join(names)}" if names else numbers


def resolve_class(model, text: str, flag: str = "--class") -> int:
    """The class index ``text`` names: a number in [0, classes) or one of the checkpoint's class names (one-line errors)."""
    classes = model.config.classes
    if not classes:
        raise UserError(f"{flag} {text}: the model is unconditional (its configuration has classes = 0); leave out {flag}")
    names = model.config.class_names
    if text in names:
        return names.index(text)
    try:
        number = int(text)
    except ValueError:
        raise UserError(f"{flag} {text!r} is not a class of this model; accepted: {accepted(model)}") from None
    if not 0 <= number < classes:
        raise UserError(f"{flag} {number} is outside the model's classes; accepted: {accepted(model)}")
    return number


def describe(model, label: int) -> str:
    names = model.config.class_names
    return f"class {label}" + (f" ({names[label]})" if names and names[label] != str(label) else "")


def sample_labels(model, n: int, chosen: str | None, per_class: int | None) -> tuple[torch.Tensor | None, int, int | None, str]:
    """(labels or None, number of images, images per grid row or None, what is drawn) for ``pixelrnn sample``."""
    classes = model.config.classes
    if per_class is not None:
        if chosen is not None:
            raise UserError("give --class or --per-class, not both")
        if per_class < 1:
            raise UserError(f"--per-class must be >= 1; got {per_class}")
        if not classes:
            raise UserError("--per-class needs a class-conditional model; this one is unconditional (classes = 0)")
        labels = torch.arange(classes).repeat_interleave(per_class)
        return labels, len(labels), per_class, f"{per_class} per class, one grid row per class (0..{classes - 1})"
    if chosen is not None:
        label = resolve_class(model, chosen)
        return torch.full((n,), label, dtype=torch.long), n, None, describe(model, label)
    if classes:  # no class asked for: the images go through the classes in turn
        return torch.arange(n) % classes, n, None, f"classes 0, 1, ..., {classes - 1} in turn (--class K for one class)"
    return None, n, None, ""
