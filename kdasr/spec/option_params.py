"""Decoding options as keyword parameters of a command or route, built from `option_fields()`.

One decorator serves Typer (kdasr/cli/decode_flags.py) and FastAPI (kdasr/serve/decode_params.py): both
read a function's signature, so the option parameters are added to it, each defaulting to None ("not
given"), and the function receives those given as one keyword argument `decode`, keyed by field name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from .decode_options import DecodeOptions, OptionField, option_fields


def with_option_params(on: str, annotation: Callable[[OptionField], object], *, cli: bool = False,
                       options: type = DecodeOptions):
    """Adds the fields of `options` offered `on` a surface as keyword-only parameters annotated
    `annotation(field)`; named by the field's CLI flag name when `cli`, else by the field's name.
    Works for plain and async functions."""
    fields = option_fields(options, on)
    names = {(f.flag if cli else f.name): f.name for f in fields}

    def wrap(fn):
        sig = inspect.signature(fn, eval_str=True)
        extra = [inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation(f))
                 for param, f in zip(names, fields)]

        def given(kwargs: dict) -> dict:
            values = {field: kwargs.pop(param, None) for param, field in names.items()}
            return {k: v for k, v in values.items() if v is not None}

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def command(*args, **kwargs):
                decode = given(kwargs)  # popped before the call passes kwargs on
                return await fn(*args, **kwargs, decode=decode)
        else:
            @functools.wraps(fn)
            def command(*args, **kwargs):
                decode = given(kwargs)
                return fn(*args, **kwargs, decode=decode)

        params = [p for p in sig.parameters.values() if p.name != "decode"]
        command.__signature__ = sig.replace(parameters=[*params, *extra])
        command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
        return command

    return wrap
