"""Reading SQuAD v2.0 files and laying their paragraphs out as a corpus folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # empty when impossible
    is_impossible: bool
    source: str  # the file name of the paragraph it was written on


@dataclass(frozen=True, slots=True)
class SquadParagraph:
    source: str  # file name in the materialized corpus
    title: str
    context: str


def load(path: Path) -> tuple[list[SquadParagraph], list[SquadQuestion]]:
    """Paragraphs and questions of a SQuAD v2.0 file, in file order."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    paragraphs: list[SquadParagraph] = []
    questions: list[SquadQuestion] = []
    for a, article in enumerate(data["data"]):
        title = article.get("title", f"article {a}").replace("_", " ")
        for p, para in enumerate(article["paragraphs"]):
            source = f"{a:03d}_{p:03d}.txt"
            paragraphs.append(SquadParagraph(source, title, para["context"]))
            for qa in para["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                texts = () if impossible else (x["text"] for x in qa["answers"])
                answers = tuple(dict.fromkeys(texts))
                questions.append(
                    SquadQuestion(qa["id"], qa["question"], answers, impossible, source)
                )
    return paragraphs, questions


def materialize(paragraphs: list[SquadParagraph], out_dir: Path) -> Path:
    """Write one text file per paragraph (title line, blank line, context); returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for para in paragraphs:
        target = out_dir / para.source
        text = f"{para.title}\n\n{para.context}\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return out_dir
