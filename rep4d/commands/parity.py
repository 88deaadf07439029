"""``rep4d parity``: run golden-fixture cases through the port and compare every output."""

from __future__ import annotations

import argparse
import json
import sys

from rep4d.cli import module_command

EXAMPLES = """
examples:
  rep4d parity tests/fixtures/4ds/tiny_depth
  rep4d parity tests/fixtures/*/tiny_* --json

A case directory holds case.json, the reference parameters in the released checkpoint layout (*params.npz),
inputs.npz and outputs.npz. The model is built from case.json alone and the parameters go through the same
conversion code as `rep4d convert`. The exit status is 0 only if every compared output is within tolerance.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("cases", nargs="+", metavar="CASE_DIR", help="fixture case directories")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per case: {case, results: {KEY: {max_abs_error, tolerance, ok}}, "
                        "not_compared}")


def run(args: argparse.Namespace) -> int:
    from rep4d.parity import format_report, run_parity

    all_ok, bad_input = True, False
    for case_dir in args.cases:
        try:
            report = run_parity(case_dir)
        except (FileNotFoundError, ValueError) as error:
            # One bad case must not hide the others: report it in the same format and go on (exit status 2 at the end).
            if args.json:
                print(json.dumps({"case": case_dir, "error": " ".join(str(error).split()), "type": type(error).__name__}))
            else:
                print(f"error: {case_dir}: {' '.join(str(error).split())}", file=sys.stderr)
            bad_input = True
            continue
        all_ok &= report.ok
        print(json.dumps(report.to_json()) if args.json else format_report(report))
    return 2 if bad_input else 0 if all_ok else 1


COMMAND = module_command(
    __name__,
    help="check the port against golden fixture cases (max abs error per output vs tolerance)",
    order=20,
)
