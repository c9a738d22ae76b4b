"""The multi-stage paper's pipeline: localise (slice, then in-plane point, sagittal and axial), then grade by MIL.

* ``inputs``: a study folder → its series, resampled stacks and slices (what every stage reads);
* ``geometry``: sagittal → axial projection through the DICOM patient geometry (Stage 1c's slice);
* ``instance``: Stage 1a, instance-number prediction (3D CNN, classification + regression heads);
* ``coords``: Stages 1b/1c, in-plane coordinates on a chosen slice (2D CNN, level-separated heads);
* ``localisation``: training and prediction of Stage 1 over a cohort, and for one study;
* ``bags``: MIL bags with pre-crop jitter (simulated Stage 1 errors) and post-crop augmentation;
* ``severity``: Stage 2 training and evaluation; ``grade``: the end-to-end grader of ``spinelib grade``.
"""
