"""The multi-stage paper's study: localise (slice, then in-plane point, sagittal and axial), then grade by MIL.

* ``localisation``: Stage 1 training over a cohort, prediction for one study and over a split, the error
  report (Table 2, coordinate errors, the slice-error distribution handed to Stage 2);
* ``grading``: Stage 2 training, prediction and evaluation (grading metrics, competition metric);
* ``notebooks``: what notebooks 08 and 09 run (``run_localisation``, ``run_mil``, the ablations, the tables).

The pieces it is built from live in the library's layers: the study images, the patient geometry and the
labelled cohort in :mod:`spinelib.data` (``study_images``, ``patient_geometry``, ``cohort``), bag cutting in
:mod:`spinelib.crops.bags`, the datasets in :mod:`spinelib.datasets` (``stacks``, ``bags``), the networks in
:mod:`spinelib.models` (``localisers``, ``mil``), the losses in :mod:`spinelib.losses` (``localisation``,
``mil``), the parameters in :mod:`spinelib.params.multistage`. ``spinelib grade`` (:mod:`spinelib.grading`)
loads what these notebooks trained.
"""
