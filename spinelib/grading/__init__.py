"""Grading studies nobody annotated (``spinelib grade``): the end-to-end grader and, for its report, each disc's
continuous severity from the ranking study.

* ``grader``: Stage 1 (localise) then Stage 2 (MIL) over one study or a whole root, rows in the submission format;
* ``disc_scores``: each level's disc volume cut at the predicted canal point, scored by a ranking run.
"""
