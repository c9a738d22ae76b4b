"""The synthetic lumbar MRI phantom: a cohort in the RSNA 2024 layout with known latent severities.

``generate_phantom(out_dir, studies, seed, test_studies=, workers=, progress=)`` writes the cohort;
``draw_latents_and_grades(n, seed)`` draws latents and grades without any image.
"""

from spinelib.phantom.cohort import generate_phantom, generate_study
from spinelib.phantom.severity import calibrated_thresholds, draw_latents_and_grades, target_frequencies

__all__ = ["generate_phantom", "generate_study", "draw_latents_and_grades", "calibrated_thresholds",
           "target_frequencies"]
