# Two commands on a fresh machine (Python 3.11 + pip):
#   make repro   create .venv, install, register the kernel, run the whole study (dvc repro)
#   make test    create .venv if needed, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KERNEL := spinelib
STAMP := $(VENV)/.installed

export DVC_NO_ANALYTICS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: repro test test-slow env kernel bench clean-results readme-figures publish browser-check lab gpu-check

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (spinelib)"
	touch $(STAMP)

kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (spinelib)"

repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

# The multi-stage paper-profile tests (ConvNeXt/EfficientNet pairs and every Stage 2 ablation): about 3 minutes on
# the 2-core CPU, but about 20 GB of memory at peak, so they stay out of `make test`.
test-slow: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -m slow tests/test_paper_profiles.py

bench: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/crops.py
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/training.py
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/ranking.py

# A few training steps of every stage's paper profile on random tensors (AMP, channels_last) on a CUDA GPU:
# items/s, peak GPU memory, loss decreased. Exits 2 with one line on a machine without CUDA.
gpu-check: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean-results:
	rm -rf results data/phantom data/crops

# Refresh the README's figures from the pipeline's outputs (run after `make repro`).
README_FIGURES := results/00_explore/figures/example_series.png results/00_explore/figures/grade_distribution.png \
	results/00_explore/figures/acquisition_by_centre.png results/01_crops/figures/roi_montage_spinal_canal_stenosis.png \
	results/01_crops/figures/roi_by_true_severity.png results/02_contrastive/figures/embedding_pca.png \
	results/02_contrastive/figures/contrastive_curves.png results/03_finetune/figures/label_fraction.png \
	results/03_finetune/figures/shift_curve.png \
	results/03_finetune/figures/confusion_matrices.png results/03_finetune/figures/localisation.png \
	results/05_thresholds/figures/thresholds_spinal_canal.png results/06_evaluation/figures/uncertainty_vs_margin.png \
	results/06_evaluation/figures/instrument.png results/06_evaluation/figures/paired_differences.png \
	results/07_score_figure/figures/ordered_spinal_canal_stenosis.png results/07_score_figure/figures/ordered_pfirrmann.png \
	results/07_score_figure/figures/score_vs_truth.png results/08_localisation/figures/slice_errors.png \
	results/09_mil/figures/attention_examples.png
readme-figures:
	mkdir -p docs/figures && for f in $(README_FIGURES); do install -m 644 $$f docs/figures/; done

# Publish the executed notebooks of the last `make repro` (outputs kept, figures shrunk) to docs/notebooks/, where
# the repository host shows them to readers who run nothing; tests/test_publish.py fails when they are stale.
publish: $(STAMP)
	$(BIN)/python -m spinelib.publish

# Render the grading report, a published notebook and the `dvc plots show` page (Vega inlined from build/vega/, fetched
# once with npm) in headless Debian Chromium; fails on an empty page or a missing image. Screenshots: build/browser_check/.
# BROWSER_CHECK_ARGS=--lab also opens JupyterLab headless and checks the notebook gets the spinelib kernel.
browser-check: $(STAMP)
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { echo "browser-check needs Debian's Chromium and its driver:" \
		"sudo apt-get install -y chromium chromium-driver" >&2; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python tools/browser_check.py $(BROWSER_CHECK_ARGS)

# JupyterLab on the study's notebooks; they open with the "Python (spinelib)" kernel registered by `make env`.
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks
