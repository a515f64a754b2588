"""Text for people: the stacks x targets table, and a progress line for a terminal."""

from __future__ import annotations

from typing import Any

from abiscan.fleet.run import AuditResult, Progress

__all__ = ["cell_text", "format_progress", "summary_table"]

_CELL = 40


def cell_text(record: dict[str, Any]) -> str:
    """``ok``, or the cell's first failure: the module and the exception it would raise."""
    status = record["status"]
    if status == "internal-error":
        return "internal error"
    if status == "input-error":
        return "input error"
    first = record.get("first_failure")
    if status == "ok" or not first:
        return "ok"
    error = (first.get("error") or "").split(":", 1)[0]
    text = ": ".join(x for x in (first.get("module"), error or first.get("code")) if x)
    if record.get("declared"):
        text = "!" + text  # fails on a target the layer's metadata declares
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def summary_table(result: AuditResult) -> str:
    rows = [["stack", *result.targets]]
    for stack in result.stacks:
        row = [stack]
        for target in result.targets:
            rec = result.record(stack, target)
            row.append(cell_text(rec) if rec else "")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    counts = {s: 0 for s in ("ok", "error", "input-error", "internal-error")}
    for rec in result.records:
        counts[rec["status"]] += 1
    lines.append("")
    lines.append(
        f"{len(result.stacks)} stacks x {len(result.targets)} targets: {counts['ok']} ok, "
        f"{counts['error']} failing, {counts['input-error']} input errors, "
        f"{counts['internal-error']} internal errors "
        f"({result.scanned} scanned, {result.reused} reused, {result.retried} retried)"
    )
    if any(cell_text(r).startswith("!") for r in result.records):
        lines.append("! the stack fails on a target its declared metadata lists")
    return "\n".join(lines) + "\n"


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_progress(p: Progress) -> str:
    """One line: stacks done per target, and the time left."""
    per = " ".join(f"{t} {n}/{p.stacks}" for t, n in p.done.items())
    eta = f"ETA {_clock(p.eta)}" if p.eta is not None else "ETA --:--"
    return f"audit: {per}  {_clock(p.elapsed)} elapsed, {eta}"
