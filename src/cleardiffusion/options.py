"""Options declared once: a dataclass field carries its type, default, help text and group; the flags follow.

    lr: float = option(1e-3, "AdamW learning rate after warmup", "optimisation", above=0)

becomes `--lr LR` in the "optimisation" group of `--help` with "(default: 0.001)", parsed as a float, and
`check_fields` refuses a value outside the declared bounds (or a `Literal`'s choices) with a one-line
UsageError naming the flag. The field's type decides the flag:

| field type                   | flag                                                             |
|------------------------------|------------------------------------------------------------------|
| bool, default False          | --name                                                           |
| bool, default True           | --no-name                                                        |
| bool or None                 | --name / --no-name (None: the code decides)                      |
| Literal[...] (or None)       | --name CHOICE, the choices from the Literal                      |
| int, float, str (or None)    | --name VALUE                                                     |
| tuple[float, float]          | --name A B                                                       |
| dict                         | --name KEY=VALUE, repeatable (VALUE a Python literal or a word)  |

Every flag's argparse default is SUPPRESS: a flag not given is absent from the namespace, so `given_values`
returns exactly what the user set and every default comes from the dataclass.
"""

import argparse
import ast
import math
import types
import typing
from collections.abc import Collection
from dataclasses import MISSING, Field, field, fields

from .errors import UsageError


def option(
    default=MISSING,
    help: str = "",
    group: str = "",
    *,
    flag: str | None = None,
    metavar: str | tuple[str, ...] | None = None,
    choices: tuple | None = None,
    required: bool = False,
    const=None,
    show_default: bool = True,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    default_factory=MISSING,
) -> Field:
    """A dataclass field with what its command-line flag needs.

    Args:
        flag: the flag's name when it is not --field-name (e.g. --model-option for model_options).
        choices: for a field whose choices are not a `Literal` (e.g. the keys of a dict of presets).
        required: the command line insists on the flag (the dataclass keeps its default for the Python API).
        const: the value of the flag given without a value (nargs="?").
        at_least, above, at_most, below: the bounds of a number (of each number of a tuple).
    """
    bounds = {"at_least": at_least, "above": above, "at_most": at_most, "below": below}
    metadata = {"help": help, "group": group, "flag": flag, "metavar": metavar, "choices": choices,
                "required": required, "const": const, "show_default": show_default,
                "bounds": {k: v for k, v in bounds.items() if v is not None}}  # fmt: skip
    return field(default=default, default_factory=default_factory, metadata=metadata)


def base_type(f: Field) -> tuple[typing.Any, bool]:
    """(the field's type without None, whether None is allowed): `int | None` -> (int, True)."""
    if typing.get_origin(f.type) in (typing.Union, types.UnionType):
        args = typing.get_args(f.type)
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else f.type), type(None) in args
    return f.type, False


def choices_of(f: Field) -> tuple | None:
    """The values a field may take: its `Literal`'s, or the `choices` of its metadata; None: any."""
    kind, _ = base_type(f)
    if typing.get_origin(kind) is typing.Literal:
        return typing.get_args(kind)
    return f.metadata.get("choices")


def flag_of(f: Field) -> str:
    """--field-name, --no-field-name for a bool that defaults to True, or the flag the metadata names."""
    name = f.name.replace("_", "-")
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    return f"--no-{name}" if base_type(f) == (bool, False) and f.default is True else f"--{name}"


def key_value(text: str) -> tuple[str, object]:
    """argparse type: KEY=VALUE with VALUE a Python literal (8, 0.1, (1, 2), 'silu') or a bare word."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. norm_groups=8), got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _shown(value) -> str:
    """A default as `--help` shows it: 0.001, 0.9 0.999, linear."""
    if isinstance(value, tuple):
        return " ".join(map(_shown, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _help(f: Field, default=MISSING) -> str:
    text, default = f.metadata["help"], f.default if default is MISSING else default
    shown = f.metadata["show_default"] and not f.metadata["required"] and base_type(f)[0] is not bool
    if shown and default not in (None, MISSING):
        text += f" (default: {_shown(default)})"
    return text.replace("%", "%%")  # argparse %-formats help texts


def add_arguments(parser: argparse.ArgumentParser, config_class: type, only: Collection[str] | None = None,
                  defaults: dict | None = None) -> None:  # fmt: skip
    """One flag per field of `config_class`, in argument groups named by the fields' `group`, in field order.

    `only`: just these fields; `defaults`: the defaults this command uses instead of the dataclass's (shown in
    `--help`; the command applies them to the fields not given)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    defaults = defaults or {}
    for f in fields(config_class):
        if only is not None and f.name not in only:
            continue
        m = f.metadata
        if m["group"] not in groups:
            groups[m["group"]] = parser.add_argument_group(m["group"])
        kind, optional = base_type(f)
        kwargs = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f, defaults.get(f.name, MISSING)),
                  "required": m["required"]}  # fmt: skip
        if kind is bool:
            store = "store_false" if f.default is True else "store_true"
            kwargs["action"] = argparse.BooleanOptionalAction if optional else store
        else:
            kwargs.update(metavar=m["metavar"], choices=choices_of(f))
            if kind is dict:
                kwargs.update(action="append", type=key_value)
            elif typing.get_origin(kind) is tuple:
                kwargs.update(nargs=len(typing.get_args(kind)), type=typing.get_args(kind)[0])
            elif typing.get_origin(kind) is typing.Literal:
                kwargs["type"] = type(typing.get_args(kind)[0])
            else:
                kwargs["type"] = kind
            if m["const"] is not None:
                kwargs.update(nargs="?", const=m["const"])
        groups[m["group"]].add_argument(flag_of(f), **kwargs)


def given_values(args: argparse.Namespace, config_class: type) -> dict:
    """The fields whose flags were given, as the dataclass holds them (KEY=VALUE pairs -> dict, A B -> tuple)."""
    values = {}
    for f in fields(config_class):
        if hasattr(args, f.name):
            value, kind = getattr(args, f.name), base_type(f)[0]
            if kind is dict:
                value = dict(value)
            elif typing.get_origin(kind) is tuple:
                value = tuple(value)
            values[f.name] = value
    return values


def _within(value, at_least=None, above=None, at_most=None, below=None) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return ((at_least is None or value >= at_least) and (above is None or value > above)
            and (at_most is None or value <= at_most) and (below is None or value < below))  # fmt: skip


def _bounds_text(at_least=None, above=None, at_most=None, below=None) -> str:
    """{'at_least': 0, 'below': 1} -> 'lie in [0, 1)'; {'above': 0} -> 'be a finite number > 0'."""
    low = f"[{at_least}" if at_least is not None else f"({above}" if above is not None else None
    high = f"{at_most}]" if at_most is not None else f"{below})" if below is not None else None
    if low and high:
        return f"lie in {low}, {high}"
    if at_least is not None:
        return f"be at least {at_least}"
    if above is not None:
        return f"be a finite number > {above}"
    return f"be at most {at_most}" if at_most is not None else f"be a finite number < {below}"


def check_fields(config) -> None:
    """UsageError naming the flag of the first field outside its choices or bounds (None passes where allowed)."""
    for f in fields(config):
        value, flag = getattr(config, f.name), flag_of(f)
        if value is None and base_type(f)[1]:
            continue
        allowed = choices_of(f)
        if allowed is not None and value not in allowed:
            raise UsageError(f"{flag} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        bounds = f.metadata.get("bounds")
        if bounds:
            for number in value if isinstance(value, tuple) else (value,):
                if not _within(number, **bounds):
                    shown = _shown(value) if isinstance(value, (int, float, tuple)) else repr(value)
                    raise UsageError(f"{flag} must {'each ' if isinstance(value, tuple) else ''}"
                                     f"{_bounds_text(**bounds)}, got {shown}")  # fmt: skip
