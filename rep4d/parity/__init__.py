"""Golden-fixture parity: run a fixture case through the port and compare every output with the reference.

A case directory holds ``case.json``, the reference parameters in the released checkpoint layout (``params.npz``
or several ``*_params.npz``), ``inputs.npz`` and ``outputs.npz``. Each method has a runner module in this package
(``fourds``, ``moog``, ``rvm``, ``omnivorous``; the task-level protocol fixtures in ``protocols/``) that recognises
its cases from ``case.json`` (``accepts_case``), builds the model from ``case.json`` alone, converts the parameters
through the same code path as ``rep4d convert`` and returns its outputs under the reference's key names
(``run_case``). :data:`PARITY_RUNNERS` lists them; a runner module is imported only when a case is run.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Pass if ``|port - ref| <= atol + rtol * |ref|`` element-wise, or exact equality when ``exact``.

    ``unless``: name of a boolean reference key (broadcast over trailing axes); entries where it is True are not
    compared (e.g. pixels flagged as near ties of the official argmax). ``max_mismatch_fraction``: the fraction of
    compared entries allowed outside the tolerance (0: none). ``flip_channels``: each channel (last axis) may match
    as ``p`` or ``1 - p`` (PCA images in [0, 1] are defined only up to the sign of each principal component).
    """

    atol: float = 0.0
    rtol: float = 0.0
    exact: bool = False
    unless: str = ""
    max_mismatch_fraction: float = 0.0
    flip_channels: bool = False

    def describe(self) -> str:
        text = "exact" if self.exact else f"atol={self.atol:g}" + (f", rtol={self.rtol:g}" if self.rtol else "")
        if self.unless:
            text += f" where not {self.unless}"
        if self.max_mismatch_fraction:
            text += f", at most {self.max_mismatch_fraction:g} of entries differing"
        if self.flip_channels:
            text += ", each channel up to p <-> 1-p"
        return text


@dataclass
class ParityOutputs:
    """What a runner returns: arrays under the reference key names and the tolerance for each."""

    arrays: dict[str, np.ndarray]
    default: Tolerance
    per_key: dict[str, Tolerance] = field(default_factory=dict)

    def tolerance(self, key: str) -> Tolerance:
        return self.per_key.get(key, self.default)


@dataclass
class KeyResult:
    max_abs_error: float
    tolerance: Tolerance
    ok: bool
    note: str = ""


@dataclass
class ParityReport:
    case: str
    method: str
    results: dict[str, KeyResult]
    not_compared: list[str]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(result.ok for result in self.results.values())

    def to_json(self) -> dict:
        results = {}
        for key, result in self.results.items():
            entry = {
                "max_abs_error": result.max_abs_error,
                "tolerance": 0.0 if result.tolerance.exact else result.tolerance.atol,
                "ok": result.ok,
            }
            if result.tolerance.rtol:
                entry["rtol"] = result.tolerance.rtol
            if result.tolerance.exact:
                entry["exact"] = True
            if result.tolerance.unless:
                entry["unless"] = result.tolerance.unless
            if result.tolerance.max_mismatch_fraction:
                entry["max_mismatch_fraction"] = result.tolerance.max_mismatch_fraction
            if result.tolerance.flip_channels:
                entry["flip_channels"] = True
            if result.note:
                entry["note"] = result.note
            results[key] = entry
        return {"case": self.case, "method": self.method, "results": results, "not_compared": self.not_compared}


#: parity method -> module defining ``accepts_case(case, case_dir) -> bool`` and ``run_case(case_dir, case) ->
#: ParityOutputs``. A case runs through the first runner, in this order, that accepts it.
PARITY_RUNNERS = {
    "fourds": "rep4d.parity.fourds",
    "moog": "rep4d.parity.moog",
    "rvm": "rep4d.parity.rvm",
    "omnivorous": "rep4d.parity.omnivorous",
    "label_propagation": "rep4d.parity.protocols.label_propagation",
    "preprocess": "rep4d.parity.protocols.preprocess",
    "propagation_metrics": "rep4d.parity.protocols.propagation_metrics",
    "tapvid_queries": "rep4d.parity.protocols.tapvid_queries",
}


def case_fields(section: dict, fields: dict[str, str], defaults: dict | None = None) -> dict:
    """Config keyword arguments read from a ``case.json`` section: ``fields`` maps each config field to its case key.
    A key missing from ``section`` takes its value from ``defaults``; without a default it raises KeyError."""
    defaults = defaults or {}
    return {field: section[key] if key in section or key not in defaults else defaults[key] for field, key in fields.items()}


def load_case_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, never unpickling."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def compare(port: np.ndarray, reference: np.ndarray, tolerance: Tolerance, skip: np.ndarray | None = None) -> KeyResult:
    port = np.asarray(port)
    reference = np.asarray(reference)
    if port.shape != reference.shape:
        return KeyResult(float("inf"), tolerance, False, f"shape {port.shape} != reference {reference.shape}")
    if tolerance.flip_channels:
        port = _align_channel_flips(port, reference)
    if skip is not None or tolerance.max_mismatch_fraction:
        return _compare_masked(port, reference, tolerance, skip)
    if tolerance.exact or reference.dtype == bool or port.dtype == bool:
        equal = np.array_equal(port, reference)
        error = float(np.max(np.abs(port.astype(np.float64) - reference.astype(np.float64)))) if port.size else 0.0
        return KeyResult(error, Tolerance(exact=True), bool(equal))
    port64, ref64 = port.astype(np.float64), reference.astype(np.float64)
    nan_mismatch = np.isnan(port64) != np.isnan(ref64)
    with np.errstate(invalid="ignore"):  # inf - inf: equal infinities, counted as no error below
        diff = np.abs(np.nan_to_num(port64 - ref64, nan=0.0))
    error = float(diff.max()) if diff.size else 0.0
    within = diff <= tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(ref64))
    ok = bool(within.all()) and not bool(nan_mismatch.any())
    return KeyResult(error, tolerance, ok, "NaN pattern differs" if nan_mismatch.any() else "")


def _align_channel_flips(port: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each channel (last axis) of ``port`` as is or as ``1 - port``, whichever is closer to ``reference``."""
    port64, ref64 = port.astype(np.float64), reference.astype(np.float64)
    axes = tuple(range(port.ndim - 1))
    flip = np.abs((1.0 - port64) - ref64).max(axis=axes) < np.abs(port64 - ref64).max(axis=axes)
    return np.where(flip, 1.0 - port64, port64)


def _compare_masked(port: np.ndarray, reference: np.ndarray, tolerance: Tolerance, skip: np.ndarray | None) -> KeyResult:
    """:func:`compare` with the entries flagged by ``skip`` left out and ``max_mismatch_fraction`` allowed."""
    compared = np.ones(reference.shape, bool)
    if skip is not None:
        skip = np.asarray(skip, bool)
        skip = skip.reshape(skip.shape + (1,) * (reference.ndim - skip.ndim))
        compared = ~np.broadcast_to(skip, reference.shape)
    port64, ref64 = port.astype(np.float64)[compared], reference.astype(np.float64)[compared]
    nan_mismatch = np.isnan(port64) != np.isnan(ref64)
    diff = np.abs(np.nan_to_num(port64 - ref64, nan=0.0))
    if tolerance.exact or reference.dtype == bool or port.dtype == bool:
        bad = (diff != 0) | nan_mismatch
    else:
        bad = (diff > tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(ref64))) | nan_mismatch
    error = float(diff.max()) if diff.size else 0.0
    fraction = float(bad.mean()) if bad.size else 0.0
    note = f"{int(bad.sum())} of {bad.size} compared entries differ" + (
        f", {int((~compared).sum())} flagged entries skipped" if skip is not None else ""
    )
    return KeyResult(error, tolerance, fraction <= tolerance.max_mismatch_fraction, note)


def find_runner(case: dict, case_dir: Path) -> tuple[str, object]:
    """``(method, runner module)`` of the first runner of :data:`PARITY_RUNNERS` that accepts the case."""
    for method, module_name in PARITY_RUNNERS.items():
        module = importlib.import_module(module_name)
        if module.accepts_case(case, case_dir):
            return method, module
    raise ValueError(f"no parity runner recognises the case in {case_dir} (known methods: {', '.join(PARITY_RUNNERS)})")


def run_parity(case_dir: str | os.PathLike) -> ParityReport:
    """Run one fixture case and compare every reference output the port produces."""
    case_dir = Path(case_dir)
    case_file = case_dir / "case.json"
    if not case_file.is_file():
        raise FileNotFoundError(f"{case_dir} is not a fixture case: it has no case.json")
    case = json.loads(case_file.read_text())
    method, runner = find_runner(case, case_dir)
    reference = load_case_arrays(case_dir / "outputs.npz")
    produced = runner.run_case(case_dir, case)
    results = {
        key: compare(produced.arrays[key], reference[key], produced.tolerance(key),
                     reference.get(produced.tolerance(key).unless) if produced.tolerance(key).unless else None)
        for key in reference
        if key in produced.arrays
    }
    not_compared = sorted(key for key in reference if key not in produced.arrays)
    return ParityReport(case.get("name", case_dir.name), method, results, not_compared)


def format_report(report: ParityReport) -> str:
    lines = [f"case {report.case} ({report.method})"]
    width = max((len(key) for key in report.results), default=10)
    for key, result in report.results.items():
        status = "ok  " if result.ok else "FAIL"
        note = f"  ({result.note})" if result.note else ""
        lines.append(
            f"  {status} {key:<{width}}  max|err| {result.max_abs_error:.3e}  tolerance {result.tolerance.describe()}{note}"
        )
    if report.not_compared:
        lines.append(f"  not compared: {', '.join(report.not_compared)}")
    verdict = "PASS" if report.ok else "FAIL"
    lines.append(f"{verdict}: {sum(r.ok for r in report.results.values())}/{len(report.results)} outputs within tolerance")
    return "\n".join(lines)
