"""The paper profiles (params/paper/*.yaml) against the default ones (params/*.yaml), key by key.

Both profiles of a stage must have the same keys at every nesting level, and
every value the paper profile changes must be explained by a comment on that
key's line in the default profile (lists and scalars are compared as leaves).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER_FILES = sorted((ROOT / "params" / "paper").glob("*.yaml"))
COMMENT = re.compile(r"(?:^|\s)#")  # YAML: a comment's '#' starts a line or follows white space


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """Dotted path → value for every non-mapping value of a nested mapping."""
    found: dict[str, object] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        found.update(leaves(value, path + ".") if isinstance(value, dict) else {path: value})
    return found


def key_mismatches(default: dict, paper: dict, prefix: str = "") -> list[str]:
    """Dotted paths present in one profile only, or a mapping in one and not in the other."""
    problems = [f"{prefix}{k} (default only)" for k in default.keys() - paper.keys()]
    problems += [f"{prefix}{k} (paper only)" for k in paper.keys() - default.keys()]
    for key in default.keys() & paper.keys():
        a, b, path = default[key], paper[key], f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            problems += key_mismatches(a, b, path + ".")
        elif isinstance(a, dict) or isinstance(b, dict):
            problems.append(f"{path} (a mapping in the {'default' if isinstance(a, dict) else 'paper'} profile only)")
    return sorted(problems)


def commented_keys(text: str) -> dict[str, bool]:
    """Dotted path → whether the line of that key carries a comment after the key (and its value, if on the line).

    Found by composing the YAML (node positions), so nested block keys and
    flow mappings (``epochs: {a: 1, b: 2}  # why``) are both placed on their line.
    """
    lines = text.splitlines()
    result: dict[str, bool] = {}

    def walk(node: yaml.MappingNode, prefix: str) -> None:
        for key, value in node.value:
            path, line = f"{prefix}{key.value}", key.start_mark.line
            after = value.end_mark.column if value.end_mark.line == line else key.end_mark.column
            result[path] = any(m.end() > after for m in COMMENT.finditer(lines[line]))
            if isinstance(value, yaml.MappingNode):
                walk(value, path + ".")

    root = yaml.compose(text)
    if isinstance(root, yaml.MappingNode):
        walk(root, "")
    return result


def test_commented_keys_finds_nested_and_flow_keys():
    text = ("a: 1  # why\n"
            "b:\n"
            "  c: x#y\n"
            "  d: [1, 2]   # list\n"
            "e: {f: 1, g: 2}  # flow\n"
            "h: '# not a comment'\n")
    assert commented_keys(text) == {"a": True, "b": False, "b.c": False, "b.d": True, "e": True, "e.f": True,
                                    "e.g": True, "h": False}
    assert leaves(yaml.safe_load(text)) == {"a": 1, "b.c": "x#y", "b.d": [1, 2], "e.f": 1, "e.g": 2,
                                            "h": "# not a comment"}
    assert key_mismatches({"a": 1, "b": {"c": 1, "d": 2}, "e": {"f": 1}},
                          {"a": 2, "b": {"c": 1, "x": 2}, "e": 3}) == [
        "b.d (default only)", "b.x (paper only)", "e (a mapping in the default profile only)"]


def test_there_are_paper_profiles():
    assert PAPER_FILES, "no params/paper/*.yaml"


@pytest.mark.parametrize("paper", PAPER_FILES, ids=lambda p: p.name)
def test_paper_profile_has_the_same_keys_at_every_level(paper: Path):
    default = ROOT / "params" / paper.name
    assert default.exists(), f"params/paper/{paper.name} has no namesake params/{paper.name}"
    problems = key_mismatches(yaml.safe_load(default.read_text()) or {}, yaml.safe_load(paper.read_text()) or {})
    assert not problems, f"{paper.name}: keys differ between the profiles: {problems}"


@pytest.mark.parametrize("paper", PAPER_FILES, ids=lambda p: p.name)
def test_default_profile_comments_every_value_the_paper_changes(paper: Path):
    text = (ROOT / "params" / paper.name).read_text()
    default, other = leaves(yaml.safe_load(text) or {}), leaves(yaml.safe_load(paper.read_text()) or {})
    commented = commented_keys(text)
    silent = sorted(path for path in default.keys() & other.keys()
                    if default[path] != other[path] and not commented[path])
    assert not silent, (f"params/{paper.name}: no comment on the line of these keys whose value the paper "
                        f"profile changes: " + ", ".join(f"{p} ({default[p]!r} vs {other[p]!r})" for p in silent))
