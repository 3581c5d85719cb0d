"""The bodies the server takes: /predict's and /explain's, their limits and fields in the OpenAPI schema made
from what is served (an abstention field of the kinds of model served, the label names an explanation may name),
and a request's abstention rule over the server's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import HTTPException
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model

from ..config import ServeSettings
from ..data.encoding import NOT_BLANK, is_blank
from ..errors import UserError
from ..problems.abstention import Abstention, check_abstention
from .models import ManyModels, OneModel


def served_kinds(models: OneModel | ManyModels) -> set[str] | None:
    """The abstention options the served models take: min_confidence (classifiers), max_interval (regression) or
    both (None: runs may come and go)."""
    if models.runs_dir:
        return None
    kinds = set()
    for name in models.names:
        served = models.get(name)
        if served is not None:
            kinds.add(served.space.problem.selective_flag)
    return kinds


def _not_blank(text: str) -> str:
    """A text of spaces only is refused, as `predict --text` and files treat it (no text): it was answered."""
    if is_blank(text):
        raise ValueError("the text is blank; give each text some words")
    return text


def request_model(settings: ServeSettings, kinds: set[str] | None = None) -> type[BaseModel]:
    """The /predict body, with this server's limits in its schema, and the abstention field of the kinds of model
    it serves (`kinds`: as served_kinds gives them; None: both)."""
    # The schema says it too (a character that is not a space), so that clients and schema tests know a blank text
    # is refused; the check itself is _not_blank's, whose message names the fix.
    Text = Annotated[
        str,
        StringConstraints(min_length=1, max_length=settings.max_chars),
        AfterValidator(_not_blank),
        Field(json_schema_extra={"pattern": NOT_BLANK}),
    ]
    examples = [{"texts": ["A wonderful, moving film.", "Dull and far too long."]}]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": examples}, protected_namespaces=())
        model: str | None = Field(None, description="which served model (GET /models) [the only one]")
        texts: list[Text] = Field(
            min_length=1,
            max_length=settings.max_texts,
            description=f"1 to {settings.max_texts} texts of at most {settings.max_chars} characters",
        )

    abstention: dict[str, Any] = {}
    if kinds is None or "min_confidence" in kinds:
        abstention["min_confidence"] = (float | None, Field(
            None, gt=0, le=1, strict=True,  # strict: JSON true is no probability
            description="mark answers under this probability abstained [the server's]",
        ))  # fmt: skip
    if kinds is None or "max_interval" in kinds:
        abstention["max_interval"] = (float | None, Field(
            None, gt=0, strict=True,
            description="regression: mark answers with a wider interval abstained [the server's]",
        ))  # fmt: skip
    return create_model("PredictRequest", __base__=PredictRequest, **abstention)


def served_labels(models: OneModel | ManyModels) -> list[str] | None:
    """Every label or tag name of the served models (None: runs may come and go)."""
    if models.runs_dir:
        return None
    served = [models.get(name) for name in models.names]
    return sorted({label for model in served if model is not None for label in model.space.names})


def explain_model(predict_request: type[BaseModel], labels: list[str] | None) -> type[BaseModel]:
    """/explain's body: /predict's, with the method and the label or tag to explain (one of the served models'
    when they are known, so the schema names them)."""
    label_type = Literal[tuple(labels)] | None if labels else str | None  # type: ignore[valid-type]
    return create_model(
        "ExplainRequest", __base__=predict_request,
        method=(Literal["integrated-gradients", "occlusion"], Field("integrated-gradients", description="how")),
        label=(label_type, Field(None, description="the label or tag to explain [the predicted one]")),
    )  # fmt: skip


def abstention_of(request: Any, classifier: Any) -> Abstention:
    """The request's rule over the server's (serve --min-confidence / --max-interval); one the model cannot follow
    is the client's error (400)."""
    default = classifier.abstention
    asked = (getattr(request, "min_confidence", None), getattr(request, "max_interval", None))
    rule = Abstention(asked[0] if asked[0] is not None else default.min_confidence,
                      asked[1] if asked[1] is not None else default.max_interval)  # fmt: skip
    try:
        check_abstention(classifier.space, rule, "this model")
    except UserError as exc:
        raise HTTPException(status_code=400, detail=str(exc).replace("--min-confidence", "min_confidence")
                            .replace("--max-interval", "max_interval")) from None  # fmt: skip
    return rule
