"""benchmarks/gpu_check.py: the no-CUDA exit, the CPU smoke run of every stage, and the CUDA code path on the CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check(load_script):
    """The script as a module (benchmarks/ is not a package)."""
    return load_script(SCRIPT)


def test_no_cuda_prints_one_line_and_exits_2(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    out = capsys.readouterr().out
    assert out.strip() == gpu_check.NO_CUDA
    assert "nothing was run" in out


def test_cpu_smoke_runs_every_stage_once(gpu_check, tmp_path, capsys):
    path = tmp_path / "rows.json"
    assert gpu_check.main(["--cpu-smoke", "--json", str(path)]) == 0
    table = json.loads(path.read_text())
    rows = table["rows"]
    assert (table["warmup"], table["steps"]) == (1, 1)
    assert {r["stage"] for r in rows} == set(gpu_check.STAGES)
    # one row per stage, and per paper encoder where a stage has two (Stage 1b, Stage 2)
    counts = {s: sum(r["stage"] == s for r in rows) for s in gpu_check.STAGES}
    assert counts == {"contrastive": 1, "finetune": 1, "ranking": 1, "stage1a": 1, "stage1b": 2, "stage2": 2}
    for row in rows:
        assert row["error"] is None, row
        assert row["items_per_s"] > 0
        assert math.isfinite(row["first_loss"]) and math.isfinite(row["last_loss"])
        assert row["peak_gib"] is None and row["amp"] == "off"   # CPU: no GPU memory, no AMP
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 + len(rows)   # header + one line per row


def test_stages_option_selects_and_rejects(gpu_check, tmp_path):
    path = tmp_path / "rows.json"
    assert gpu_check.main(["--cpu-smoke", "--stages", "finetune", "--json", str(path)]) == 0
    assert [r["stage"] for r in json.loads(path.read_text())["rows"]] == ["finetune"]
    with pytest.raises(SystemExit):
        gpu_check.main(["--cpu-smoke", "--stages", "nonsense"])


def test_broken_paper_profile_fails_the_check(gpu_check, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "PARAMS", tmp_path)   # no yaml files there
    assert gpu_check.main(["--cpu-smoke", "--stages", "finetune"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: FileNotFoundError" in out and "finetune.yaml" in out


@pytest.mark.parametrize("stage", ["ranking", "stage2"])
def test_cuda_path_channels_last_and_bf16_on_cpu(gpu_check, stage, tmp_path):
    """What the check does on CUDA (channels_last / channels_last_3d, bf16 autocast), exercised on the CPU."""
    torch.manual_seed(0)
    case = gpu_check.BUILDERS[stage](True, torch.Generator().manual_seed(0), tmp_path)[0]
    row = gpu_check.run_case(case, torch.device("cpu"), 1, 2, dtype=torch.bfloat16, channels_last=True)
    assert row.error is None and row.amp == "bfloat16"
    assert math.isfinite(row.first_loss) and math.isfinite(row.last_loss)
    convs = [m for m in case.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last_3d if m.weight.dim() == 5
                                                else torch.channels_last) for m in convs)
