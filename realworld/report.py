"""Comparing a prediction with the truth, and the agreement tables of docs/realworld.md."""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from realworld.scenarios import DESCRIPTIONS, MISMATCHED, Scenario
from realworld.truth import Truth

__all__ = ["Record", "comparable", "compare", "render", "write_docs"]


@dataclass(frozen=True)
class Record:
    """One module of one scenario: what really happened and what abiscan said."""

    scenario: str
    category: str
    python: str
    distribution: str
    module: str
    truth_outcome: str | None  # "ok" / "error" (a crash counts as an error); None: no truth
    truth_type: str | None
    truth_message: str | None
    predicted: str  # "ok" / "error" / "unknown" / "missing" (not in the report)
    predicted_type: str | None
    predicted_message: str | None
    reason: str
    confidence: str | None

    @property
    def outcome_agrees(self) -> bool:
        return self.truth_outcome is not None and self.predicted == self.truth_outcome

    @property
    def type_agrees(self) -> bool:
        if not self.outcome_agrees:
            return False
        return self.truth_outcome == "ok" or _short(self.predicted_type) == _short(self.truth_type)

    @property
    def message_agrees(self) -> bool:
        if not self.type_agrees:
            return False
        return self.truth_outcome == "ok" or (
            comparable(self.predicted_message) == comparable(self.truth_message)
        )

    @property
    def beyond_host(self) -> bool:
        """The prediction rests on a glibc version the target lacks and this host has:
        the real import on this host cannot show what Lambda does."""
        need = _GLIBC_NEED.search(self.reason) if self.predicted == "error" else None
        return (need is not None and _HOST_GLIBC is not None
                and (int(need[1]), int(need[2])) <= _HOST_GLIBC)

    @property
    def host_only(self) -> str | None:
        """Why the real message is this host's and not Lambda's, when it is."""
        if self.message_agrees or not self.truth_message:
            return None
        return next((why for pattern, why in _HOST_ONLY if pattern.search(self.truth_message)),
                    None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# sys.executable: the truth's interpreter is <prefix>/bin/python, which truth.py writes
# /var/lang/bin/python; Lambda's bootstrap runs /var/lang/bin/python3.X, which abiscan
# predicts. Messages are compared with either spelling read as the same executable.
_EXECUTABLE = re.compile(r"/var/lang/bin/python(?:3\.\d+)?(?![\w.])")

# Real messages that come from this host and not from what Lambda would do.
_HOST_ONLY = (
    (re.compile(r"/lib/x86_64-linux-gnu/libc\.so: invalid ELF header"),
     "this host's libc.so is a GNU ld script (Debian's libc6-dev); Lambda's images have no "
     "libc.so, so there the loader says it cannot find it"),
)


# A prediction that rests on a glibc symbol version the target lacks: this host's
# newer glibc defines it, so the real import here goes past the point where it fails
# on Lambda, and the truth cannot check it (as for the whole glibc category).
_GLIBC_NEED = re.compile(r"needs version GLIBC_(\d+)\.(\d+) of libc\.so\.6, which the target")


def _host_glibc() -> tuple[int, int] | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    match = re.fullmatch(r"glibc (\d+)\.(\d+).*", text)
    return (int(match[1]), int(match[2])) if match else None


_HOST_GLIBC = _host_glibc()


def comparable(text: str | None) -> str | None:
    """A message with what differs between this host and Lambda by design made equal."""
    return None if text is None else _EXECUTABLE.sub("<sys.executable>", text)


def _short(type_name: str | None) -> str | None:
    # The real run names pyo3's exception by module and class, abiscan may qualify it.
    return None if type_name is None else type_name.rsplit(".", 1)[-1]


def compare(scenario: Scenario, dist: str, module: str, truth: Truth | None,
            pred: Mapping[str, Any] | None) -> Record:
    error = (pred or {}).get("error") or {}
    t_out: str | None = None
    t_type = truth.type if truth else None
    if truth is not None:
        t_out = "ok" if truth.outcome == "ok" else "error"
        if truth.outcome == "crash":
            t_type = f"<crash: {truth.type}>"
    return Record(
        scenario=scenario.id, category=scenario.category, python=scenario.python,
        distribution=dist, module=module,
        truth_outcome=t_out, truth_type=t_type,
        truth_message=truth.message if truth and truth.outcome != "ok" else None,
        predicted=pred["outcome"] if pred else "missing",
        predicted_type=error.get("type"), predicted_message=error.get("message"),
        reason=(pred or {}).get("reason") or "",
        confidence=(pred or {}).get("confidence"),
    )


def _pct(n: int, d: int) -> str:
    return "n/a" if d == 0 else f"{100.0 * n / d:.1f}%"


def _row(label: str, recs: Sequence[Record]) -> list[str]:
    judged = [r for r in recs if r.truth_outcome is not None and not r.beyond_host]
    t_ok = sum(r.truth_outcome == "ok" for r in judged)
    p = Counter(r.predicted for r in recs)
    false_err = sum(r.truth_outcome == "ok" and r.predicted == "error" for r in judged)
    missed = sum(r.truth_outcome == "error" and r.predicted == "ok" for r in judged)
    return [
        label, str(len({r.scenario for r in recs})), str(len(recs)),
        f"{t_ok} / {len(judged) - t_ok}" if judged else "no truth",
        f"{p['ok']} / {p['error']} / {p['unknown'] + p['missing']}",
        _pct(p["unknown"] + p["missing"], len(recs)),
        _pct(sum(r.outcome_agrees for r in judged), len(judged)),
        _pct(sum(r.type_agrees for r in judged), len(judged)),
        _pct(sum(r.message_agrees for r in judged), len(judged)),
        str(false_err) if judged else "-", str(missed) if judged else "-",
    ]


_HEADER = ["", "stacks", "modules", "real ok / error", "predicted ok / error / unknown",
           "unknown", "outcome", "outcome + type", "exact message", "false errors",
           "missed errors"]


def _table(rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _shape(text: str | None, width: int = 110) -> str:
    """The text with what varies between instances (names, paths, numbers, chains) blanked."""
    if not text:
        return "(none)"
    text = text.splitlines()[0] if text.strip() else text
    text = text.split(" through the import chain ")[0]
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"(/opt|/var)/\S+", "<path>", text)
    text = re.sub(r"\b\d+(\.\d+)*\b", "N", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def cause(r: Record) -> str:
    """A short, grouping description of why ``r`` disagrees."""
    if r.predicted in ("unknown", "missing"):
        return f"predicted {r.predicted} (real {r.truth_outcome}): {_shape(r.reason)}"
    if r.predicted == "error" and r.truth_outcome == "ok":
        return f"false error: {r.predicted_type}: {_shape(r.predicted_message)}"
    if r.predicted == "ok":
        return f"missed error: {r.truth_type}: {_shape(r.truth_message)}"
    if not r.type_agrees:
        return f"type: predicted {r.predicted_type}, real {r.truth_type}"
    if r.host_only:
        return f"host-only message ({r.truth_type}): {r.host_only}"
    return f"message ({r.truth_type}): real \"{_shape(r.truth_message, 70)}\", " \
           f"predicted \"{_shape(r.predicted_message, 70)}\""


def _causes(recs: Sequence[Record], keep: Callable[[Record], bool], top: int) -> list[str]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        if r.truth_outcome is not None and keep(r):
            groups[cause(r)].append(r)
    lines = ["| count | distributions | cause | example |", "|---|---|---|---|"]
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    for key, rs in ranked:
        dists = sorted({r.distribution for r in rs})
        shown = ", ".join(dists[:6]) + (f" (+{len(dists) - 6})" if len(dists) > 6 else "")
        ex = rs[0]
        text = key.replace("|", "/").replace("`", "'")
        lines.append(f"| {len(rs)} | {shown} | `{text}` | "
                     f"`{ex.module}` ({ex.scenario}) |")
    return lines


def render(records: Sequence[Record], manifest: Mapping[str, Any], *, cap: int,
           elapsed: float, timings: Mapping[str, float], not_run: Sequence[str] = (),
           abiscan_python: str = "") -> str:
    by_cat: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_cat[r.category].append(r)
    clean = by_cat.get("clean", [])
    mismatched = [r for c in MISMATCHED for r in by_cat.get(c, [])]
    lines = ["| category | what |", "|---|---|"]
    lines += [f"| {c} | {DESCRIPTIONS[c]} |" for c in DESCRIPTIONS]
    lines += ["", "Agreement per category (percentages of modules with ground truth):", ""]
    rows = [_row(c, by_cat[c]) for c in DESCRIPTIONS if c in by_cat]
    rows.append(_row("**all mismatched**", mismatched))
    lines += _table(rows)
    lines += ["", "Clean stacks per runtime:", ""]
    lines += _table(_row(f"python{py}", [r for r in clean if r.python == py])
                    for py in manifest["pythons"] if any(r.python == py for r in clean))
    np_pd = [r for r in clean if "/numpy-pandas/" in r.scenario and r.python == "3.12"]
    lines += ["", "The clean numpy + pandas layer for python3.12 (issue 9's first case):", ""]
    lines += _table([_row("numpy-pandas, 3.12", np_pd)])
    lines += ["", "Top disagreements on clean stacks:", ""]
    lines += _causes(clean, lambda r: not r.message_agrees and not r.beyond_host, 20)
    lines += ["", "Top disagreements on mismatched stacks:", ""]
    lines += _causes(mismatched, lambda r: not r.message_agrees and not r.beyond_host, 25)
    host = sum(r.host_only is not None for r in records)
    if host:
        lines += ["", f"{host} of the message disagreements are host-only (`host-only` above): "
                  "the real message is this host's, not what Lambda does; they count as "
                  "disagreements in the tables."]
    beyond = [r for r in records if r.truth_outcome is not None and r.beyond_host]
    if beyond:
        glibc = ".".join(map(str, _HOST_GLIBC or ()))
        lines += ["", f"{len(beyond)} records ({len({r.scenario for r in beyond})} scenarios) "
                  "are predicted to fail on a glibc symbol version the target's glibc lacks "
                  f"and this host's glibc {glibc} defines: the real import here goes past "
                  "that point, so it cannot check them, and the tables count them as "
                  "having no truth (as the glibc category). Of these, "
                  f"{sum(r.truth_outcome == 'ok' for r in beyond)} imported on this host."]
    stats = (f"{len(manifest['projects'])} pinned projects, {len(records)} module records, "
             f"cap {cap} modules per distribution; run took {elapsed / 60:.1f} min "
             f"(layers {timings['build'] / 60:.1f}, real imports {timings['truth'] / 60:.1f}, "
             f"abiscan {timings['scan'] / 60:.1f})")
    # abiscan parses with its host's grammar: a host older than the target says unknown.
    stats += f"; abiscan ran on CPython {abiscan_python or 'unrecorded'}"
    if not_run:
        counts = Counter(s.split("/")[0] for s in not_run)
        lines += ["", f"Not run in this run (time budget): {len(not_run)} scenarios ("
                  + ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
                  + "); `python -m realworld run` without `--budget` runs them all."]
    return "\n".join([stats, "", *lines]) + "\n"


_BEGIN = "<!-- realworld:begin (generated by `python -m realworld run`) -->"
_END = "<!-- realworld:end -->"


def write_docs(path: Path, records: Sequence[Record], manifest: Mapping[str, Any], *, cap: int,
               elapsed: float, timings: Mapping[str, float], not_run: Sequence[str] = (),
               abiscan_python: str = "") -> None:
    """Replace the generated part of ``path`` (between the markers) with fresh tables."""
    body = render(records, manifest, cap=cap, elapsed=elapsed, timings=timings,
                  not_run=not_run, abiscan_python=abiscan_python)
    text = path.read_text() if path.is_file() else f"# Real-world suite\n\n{_BEGIN}\n{_END}\n"
    head, _, rest = text.partition(_BEGIN)
    _, _, tail = rest.partition(_END)
    path.write_text(f"{head}{_BEGIN}\n{body}{_END}{tail}")
