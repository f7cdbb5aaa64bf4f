#!/usr/bin/python3
"""Validate JSON on stdin against one of the OCI runtime spec's schemas.

    schema_check.py SCHEMA_DIR SCHEMA_NAME < document.json

Uses Debian's python3-jsonschema (integration/test.sh installs it). The
schemas reference each other by relative file name; they are all loaded
into the resolver's store so no network access is ever attempted.
"""
import json
import pathlib
import sys

import jsonschema


def main() -> int:
    base = pathlib.Path(sys.argv[1]).resolve()
    name = sys.argv[2]
    uri = base.as_uri() + "/"
    store = {}
    for f in base.glob("*.json"):
        store[uri + f.name] = json.loads(f.read_text())
    schema = store[uri + name]
    resolver = jsonschema.RefResolver(base_uri=uri, referrer=schema, store=store)
    doc = json.load(sys.stdin)
    try:
        jsonschema.validate(doc, schema, resolver=resolver)
    except jsonschema.ValidationError as e:
        print(f"{name}: {e.message} at {list(e.absolute_path)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
