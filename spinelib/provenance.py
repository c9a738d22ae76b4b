"""What a model was trained on, recorded beside its checkpoints, and the warning when it grades other data.

Every study that writes checkpoints also writes ``provenance.json`` in the same folder:

* ``data``: ``"phantom"`` (the data root holds the ``phantom_params.json`` the generator writes) or ``"real"``;
* ``data_root``: the root, relative to the repository where it lies inside it;
* ``dvc_md5``: the DVC hash of that root where ``dvc.lock`` or a ``.dvc`` file records it (else ``None``), so two
  runs on "the same" folder can be told apart;
* ``phantom_version``: the generator's version (phantom only);
* ``params``: the parameter class and its profile (``default``, ``paper``, ``tiny`` or ``custom`` with the fields
  that differ from the defaults).

``spinelib grade`` prints it and warns, in the log and in the submission's companion file, when a model trained on
the phantom grades a study the phantom did not write (the phantom stamps every DICOM file's meta header with
``ImplementationVersionName = SPINELIB_PHANTOM``): such grades say nothing about a real patient.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from spinelib.params.base import Params
from spinelib.paths import portable_path, repo_root, resolve

FILE_NAME = "provenance.json"
PHANTOM_MARK = "SPINELIB_PHANTOM"   # the phantom's DICOM ImplementationVersionName (spinelib/phantom/writer.py)


def dvc_md5(root: str | Path) -> str | None:
    """The DVC hash recorded for folder ``root``: an out of ``dvc.lock`` or of a ``*.dvc`` file at the repo root."""
    root = Path(root).resolve()
    try:
        repo = repo_root(root)
    except FileNotFoundError:
        try:
            repo = repo_root()
        except FileNotFoundError:
            return None
    outs: list[dict[str, Any]] = []
    lock = repo / "dvc.lock"
    if lock.exists():
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            outs += stage.get("outs", [])
    for tracked in sorted(p for p in repo.glob("*.dvc") if p.is_file()):  # not the .dvc/ folder
        outs += (yaml.safe_load(tracked.read_text()) or {}).get("outs", [])
    for out in outs:
        if (repo / out.get("path", "")).resolve() == root and out.get("md5"):
            return str(out["md5"])
    return None


def data_provenance(data_root: str | Path | None) -> dict[str, Any]:
    """What ``data_root`` is: phantom or real, where, its DVC hash and (phantom) the generator version.

    ``None`` (a root nobody recorded, e.g. a crop store assembled by hand in the tests) gives the ``"unknown"``
    record, with every other field ``None``.
    """
    if data_root is None:
        return {"data": "unknown", "data_root": None, "dvc_md5": None, "phantom_version": None}
    root = Path(data_root).resolve()
    phantom_record = root / "phantom_params.json"
    is_phantom = phantom_record.exists()
    version = json.loads(phantom_record.read_text()).get("version") if is_phantom else None
    return {"data": "phantom" if is_phantom else "real", "data_root": portable_path(root),
            "dvc_md5": dvc_md5(root), "phantom_version": version}


def params_profile(params: Params) -> dict[str, Any]:
    """Which profile ``params`` is: default, paper, tiny, or custom (then the fields that differ from the defaults)."""
    cls = type(params)
    for name, profile in (("default", cls()), ("paper", cls.paper()), ("tiny", cls.tiny())):
        if params == profile:
            return {"class": cls.__name__, "profile": name}
    defaults = {name: value for name, value, _, _ in cls().rows()}
    changed = [name for name, value, _, _ in params.rows() if defaults.get(name) != value]
    return {"class": cls.__name__, "profile": "custom", "differs_from_default": changed}


def write_provenance(folder: str | Path, data_root: str | Path | None, params: Params) -> dict[str, Any]:
    """Write ``folder/provenance.json`` for checkpoints trained on ``data_root`` with ``params``; returns the record.

    The only writer of the file; ``data_root=None`` records an unknown root (:func:`data_provenance`).
    """
    record = {**data_provenance(data_root), "params": params_profile(params)}
    Path(folder, FILE_NAME).write_text(json.dumps(record, indent=1) + "\n")
    return record


def store_data_root(store: Any) -> Path | None:
    """The data root a crop store records, resolved against the repository; ``None`` when it records none."""
    try:
        data_root = store.config()["data_root"]
    except (FileNotFoundError, KeyError):   # a store assembled by hand (tests) records no data root
        return None
    return resolve(data_root)


def write_store_provenance(folder: str | Path, store: Any, params: Params) -> dict[str, Any]:
    """:func:`write_provenance` for models trained from a crop store: its data root is the one the store records
    (an unknown root when it records none)."""
    return write_provenance(folder, store_data_root(store), params)


def read_provenance(folder: str | Path) -> dict[str, Any] | None:
    """The record of a model folder, or ``None`` when it has none (checkpoints older than the record)."""
    path = Path(folder, FILE_NAME)
    return json.loads(path.read_text()) if path.exists() else None


def describe(record: dict[str, Any] | None) -> str:
    """One line for the log: what the models were trained on."""
    if record is None:
        return "trained on: unknown (no provenance.json beside the checkpoints)"
    md5 = record.get("dvc_md5") or "not tracked by DVC"
    version = f", phantom v{record['phantom_version']}" if record.get("phantom_version") else ""
    params = record.get("params", {})
    return (f"trained on: {record['data']} data at {record['data_root']} (DVC {md5}{version}), "
            f"{params.get('class', '?')} {params.get('profile', '?')} profile")


def is_phantom_stamp(implementation_name: str) -> bool:
    """Whether a DICOM meta header's ImplementationVersionName is the phantom's stamp."""
    return implementation_name.strip() == PHANTOM_MARK


def written_by_phantom(dicom_file: str | Path) -> bool:
    """Whether the phantom wrote this DICOM file (its meta header's implementation name)."""
    import pydicom

    meta = pydicom.dcmread(dicom_file, stop_before_pixels=True, specific_tags=[]).file_meta
    return is_phantom_stamp(str(getattr(meta, "ImplementationVersionName", "")))


def mismatch_warning(records: dict[str, dict[str, Any] | None], real_studies: list[str]) -> str | None:
    """The loud warning when phantom-trained models grade studies the phantom did not write (else ``None``).

    ``records``: model folder name → its provenance; ``real_studies``: ids of the graded studies not written by the
    phantom.
    """
    phantom_models = [name for name, record in records.items() if record and record.get("data") == "phantom"]
    if not phantom_models or not real_studies:
        return None
    shown = ", ".join(real_studies[:5]) + (f" and {len(real_studies) - 5} more" if len(real_studies) > 5 else "")
    return (f"WARNING: the models ({', '.join(phantom_models)}) were trained on the synthetic phantom, but "
            f"{len(real_studies)} graded stud{'y was' if len(real_studies) == 1 else 'ies were'} not written by it "
            f"({shown}). These grades say nothing about real patients: train on real data first "
            f"(README, 'Running on the real data').")
