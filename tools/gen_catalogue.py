#!/usr/bin/env python3
"""Generate crates/servicetitan-sandbox/catalogue.json from the official OpenAPI specs.

The catalogue is the sandbox's compact view of the ServiceTitan API: every operation
(module, method, full path template, parameters, request body and JSON response schemas)
plus the component schemas those operations reach. Schemas keep only the keywords that
validation and example generation need, so no descriptive text from the specs is carried
over, and the output stays small enough to embed in the sandbox binary.

The specs are not in the repository; their SHA-256 hashes are, in tools/openapi.sha256 (the
format of `sha256sum`, one line per spec file), and the catalogue records the hash of that file.
So the committed catalogue can be checked against the specs it was built from even where the
specs are absent, and a change of specs shows as a change of that file.

Usage (from the repository root; the specs directory comes from --specs or ST_OPENAPI_DIR):
    python3 tools/gen_catalogue.py --specs DIR          # regenerate the catalogue and the hashes
    python3 tools/gen_catalogue.py --check [--specs DIR]
        # exit 1 if the catalogue does not record tools/openapi.sha256, or, given the specs, if
        # they differ from the hashes or the catalogue differs from what they give; without the
        # specs, say on stderr what was not re-checked

Standard library only, deterministic output: the same specs always give the same bytes.
"""

import argparse
import hashlib
import json
import os
import re
import sys
from urllib.parse import urlparse

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "crates", "servicetitan-sandbox", "catalogue.json")
# The hashes of the specs the committed catalogue was built from.
HASHES = os.path.join(REPO_ROOT, "tools", "openapi.sha256")
# The directory of the specs when --specs is not given.
SPECS_ENV = "ST_OPENAPI_DIR"

# Where the specs were taken from (a public repository that publishes them, at a pinned commit);
# recorded so a reader of the catalogue can trace every fact back to a pinned upstream revision.
SOURCE = {
    "repository": "archdotdev/tap-service-titan",
    "commit": "0001e257eb9257866a0f845a82299edf8faa1eec",
}

# Keywords that carry validation meaning. Everything else (description, title, example,
# x-*, deprecated, default, pattern, maxProperties...) is dropped: prose must not be copied,
# and the Rust validator does not implement the remaining keywords anyway.
KEEP_SCALAR = {
    "type", "format", "nullable", "required", "enum",
    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
}
REF_PREFIX = "#/components/schemas/"
METHOD_ORDER = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]


def strip_schema(schema, module):
    """Return a copy of `schema` with only the validation keywords, refs rewritten."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise ValueError("schema is not an object: %r" % (schema,))
    out = {}
    for key, value in schema.items():
        if key == "$ref":
            if not value.startswith(REF_PREFIX):
                raise ValueError("unsupported $ref %r in module %s" % (value, module))
            out[key] = module + ":" + value[len(REF_PREFIX):]
        elif key == "properties":
            out[key] = {name: strip_schema(sub, module) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = strip_schema(value, module)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [strip_schema(sub, module) for sub in value]
        elif key in KEEP_SCALAR:
            out[key] = value
    return out


def refs_in(schema, found):
    """Collect every rewritten $ref ("module:Name") inside a stripped schema."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                found.add(value)
            elif key == "properties":
                for sub in value.values():
                    refs_in(sub, found)
            elif key in ("items", "additionalProperties"):
                refs_in(value, found)
            elif key in ("oneOf", "anyOf", "allOf"):
                for sub in value:
                    refs_in(sub, found)
    return found


def param_type(schema, components):
    """The JSON type of a parameter, looking through a $ref or a one-element oneOf wrapper."""
    seen = 0
    while isinstance(schema, dict) and seen < 8:
        if "type" in schema:
            return schema["type"]
        if "$ref" in schema:
            schema = components.get(schema["$ref"][len(REF_PREFIX):])
        elif schema.get("oneOf") and len(schema["oneOf"]) == 1:
            schema = schema["oneOf"][0]
        else:
            return None
        seen += 1
    return None


def json_schema_of(content):
    """The application/json schema of a request or response `content` map, or None."""
    media = (content or {}).get("application/json")
    if media is None or "schema" not in media:
        return None
    return media["schema"]


def load_module(path):
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    server_path = urlparse(spec["servers"][0]["url"]).path.strip("/")
    if not server_path:
        raise ValueError("%s: servers[0].url has no path" % path)
    module = server_path.split("/")[0]
    return spec, module, server_path


def spec_files(specs_dir):
    """The spec files of `specs_dir` (every *.json), sorted."""
    files = sorted(f for f in os.listdir(specs_dir) if f.endswith(".json"))
    if not files:
        raise SystemExit("no *.json specs in %s" % specs_dir)
    return files


def hash_specs(specs_dir):
    """The text of tools/openapi.sha256 for the specs in `specs_dir`."""
    lines = []
    for name in spec_files(specs_dir):
        with open(os.path.join(specs_dir, name), "rb") as handle:
            lines.append("%s  %s\n" % (hashlib.sha256(handle.read()).hexdigest(), name))
    return "".join(lines)


def digest(hashes_text):
    """What the catalogue records: the SHA-256 of the hashes file."""
    return hashlib.sha256(hashes_text.encode("utf-8")).hexdigest()


def parse_hashes(text):
    """{file name: sha256} from the text of a hashes file."""
    hashes = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split("  ", 1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise SystemExit("%s, line %d: expected '<sha256>  <file>'" % (os.path.relpath(HASHES), number))
        hashes[parts[1]] = parts[0]
    return hashes


def differences(committed_text, actual_text):
    """How the specs' hashes differ from the committed ones, one phrase per file."""
    committed, actual = parse_hashes(committed_text), parse_hashes(actual_text)
    found = []
    for name in sorted(set(committed) | set(actual)):
        if name not in actual:
            found.append("%s is missing" % name)
        elif name not in committed:
            found.append("%s is new" % name)
        elif committed[name] != actual[name]:
            found.append("%s has changed" % name)
    return found


def specs_dir(given):
    """The specs directory: --specs, else $ST_OPENAPI_DIR, else None. One that is named but is
    not a directory is an error, not a reason to skip."""
    where, source = given, "--specs"
    if not where:
        where, source = os.environ.get(SPECS_ENV, "").strip(), SPECS_ENV
    if not where:
        return None
    if not os.path.isdir(where):
        raise SystemExit("%s=%s is not a directory of OpenAPI specs" % (source, where))
    return where


def read_text(path):
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def check(specs, out=DEFAULT_OUT):
    """Checks the committed catalogue `out`: that it records the hashes in tools/openapi.sha256
    and, when `specs` is a directory, that the specs have those hashes and give that catalogue.
    Returns the problems found (empty when none); says on stderr what it could not re-check."""
    hashes, current = read_text(HASHES), read_text(out)
    if hashes is None:
        return ["%s is missing; run: python3 tools/gen_catalogue.py --specs DIR" % os.path.relpath(HASHES)]
    if current is None:
        return ["%s is missing; run: python3 tools/gen_catalogue.py --specs DIR" % os.path.relpath(out)]
    recorded = json.loads(current).get("source", {}).get("specs_sha256")
    if recorded != digest(hashes):
        return ["%s was not built from the specs hashed in %s (it records %s, the file hashes to %s); "
                "run: python3 tools/gen_catalogue.py --specs DIR"
                % (os.path.relpath(out), os.path.relpath(HASHES), recorded, digest(hashes))]
    if specs is None:
        print("not re-checked: %s against the OpenAPI specs, because no specs directory was given "
              "(set %s or pass --specs); checked only that it records the hashes in %s"
              % (os.path.relpath(out), SPECS_ENV, os.path.relpath(HASHES)), file=sys.stderr)
        return []
    changed = differences(hashes, hash_specs(specs))
    if changed:
        return ["the specs in %s differ from %s: %s; run: python3 tools/gen_catalogue.py --specs DIR"
                % (specs, os.path.relpath(HASHES), ", ".join(changed))]
    if current != render(build(specs, hashes)):
        return ["%s is out of date with the specs in %s; run: python3 tools/gen_catalogue.py --specs DIR"
                % (os.path.relpath(out), specs)]
    return []


def build(specs_dir, hashes_text):
    files = spec_files(specs_dir)

    modules = {}
    operations = []
    all_schemas = {}
    for name in files:
        spec, module, server_path = load_module(os.path.join(specs_dir, name))
        if module in modules:
            raise SystemExit("module %s appears in %s and %s" % (module, modules[module]["spec"], name))
        modules[module] = {"spec": name}
        components = spec.get("components", {}).get("schemas", {})
        for schema_name, schema in components.items():
            all_schemas[module + ":" + schema_name] = strip_schema(schema, module)

        for spec_path, item in spec["paths"].items():
            if "parameters" in item:
                # None of the pinned specs use path-level parameters; fail loudly rather
                # than silently dropping them if a future spec does.
                raise SystemExit("%s %s: path-level parameters are not supported" % (name, spec_path))
            for method, op in item.items():
                if method not in METHOD_ORDER:
                    continue
                params = []
                for prm in op.get("parameters", []):
                    if "$ref" in prm:
                        raise SystemExit("%s %s: parameter $ref is not supported" % (name, spec_path))
                    schema = prm.get("schema", {})
                    params.append({
                        "name": prm["name"],
                        "in": prm["in"],
                        "type": param_type(schema, components),
                        # OpenAPI: path parameters are always required.
                        "required": bool(prm.get("required", False)) or prm["in"] == "path",
                        "schema": strip_schema(schema, module),
                    })
                body = json_schema_of(op.get("requestBody", {}).get("content"))
                responses = {}
                produces = None
                for code, resp in op.get("responses", {}).items():
                    schema = json_schema_of(resp.get("content"))
                    responses[code] = None if schema is None else strip_schema(schema, module)
                    media = sorted(resp.get("content") or {})
                    if code.startswith("2") and schema is None and media and produces is None:
                        produces = media[0]
                entry = {
                    "id": op.get("operationId"),
                    "module": module,
                    "method": method.upper(),
                    "path": server_path + "/" + spec_path.lstrip("/"),
                    "params": params,
                    "body": None if body is None else strip_schema(body, module),
                    "responses": responses,
                }
                # Only the few successes that are not JSON (recordings) name their media type.
                if produces is not None:
                    entry["produces"] = produces
                operations.append(entry)

    operations.sort(key=lambda o: (o["path"], METHOD_ORDER.index(o["method"].lower())))

    # Keep only the component schemas reachable from some operation (transitively).
    reachable = set()
    pending = []
    for op in operations:
        roots = [p["schema"] for p in op["params"]] + [op["body"]] + list(op["responses"].values())
        for root in roots:
            pending.extend(refs_in(root, set()))
    while pending:
        ref = pending.pop()
        if ref in reachable:
            continue
        if ref not in all_schemas:
            raise SystemExit("dangling $ref %s" % ref)
        reachable.add(ref)
        pending.extend(refs_in(all_schemas[ref], set()))
    schemas = {key: all_schemas[key] for key in sorted(reachable)}
    source = dict(SOURCE, specs_sha256=digest(hashes_text))
    return {"source": source, "modules": modules, "operations": operations, "schemas": schemas}


def render(catalogue):
    """Compact JSON with one operation / one schema per line, so diffs stay readable."""
    def dump(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    lines = ["{"]
    lines.append('"modules":' + dump(catalogue["modules"]) + ",")
    lines.append('"operations":[')
    ops = catalogue["operations"]
    for i, op in enumerate(ops):
        lines.append(dump(op) + ("," if i + 1 < len(ops) else ""))
    lines.append("],")
    lines.append('"schemas":{')
    items = sorted(catalogue["schemas"].items())
    for i, (key, schema) in enumerate(items):
        lines.append(dump(key) + ":" + dump(schema) + ("," if i + 1 < len(items) else ""))
    lines.append("},")
    lines.append('"source":' + dump(catalogue["source"]))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", help="directory of OpenAPI *.json specs (default: $%s)" % SPECS_ENV)
    parser.add_argument("--out", default=DEFAULT_OUT, help="catalogue file to write (or check)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if --out differs from what would be generated")
    args = parser.parse_args(argv)
    specs = specs_dir(args.specs)

    if args.check:
        problems = check(specs, args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        print("%s is up to date" % os.path.relpath(args.out))
        return 0

    if specs is None:
        parser.error("no specs: pass --specs DIR or set %s" % SPECS_ENV)
    hashes = hash_specs(specs)
    text = render(build(specs, hashes))
    # Round-trip guard: the line-by-line rendering must still be one valid JSON document.
    json.loads(text)
    with open(HASHES, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(hashes)
    with open(args.out, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    print("wrote %s (%d bytes) and %s" % (os.path.relpath(args.out), len(text.encode("utf-8")), os.path.relpath(HASHES)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
