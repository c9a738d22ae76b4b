"""The ``phantom`` command (spinelib.phantom_cli): ``spinelib phantom`` and ``python -m spinelib.phantom_cli`` are
the same command (the DVC stage runs the latter: its deps are checked in tests/test_pipeline.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import yaml

from spinelib import phantom_cli
from spinelib.cli import main as cli_main
from spinelib.params.phantom import PhantomParams


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_both_entry_points_write_the_same_cohort(tmp_path, capsys):
    flags = ["--studies", "1", "--test-studies", "1", "--seed", "3", "--quiet"]
    assert cli_main(["phantom", str(tmp_path / "cli"), *flags]) == 0
    via_cli = json.loads(capsys.readouterr().out)
    assert phantom_cli.main([str(tmp_path / "module"), *flags]) == 0
    via_module = json.loads(capsys.readouterr().out)
    for summary in (via_cli, via_module):
        del summary["out_dir"], summary["seconds"], summary["seconds_per_study"]
    assert via_cli == via_module and via_cli["workers"] == 1
    assert _hashes(tmp_path / "cli") == _hashes(tmp_path / "module")


def test_settings_are_the_defaults_then_the_file_then_the_flags(tmp_path):
    parser = argparse.ArgumentParser()
    phantom_cli.add_arguments(parser)
    assert phantom_cli.settings(parser.parse_args(["out"])) == PhantomParams().phantom.replace(workers=1)
    file = tmp_path / "phantom.yaml"
    file.write_text(yaml.safe_dump({"phantom": {"studies": 7, "workers": 3}}))
    chosen = phantom_cli.settings(parser.parse_args(["out", "--params", str(file), "--seed", "4", "--no-quirks"]))
    assert (chosen.studies, chosen.workers, chosen.seed, chosen.quirks) == (7, 3, 4, False)
