"""4DS against the golden fixtures of the official implementation: every output key at atol 5e-5."""

import json
import subprocess
import sys

import pytest

from rep4d.parity import run_parity

from testing_utils import fixture_cases

CASES = [case for case in fixture_cases("4ds") if json.loads((case / "case.json").read_text()).get("layout")]


def test_visible_cases_exist():
    assert {case.name for case in CASES} >= {"tiny_backbone", "tiny_depth"}


@pytest.mark.parametrize("case_dir", CASES, ids=lambda path: path.name)
def test_parity(case_dir):
    report = run_parity(case_dir)
    assert (report.method, report.not_compared) == ("fourds", []), f"outputs not produced: {report.not_compared}"
    assert report.ok, f"outside atol 5e-5: { {key: r.max_abs_error for key, r in report.results.items() if not r.ok} }"
    # the fixture README's tolerance on every key, never looser
    assert {(r.tolerance.atol, r.tolerance.rtol) for r in report.results.values()} == {(5e-5, 0)}


def test_parity_cli_json(fixtures_dir):
    case = fixtures_dir / "4ds" / "tiny_backbone"
    result = subprocess.run(
        [sys.executable, "-m", "rep4d", "parity", str(case), "--json"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["case"] == "tiny_backbone"
    assert report["not_compared"] == []
    assert set(report["results"]["readout_features"]) >= {"max_abs_error", "tolerance", "ok"}
    assert all(entry["ok"] for entry in report["results"].values())


def test_parity_detects_a_wrong_port(fixtures_dir, monkeypatch):
    """The comparison is live: an eps-1e-5 LayerNorm (PyTorch's default) must fail, as the fixture README says."""
    import rep4d.modeling.modeling_fourds as modeling

    original = modeling.FourDSLayer.__init__

    def wrong_eps(self, config):
        original(self, config)
        self.attention_norm.eps = 1e-5
        self.mlp_norm.eps = 1e-5

    monkeypatch.setattr(modeling.FourDSLayer, "__init__", wrong_eps)
    report = run_parity(fixtures_dir / "4ds" / "tiny_backbone")
    assert not report.ok
    assert not report.results["features"].ok


def test_parity_cli_fails_on_bad_case(tmp_path):
    (tmp_path / "case.json").write_text(json.dumps({"name": "nothing"}))
    result = subprocess.run([sys.executable, "-m", "rep4d", "parity", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2  # a bad case is wrong input: exit status 2 (rep4d.cli)
    assert "no parity runner" in result.stderr
