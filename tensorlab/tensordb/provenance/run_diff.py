"""What differs between two runs: hyper-parameters, code, data imports, packages, seed, hardware.

Why one function for the notebook, the CLI and the lab: "why did this run do better?" is answered by the
differences in what made the two runs, and every view should name the same ones. Sources and environments are
passed in as lookups (`text(digest)`, `environment(digest)`), so this module reads nothing itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

SECTIONS = ("hyper_parameters", "code", "data", "packages", "seed", "hardware", "fit")


def _mapping_diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> dict[str, Any]:
    """{changed: {k: [a, b]}, added: {k: b}, removed: {k: a}}, only the parts that are not empty."""
    a, b = dict(a or {}), dict(b or {})
    found = {"changed": {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if a[k] != b[k]},
             "added": {k: b[k] for k in sorted(b.keys() - a.keys())},
             "removed": {k: a[k] for k in sorted(a.keys() - b.keys())}}
    return {part: values for part, values in found.items() if values}


def _unified(a: str | None, b: str | None, name_a: str, name_b: str) -> str:
    if (a or "") == (b or ""):
        return ""
    return "".join(difflib.unified_diff((a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
                                        fromfile=name_a, tofile=name_b, n=2))


def _code(a: Mapping[str, Any], b: Mapping[str, Any], text: Callable[[str | None], str | None]) -> dict[str, Any]:
    code_a, code_b = a.get("code") or {}, b.get("code") or {}
    git_a, git_b = a.get("git") or {}, b.get("git") or {}
    found: dict[str, Any] = {}
    if code_a.get("sha256") != code_b.get("sha256"):
        found["source"] = _unified(text(code_a.get("sha256")), text(code_b.get("sha256")),
                                   f"a/{code_a.get('path') or code_a.get('kind') or 'code'}",
                                   f"b/{code_b.get('path') or code_b.get('kind') or 'code'}")
    for field in ("commit", "branch", "root"):
        if git_a.get(field) != git_b.get(field):
            found[f"git_{field}"] = [git_a.get(field), git_b.get(field)]
    if git_a.get("diff_sha256") != git_b.get("diff_sha256"):
        found["git_uncommitted"] = _unified(text(git_a.get("diff_sha256")), text(git_b.get("diff_sha256")),
                                            "a/uncommitted.diff", "b/uncommitted.diff")
    return found


def _imports(snapshot: Mapping[str, Any] | None) -> dict[str, int]:
    snapshot = snapshot or {}
    entries = [*(snapshot.get("imports") or []), *(snapshot.get("added") or [])]
    return {str(entry["import_id"]): int(entry.get("samples") or 0) for entry in entries}


def _data(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    data_a, data_b = a.get("data") or {}, b.get("data") or {}
    for part in sorted(set(data_a) | set(data_b)):
        snap_a, snap_b = data_a.get(part) or {}, data_b.get(part) or {}
        imports_a, imports_b = _imports(snap_a), _imports(snap_b)
        change = {"added": [{"import_id": i, "samples": imports_b[i]} for i in sorted(imports_b.keys() - imports_a)],
                  "removed": [{"import_id": i, "samples": imports_a[i]} for i in sorted(imports_a.keys() - imports_b)]}
        if snap_a.get("query") != snap_b.get("query"):
            change["query"] = [snap_a.get("query"), snap_b.get("query")]
        if snap_a.get("arrays") != snap_b.get("arrays"):
            change["arrays"] = [snap_a.get("arrays"), snap_b.get("arrays")]
        change = {key: value for key, value in change.items() if value}
        if change:
            found[part] = change
    return found


def _packages(env_a: Mapping[str, Any] | None, env_b: Mapping[str, Any] | None) -> dict[str, Any]:
    def versions(env: Mapping[str, Any] | None) -> dict[str, str]:
        return dict(item.split("==", 1) for item in (env or {}).get("packages", []) if "==" in item)

    found = _mapping_diff(versions(env_a), versions(env_b))
    for field in ("python", "implementation"):
        if (env_a or {}).get(field) != (env_b or {}).get(field):
            found[field] = [(env_a or {}).get(field), (env_b or {}).get(field)]
    return found


def diff_runs(a: Mapping[str, Any], b: Mapping[str, Any], *, text: Callable[[str | None], str | None],
              environment: Callable[[str | None], Mapping[str, Any] | None]) -> dict[str, Any]:
    """The differences between run documents `a` and `b`, one entry per section of SECTIONS (empty when equal),
    plus `runs` (who is compared) and `same`."""
    prov_a, prov_b = a.get("provenance") or {}, b.get("provenance") or {}
    found: dict[str, Any] = {
        "hyper_parameters": _mapping_diff(a.get("hyper_parameters"), b.get("hyper_parameters")),
        "code": _code(prov_a, prov_b, text),
        "data": _data(prov_a, prov_b),
        "packages": _packages(environment(prov_a.get("environment")), environment(prov_b.get("environment"))),
        "seed": [prov_a.get("seed"), prov_b.get("seed")] if prov_a.get("seed") != prov_b.get("seed") else [],
        "hardware": _mapping_diff(prov_a.get("hardware"), prov_b.get("hardware")),
        "fit": _mapping_diff(prov_a.get("fit"), prov_b.get("fit")),
    }
    if a.get("architecture") != b.get("architecture"):
        found["architecture"] = [a.get("architecture"), b.get("architecture")]
    found["same"] = not any(found.values())
    found["runs"] = {"a": {"id": a.get("_id"), "name": a.get("name")}, "b": {"id": b.get("_id"), "name": b.get("name")}}
    return found


def _mapping_lines(title: str, change: Mapping[str, Any]) -> list[str]:
    lines = [f"{title}:"]
    lines += [f"  {key}: {old!r} -> {new!r}" for key, (old, new) in (change.get("changed") or {}).items()]
    lines += [f"  + {key}: {value!r}" for key, value in (change.get("added") or {}).items()]
    lines += [f"  - {key}: {value!r}" for key, value in (change.get("removed") or {}).items()]
    lines += [f"  {key}: {pair[0]!r} -> {pair[1]!r}" for key, pair in change.items()
              if key not in ("changed", "added", "removed")]
    return lines


def _code_lines(code: Mapping[str, Any]) -> list[str]:
    lines = ["code:"]
    for key, value in code.items():
        if isinstance(value, list):
            lines.append(f"  {key.replace('_', ' ')}: {value[0]} -> {value[1]}")
        elif value:
            lines.append(f"  {'uncommitted changes' if key == 'git_uncommitted' else key}:")
            lines += [f"    {line}" for line in value.rstrip("\n").splitlines()]
    return lines


def _data_lines(data: Mapping[str, Any]) -> list[str]:
    lines = ["data:"]
    for part, change in data.items():
        lines += [f"  {part}: + import {e['import_id']} ({e['samples']} samples)" for e in change.get("added", [])]
        lines += [f"  {part}: - import {e['import_id']} ({e['samples']} samples)" for e in change.get("removed", [])]
        lines += [f"  {part}: {key} {pair[0]} -> {pair[1]}" for key, pair in change.items()
                  if key in ("query", "arrays")]
    return lines


def diff_text(diff: Mapping[str, Any]) -> str:
    """The differences as text for people: one block per section that differs."""
    runs = diff["runs"]
    lines = [f"run a: {runs['a']['name']} ({runs['a']['id']})", f"run b: {runs['b']['name']} ({runs['b']['id']})"]
    if diff["same"]:
        return "\n".join([*lines, "no differences in what made them"])
    for section in ("hyper_parameters", "packages", "hardware", "fit"):
        if diff[section]:
            lines += _mapping_lines(section.replace("_", "-"), diff[section])
    if diff["code"]:
        lines += _code_lines(diff["code"])
    if diff["data"]:
        lines += _data_lines(diff["data"])
    if diff["seed"]:
        lines.append(f"seed: {diff['seed'][0]} -> {diff['seed'][1]}")
    if diff.get("architecture"):
        lines.append(f"architecture: {diff['architecture'][0]} -> {diff['architecture'][1]}")
    return "\n".join(lines)
