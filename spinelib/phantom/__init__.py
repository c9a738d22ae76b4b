"""The synthetic lumbar MRI phantom: a cohort in the RSNA 2024 layout with known latent severities.

``generate_phantom(out_dir, studies, seed, test_studies=, workers=, progress=, quirks=)`` writes the cohort;
``draw_latents_and_grades(n, seed)`` draws latents and grades without any image.

The modules, in the order a study is made (../shared/spec/phantom.md is the specification):

* :mod:`~spinelib.phantom.severity`: latent severities, disc degeneration, rater scores and grades;
* :mod:`~spinelib.phantom.anatomy`: one study's 3D anatomy, shaped by its latents, as tissue labels;
* :mod:`~spinelib.phantom.series`: the simulated centres and the series' slice geometry;
* :mod:`~spinelib.phantom.render`: labels -> MR signal -> stored pixels (partial volume, bias, Rician noise);
* :mod:`~spinelib.phantom.writer`: DICOM and CSV writing;
* :mod:`~spinelib.phantom.quirks`: the real RSNA files' quirks (RLE 12-bit, "T1"/"T2", instance gaps, extra
  annotation rows), on by default, drawn from their own stream so that they change no study's content;
* :mod:`~spinelib.phantom.cohort`: one study after another, then the cohort's CSVs and truth files.
"""

from spinelib.phantom.cohort import generate_phantom, generate_study
from spinelib.phantom.severity import calibrated_thresholds, draw_latents_and_grades, target_frequencies

__all__ = ["generate_phantom", "generate_study", "draw_latents_and_grades", "calibrated_thresholds",
           "target_frequencies"]
