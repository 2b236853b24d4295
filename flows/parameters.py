"""Flow parameters from one pydantic model: each field becomes a keyword parameter of the flow.

Prefect builds a deployment's parameter schema, its UI form and `prefect deployment run -p
key=value` from the flow function's signature; with one model-typed parameter every setting hid
inside it. `flat_parameters(Model)` gives the flow one parameter per field (type, default and
constraints from the model, so the server still validates each at run creation) and calls the
function with the model built from them, where cross-field validators run. Field descriptions
become the docstring's Google-style `Args:` section, where Prefect reads parameter descriptions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo

Model = TypeVar("Model", bound=BaseModel)
Result = TypeVar("Result")


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    """A keyword parameter with the field's default, its type annotated with the field's
    description and constraints (the default lives on the parameter alone)."""
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=field.get_default(call_default_factory=True),
        annotation=Annotated[
            field.annotation, Field(description=field.description), *field.metadata
        ],
    )


def _docstring(summary: str, model: type[BaseModel]) -> str:
    """`summary` followed by an `Args:` section with each described field."""
    described = [(name, f.description) for name, f in model.model_fields.items() if f.description]
    if not described:
        return summary
    return "\n".join([summary, "", "Args:", *(f"    {name}: {text}" for name, text in described)])


def flat_parameters(
    model: type[Model],
) -> Callable[[Callable[[Model], Result]], Callable[..., Result]]:
    """Decorate `function(params: Model)` into `function(*, field=default, ...)` (see module)."""

    def decorate(function: Callable[[Model], Result]) -> Callable[..., Result]:
        parameters = [_parameter(name, field) for name, field in model.model_fields.items()]
        returns = inspect.signature(function, eval_str=True).return_annotation
        signature = inspect.Signature(parameters, return_annotation=returns)

        def flat(**values: Any) -> Result:
            signature.bind(**values)  # an unknown name is a TypeError, as for any function
            return function(model(**values))

        flat.__signature__ = signature
        flat.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
        for attribute in ("__module__", "__name__", "__qualname__"):
            setattr(flat, attribute, getattr(function, attribute))
        flat.__doc__ = _docstring(inspect.getdoc(function) or "", model)
        return flat

    return decorate
