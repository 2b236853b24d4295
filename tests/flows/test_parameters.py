"""Flow parameters flattened from the pydantic models: one Prefect parameter per field, with the
model's types, defaults and constraints in the schema the server validates runs against."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel, Field, ValidationError, model_validator

from flows.extract import ExtractPriorsParameters, extract_priors
from flows.parameters import flat_parameters
from flows.train import TrainSegmenterParameters, train_segmenter


class Pair(BaseModel):
    low: int = Field(0, ge=0, description="The smaller one.")
    high: int = 1
    names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Pair:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


@flat_parameters(Pair)
def spread(params: Pair) -> int:
    """How far apart."""
    return params.high - params.low


def test_each_field_is_a_keyword_parameter_and_the_model_is_built_from_them() -> None:
    signature = inspect.signature(spread)
    assert list(signature.parameters) == ["low", "high", "names"]
    assert signature.parameters["names"].default == []
    assert spread(low=2, high=5) == 3
    assert spread.__name__ == "spread"
    assert spread.__doc__ == "How far apart.\n\nArgs:\n    low: The smaller one."
    with pytest.raises(ValidationError, match="low must not exceed high"):
        spread(low=6, high=5)
    with pytest.raises(TypeError, match="nosuch"):
        spread(nosuch=1)


@pytest.mark.parametrize(
    ("flow", "model"),
    [(train_segmenter, TrainSegmenterParameters), (extract_priors, ExtractPriorsParameters)],
)
def test_the_deployment_schema_has_every_field_with_its_constraints(flow, model) -> None:
    schema = parameter_schema(flow)
    assert list(schema.properties) == list(model.model_fields)
    assert "params" not in schema.properties
    for name, field in model.model_fields.items():
        if field.description:
            assert schema.properties[name].get("description") == field.description, name


def test_the_schema_keeps_defaults_and_minimums() -> None:
    properties = parameter_schema(train_segmenter).properties
    assert properties["config"]["default"] == "segmentation/configs/llmformer_tiny_demo.py"
    assert properties["datasets"]["default"] == ["demo"]
    integer = next(kind for kind in properties["max_iters"]["anyOf"] if kind["type"] == "integer")
    assert integer["minimum"] == 1


def test_prefect_refuses_a_wrong_type_before_the_flow_runs() -> None:
    with pytest.raises(ParameterTypeError, match="max_iters"):
        train_segmenter.validate_parameters({"max_iters": "abc"})
    validated = train_segmenter.validate_parameters({"max_iters": "20", "work_dir": "w"})
    assert validated["max_iters"] == 20 and validated["work_dir"] == Path("w")
