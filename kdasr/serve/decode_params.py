"""The decoding options a request may set, built from the DecodeOptions fields offered on each route
(kdasr/spec/decode_options.py: FORM for the OpenAI multipart form, QUERY for the raw-body route's query
parameters). Named as the fields are; each defaults to None ("not given": the model's recommendation);
the route receives those given as `decode`, keyed by field, for `Service.options(**decode)`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query

from ..spec.decode_options import FORM, QUERY, DecodeOptions, OptionField
from ..spec.option_params import with_option_params

_PARAM = {FORM: Form, QUERY: Query}


def with_decode_params(route: str, options: type = DecodeOptions):
    """Adds the FORM or QUERY (`route`) decoding fields to a FastAPI route function (plain or async)."""
    make = _PARAM[route]

    def param(f: OptionField):
        return Annotated[f.kind | None, make(description=f.help)]

    return with_option_params(route, param, options=options)
