"""What `modeflow classify` and `modeflow retrieve` print: json (one document) or a plain table."""

from __future__ import annotations

import json

from modeflow.mixture.classify import Classification
from modeflow.mixture.retrieve import Retrieval

FORMATS = ("json", "table")


def _weights_doc(kind: str, experts: list[str], weights) -> dict:
    return {"kind": kind, "experts": dict(zip(experts, map(float, weights)))}


def classification_json(result: Classification) -> str:
    doc = {"classes": result.classnames, "weights": _weights_doc(result.kind, result.experts, result.weights),
           "predictions": [{"image": p.image, "labels": p.labels, "scores": p.scores} for p in result.predictions],
           "failed": [{"image": f.name, "error": f.reason} for f in result.failed]}
    return json.dumps(doc, indent=2)


def classification_table(result: Classification) -> str:
    weights = ", ".join(f"{e} {w:.3f}" for e, w in zip(result.experts, result.weights))
    lines = [f"# weights ({result.kind}): {weights}"]
    width = max(len(p.image) for p in result.predictions)
    k = len(result.predictions[0].labels)
    lines.append("\t".join(["image".ljust(width)] + [f"top-{i + 1} (score)" for i in range(k)]))
    for p in result.predictions:
        cells = [f"{label} ({score:.4f})" for label, score in zip(p.labels, p.scores)]
        lines.append("\t".join([p.image.ljust(width)] + cells))
    return "\n".join(lines)


def retrieval_json(result: Retrieval) -> str:
    doc = {"queries": [{"query": r.query, "weights": _weights_doc(result.kind, result.experts, w),
                        "ranking": [{"image": i, "score": s} for i, s in zip(r.images, r.scores)]}
                       for r, w in zip(result.rankings, result.weights)],
           "failed": [{"image": f.name, "error": f.reason} for f in result.failed]}
    return json.dumps(doc, indent=2)


def retrieval_table(result: Retrieval) -> str:
    lines = []
    for r, w in zip(result.rankings, result.weights):
        weights = ", ".join(f"{e} {x:.3f}" for e, x in zip(result.experts, w))
        lines += [f"# query: {r.query}", f"# weights ({result.kind}): {weights}", "rank\tscore\timage"]
        lines += [f"{i + 1}\t{s:.4f}\t{image}" for i, (image, s) in enumerate(zip(r.images, r.scores))]
    return "\n".join(lines)


def render(result, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if isinstance(result, Classification):
        return classification_json(result) if fmt == "json" else classification_table(result)
    return retrieval_json(result) if fmt == "json" else retrieval_table(result)
