"""The eval-set format (JSON Lines, one item per line; documented in ``evals/README.md``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from index.errors import ConfigError
from service.result import Turn

DEFAULT_SET = Path(__file__).with_name("default.jsonl")
# Questions in a new user's own wording (not paraphrases of the default set): false abstention
USER_SET = Path(__file__).with_name("user.jsonl")


class EvalScope(BaseModel):
    """The documents an item's question is limited to (as the API's ``filter``)."""

    documents: list[str] = Field(default_factory=list)
    glob: str | None = None


class EvalItem(BaseModel):
    """One question with its known outcome."""

    id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    question: str = Field(min_length=1)
    history: list[Turn] = Field(default_factory=list)
    answerable: bool
    # Accepted phrasings of the answer: any one of them counts.
    answers: list[str] = Field(default_factory=list)
    # For list answers: every entry must appear; an entry may itself be a list of alternatives.
    required: list[str | list[str]] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    # Asked limited to these documents: "unanswerable" then means the scope is silent.
    scope: EvalScope | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EvalItem:
        if self.answerable and not (self.answers or self.required):
            raise ValueError("an answerable item needs 'answers' or 'required'")
        if self.answerable and not self.sources:
            raise ValueError("an answerable item needs its gold 'sources'")
        if not self.answerable and (self.answers or self.required):
            raise ValueError("an unanswerable item cannot have answers")
        return self

    def required_groups(self) -> list[list[str]]:
        return [[r] if isinstance(r, str) else list(r) for r in self.required]


def load_set(path: Path) -> list[EvalItem]:
    """Parse and validate an eval set; raises ConfigError naming the bad line."""
    items: list[EvalItem] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read eval set {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            items.append(EvalItem.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ConfigError(f"{path}:{number}: invalid eval item: {exc}") from exc
    if not items:
        raise ConfigError(f"eval set {path} is empty")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ConfigError(f"{path}: duplicate id {item.id!r}")
        seen.add(item.id)
    return items
