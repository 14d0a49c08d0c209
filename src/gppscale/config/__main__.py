"""``python -m gppscale.config``: print the run-spec JSON Schema, or check a spec and print it resolved."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from gppscale.config._load import load_spec, parse_override
from gppscale.config._schema import spec_json_schema_text
from gppscale.errors import SpecError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for an invalid spec)."""
    parser = argparse.ArgumentParser(
        prog="python -m gppscale.config",
        description="Print the run-spec JSON Schema, or check a spec and print it with its defaults.",
    )
    parser.add_argument("spec", nargs="?", help="run spec YAML to validate")
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema (pipeline/schema.json)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a dotted key"
    )
    args = parser.parse_args(argv)
    if args.schema:
        sys.stdout.write(spec_json_schema_text())
        return 0
    if args.spec is None:
        parser.error("give a run spec to check, or --schema")
    try:
        spec = load_spec(args.spec, dict(parse_override(item) for item in args.set))
    except SpecError as e:
        print(e, file=sys.stderr)
        return 2
    print(json.dumps(spec.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
