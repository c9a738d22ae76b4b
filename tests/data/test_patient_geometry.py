"""Sagittal → axial projection through the DICOM patient geometry."""

from __future__ import annotations

import numpy as np

from spinelib.data.dicom import read_series
from spinelib.data.rsna import read_dataset, series_dir
from spinelib.data.patient_geometry import Geometry, locate, project, to_patient


def _axial_plane_geometry() -> Geometry:
    # three axial slices 4 mm apart along z; rows run along +y, columns along +x; 0.5 mm pixels
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 8.0]])
    orientations = np.tile([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], (3, 1))
    return Geometry(positions, orientations, np.array([0.5, 0.5]), (3, 100, 100))


def test_locate_by_hand():
    k, x, y, distance = locate(_axial_plane_geometry(), np.array([10.0, 5.0, 7.0]))
    assert (k, x, y) == (2, 20.0, 10.0)          # nearest plane z = 8; col = 10 / 0.5, row = 5 / 0.5
    assert distance == 1.0
    assert np.allclose(to_patient(_axial_plane_geometry(), 2, 20.0, 10.0), [10.0, 5.0, 8.0])


def test_project_skips_series_that_do_not_hold_the_point():
    outside = np.array([-10.0, 5.0, 4.0])        # column −20: outside every image
    assert project(outside, {1: _axial_plane_geometry()}) is None


def test_sagittal_canal_points_land_on_the_annotated_axial_slice(tiny_phantom):
    """On a phantom study, every spinal canal point projects onto the axial slice annotated for subarticular
    stenosis at that level (or its neighbour; the annotator's slice and the disc centre can differ by one),
    between the left and right subarticular points."""
    dataset = read_dataset(tiny_phantom)
    labels = dataset.labels[dataset.labels["series_id"].notna()]
    checked = exact = 0
    for study, at in labels.groupby("study_id"):
        scs = at[at["condition"] == "spinal_canal_stenosis"]
        axial_ids = dataset.series[(dataset.series["study_id"] == study)
                                   & (dataset.series["series_description"] == "Axial T2")]["series_id"]
        if scs.empty or axial_ids.empty:
            continue
        sagittal = read_series(series_dir(tiny_phantom, study, int(scs["series_id"].iloc[0])), normalise=None)
        axial = {int(s): read_series(series_dir(tiny_phantom, study, int(s)), normalise=None) for s in axial_ids}
        for row in scs.itertuples():
            sides = at[(at["level"] == row.level) & at["condition"].str.contains("subarticular")]
            if sides.empty or int(sides["series_id"].iloc[0]) not in axial:
                continue
            point = to_patient(Geometry.of(sagittal), sagittal.index_of(row.instance_number), row.x, row.y)
            target = int(sides["series_id"].iloc[0])
            k, x, y, distance = locate(Geometry.of(axial[target]), point)
            annotated = axial[target].index_of(int(sides["instance_number"].iloc[0]))
            assert abs(k - annotated) <= 1, (study, row.level)  # adjacent axial slices are ~1 slab apart
            exact += k == annotated
            assert distance < 3.0                                              # mm off the slice plane
            assert sides["x"].min() - 5 < x < sides["x"].max() + 5             # between the two sides
            assert abs(y - sides["y"].mean()) < 10
            checked += 1
    assert checked >= 5 and exact >= 0.8 * checked
