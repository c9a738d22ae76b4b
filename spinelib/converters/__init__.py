"""Other cohorts → a crop store the ranking study reads (notebooks 04-07), one module per cohort.

* ``genodisc``: Genodisc (private; Pfirrmann and other disc grades per level);
* ``spider``: SPIDER (public, Zenodo; .mha volumes and masks, radiological gradings);
* ``command``: the shared command-line wrapper (logging, one-line errors, the store summary).

Converters sit above the crop store (:mod:`spinelib.crops`): they read a cohort with the data layer and write
its discs through the store's allocation functions.
"""
