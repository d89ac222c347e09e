"""Validates the JSON document on stdin against the JSON Schema in argv[1]
(draft 6); prints every error and exits 1 if there is one."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
doc = json.load(sys.stdin)
errors = list(jsonschema.Draft6Validator(schema).iter_errors(doc))
for e in errors:
    print(f"{list(e.absolute_path)}: {e.message}")
sys.exit(1 if errors else 0)
