"""The three papers' studies: what each notebook runs, so that a notebook only calls and shows.

* ``contrastive`` (notebook 02) and ``finetune`` (03), with ``disc_localiser`` (03, the contrastive paper's
  disc localisation module);
* ``ranking`` (04) and ``ranking_eval`` (05-07);
* ``multistage`` (08 localisation, 09 MIL grading).

A *study* here is one paper's experiment; the multi-stage paper's own "Stage 1" and "Stage 2" are steps of its
pipeline, and a DVC *stage* is one entry of ``dvc.yaml``. Every function is also runnable as ``python -m``
(and under torchrun) where a stage trains.
"""
