#!/usr/bin/env python3
"""Reads the API descriptions the vendors publish (../shared/vendor-api, see
its SOURCES.md) and writes the facts the catalog's conformance test needs,
per platform, to tests/conformance/facts.json:

  for every operation the descriptions hold: the method, the URL template
  (server + path, `{name}` for a variable segment), the required query
  parameters and headers, the success statuses, the JSON pointers its
  success response has (objects' properties, two levels deep: where the
  records and the paging fields are), and for a GET the lists it answers
  with and their items' fields (type, and the description's example), from
  which the tests' fakes build their pages.

The facts are committed, so a fresh clone runs the test without
../shared; CI runs this again when ../shared is there and fails if the
output differs (`--check`). Standard library and PyYAML only.

Usage: generate.py [--vendor-api DIR] [--out FILE] [--check]
"""

import argparse
import gzip
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPTH = 2

# Which descriptions speak for which catalog platform.
SOURCES = {
    "stripe": [("openapi", "stripe/spec3.yaml")],
    "klaviyo": [("openapi", f"klaviyo/stable-categories-{c}.json") for c in ["accounts", "profiles", "campaigns", "events"]],
    "amazon_seller": [("openapi", "amazon-sp-api/ordersV0.json"), ("openapi", "amazon-sp-api/sellers.json")],
    "pinterest_ads": [("openapi", "pinterest/v5-openapi.json")],
    "bigcommerce": [("openapi", f"bigcommerce/{f}") for f in
                    ["orders.v2.oas2.yml", "store_information.v2.yml", "products_catalog.v3.yml", "customers.v3.yml"]],
    "google_analytics": [("discovery", "google/analyticsadmin.v1beta.json"), ("discovery", "google/analyticsdata.v1beta.json")],
    "meta_ads": [("meta", f"meta/{n}.json") for n in ["User", "AdAccount", "Campaign", "AdsInsights", "AdReportRun"]],
    "tiktok_ads": [("openapi", "tiktok/advertiser_info.yml"), ("openapi", "tiktok/report_integrated_get.yml")],
    "amazon_ads": [("postman", "amazon-ads/Amazon_Ads_API.postman_collection.noscripts.json")],
    "x_ads": [("postman", "x-ads/TwitterAdsAPI_postman_collection_v2-1.noscripts.json")],
    "microsoft_ads": [("wsdl", "microsoft-ads/v13-customermanagement_service.wsdl.xml"),
                      ("wsdl", "microsoft-ads/v13-reporting_service.wsdl.xml")],
    "shopify": [("graphql", "shopify/admin_schema_2025-01.json.gz")],
}

# Platforms the catalog also POSTs to (report requests: GA4 runReport,
# Amazon Ads reporting v3): their POST operations are facts too, with the
# request body's fields.
POST_FACTS = {"google_analytics", "amazon_ads", "pinterest_ads"}

# What the descriptions leave out but the vendors document, stated once.
# Graph API edges page in an envelope (developers.facebook.com/docs/graph-api/results).
META_EDGE_POINTERS = ["/data", "/paging", "/paging/cursors", "/paging/cursors/after", "/paging/cursors/before", "/paging/next", "/paging/previous"]
# TikTok's descriptions give servers without a scheme and no version prefix;
# the SDK calls them under https://business-api.tiktok.com/open_api/v1.3.
TIKTOK_BASE = "https://business-api.tiktok.com/open_api/v1.3"


def load(path):
    text = path.read_bytes()
    if path.suffix == ".gz":
        text = gzip.decompress(text)
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    return json.loads(text)


def resolve(doc, node, seen=()):
    """Follows a local $ref (#/components/..., #/definitions/...)."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            return {}
        seen = seen + (ref,)
        target = doc
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        node = target
    return node if isinstance(node, dict) else {}


def pointers(doc, schema, prefix="", depth=DEPTH, seen=()):
    """The JSON pointers of an object schema's properties (allOf, oneOf and
    anyOf merged), `depth` levels deep."""
    out = set()
    if depth == 0:
        return out
    schema = resolve(doc, schema, seen)
    parts = [schema] + [resolve(doc, s, seen) for key in ("allOf", "oneOf", "anyOf") for s in schema.get(key, [])]
    for part in parts:
        for name, sub in (part.get("properties") or {}).items():
            p = f"{prefix}/{name}"
            out.add(p)
            out |= pointers(doc, sub, p, depth - 1, seen)
        for key in ("allOf", "oneOf", "anyOf"):
            if part is not schema:
                for s in part.get(key, []):
                    out |= pointers(doc, s, prefix, depth, seen)
    return out


def kind(doc, schema, seen=()):
    """A field's type as the fakes need it: `integer`, `number`, `boolean`,
    `date-time`, `date`, `string`, `object` or `array`."""
    schema = resolve(doc, schema, seen)
    for key in ("allOf", "oneOf", "anyOf"):
        if not schema.get("type") and schema.get(key):
            return kind(doc, schema[key][0], seen)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t == "string" and schema.get("format") in ("date-time", "date"):
        return schema["format"]
    if t in ("integer", "number", "boolean", "string", "array"):
        return t
    return "object" if (t == "object" or schema.get("properties")) else "string"


def record_lists(doc, schema, prefix="", depth=3, seen=()):
    """Each list a response holds within `depth` levels (where records
    are), as pointer -> {field: kind, or [kind, example]} of its items."""
    out = {}
    schema = resolve(doc, schema, seen)
    if kind(doc, schema, seen) == "array" or "items" in schema:
        items = resolve(doc, schema.get("items") or {}, seen)
        parts = [items] + [resolve(doc, s, seen) for key in ("allOf", "oneOf", "anyOf") for s in items.get(key, [])]
        fields = {}
        for part in parts:
            for name, sub in (part.get("properties") or {}).items():
                sub = resolve(doc, sub, seen)
                example = sub.get("example")
                k = kind(doc, sub, seen)
                fields[name] = [k, example] if isinstance(example, (str, int, float, bool)) else k
        if fields:
            out[prefix] = fields
        return out
    if depth == 0:
        return out
    parts = [schema] + [resolve(doc, s, seen) for key in ("allOf", "oneOf", "anyOf") for s in schema.get(key, [])]
    for part in parts:
        for name, sub in (part.get("properties") or {}).items():
            out.update(record_lists(doc, sub, f"{prefix}/{name}", depth - 1, seen))
    return out


def url_join(base, path):
    return base.rstrip("/") + "/" + path.lstrip("/")


def server_base(doc, default=""):
    if "servers" in doc:
        server = doc["servers"][0]
        url = server["url"]
        if not url.startswith("http"):
            url = "https://" + url
        return url
    if "host" in doc:  # Swagger 2
        return "https://" + doc["host"] + (doc.get("basePath") or "")
    return default


def properties(doc, schema, seen=()):
    """The property names of an object schema, its `allOf` parts merged."""
    schema = resolve(doc, schema, seen)
    names = set(schema.get("properties") or {})
    for part in schema.get("allOf") or []:
        names |= properties(doc, part, seen)
    return names


def openapi_ops(doc, source):
    base = server_base(doc)
    if source.startswith("tiktok/"):
        base = TIKTOK_BASE
    ops = []
    for path, item in (doc.get("paths") or {}).items():
        item = resolve(doc, item)
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete") or not isinstance(op, dict):
                continue
            params = [resolve(doc, p) for p in shared + op.get("parameters", [])]
            query = sorted({p["name"] for p in params if p.get("in") == "query" and p.get("required")})
            maxima = {p["name"]: resolve(doc, p.get("schema") or p)["maximum"] for p in params
                      if p.get("in") == "query" and "maximum" in resolve(doc, p.get("schema") or p)}
            headers = sorted({p["name"].lower() for p in params if p.get("in") == "header" and p.get("required")})
            success = sorted(int(c) for c in op.get("responses", {}) if str(c).isdigit() and 200 <= int(c) < 300)
            fields = set()
            lists = {}
            for code in success:
                response = resolve(doc, op["responses"][str(code)] if str(code) in op["responses"] else op["responses"][code])
                schema = response.get("schema")
                if schema is None:
                    content = response.get("content") or {}
                    for media in content.values():
                        schema = media.get("schema")
                        if schema:
                            break
                if schema:
                    fields |= pointers(doc, schema)
                    if method == "get":
                        lists.update(record_lists(doc, schema))
            body_fields = []
            for media in (resolve(doc, op.get("requestBody") or {}).get("content") or {}).values():
                if media.get("schema"):
                    body_fields = sorted(properties(doc, media["schema"]))
                    break
            ops.append({
                **({"body_fields": body_fields} if body_fields and method != "get" else {}),
                "method": method.upper(),
                "url": url_join(base, path),
                "required_query": query,
                **({"query_maxima": maxima} if maxima else {}),
                "required_headers": headers,
                "success": success,
                "response_pointers": sorted(fields),
                "record_lists": lists,
                "source": source,
            })
    return ops


def discovery_maximum(param):
    """A Google discovery parameter's maximum: its `maximum`, or the one its
    description states ("The maximum value is 200")."""
    if "maximum" in param:
        return int(param["maximum"])
    found = re.search(r"maximum (?:value|page size) is (\d+)", param.get("description", ""), re.IGNORECASE)
    return int(found.group(1)) if found else None


def discovery_ops(doc, source):
    base = doc["rootUrl"] + doc.get("servicePath", "")
    ops = []

    def walk(resources):
        for resource in resources.values():
            for method in (resource.get("methods") or {}).values():
                path = method.get("flatPath") or method["path"]
                params = method.get("parameters") or {}
                query = sorted(n for n, p in params.items() if p.get("required") and p.get("location") == "query")
                maxima = {n: limit for n, p in params.items() if p.get("location") == "query"
                          for limit in [discovery_maximum(p)] if limit is not None}
                response = method.get("response", {}).get("$ref")
                fields = pointers({"schemas": doc["schemas"]}, {"$ref": f"#/schemas/{response}"}) if response else set()
                body = method.get("request", {}).get("$ref")
                body_fields = sorted(doc["schemas"].get(body, {}).get("properties", {})) if body else []
                ops.append({
                    **({"body_fields": body_fields} if body_fields else {}),
                    "method": method["httpMethod"],
                    "url": url_join(base, path),
                    "required_query": query,
                    **({"query_maxima": maxima} if maxima else {}),
                    "required_headers": [],
                    "success": [200],
                    "response_pointers": sorted(fields),
                    "source": source,
                })
            walk(resource.get("resources") or {})

    walk(doc.get("resources") or {})
    return ops


def meta_ops(doc, source, version):
    node = pathlib.Path(source).stem
    ops = []
    fields = sorted({f"/{f['name']}" for f in doc.get("fields", [])})
    for api in doc.get("apis", []):
        endpoint = api.get("endpoint") or ""
        edge = endpoint and not endpoint.startswith("#")
        url = f"https://graph.facebook.com/{version}/{{{node}_id}}" + (f"/{endpoint}" if edge else "")
        ops.append({
            "method": api["method"],
            "url": url,
            "required_query": sorted({p["name"] for p in api.get("params", []) if p.get("required")}),
            "required_headers": [],
            "success": [200],
            "response_pointers": META_EDGE_POINTERS if edge else fields,
            "source": source,
        })
    # A node read (GET /{id}?fields=...) answers the node's fields.
    ops.append({"method": "GET", "url": f"https://graph.facebook.com/{version}/{{{node}_id}}", "required_query": [],
                "required_headers": [], "success": [200], "response_pointers": fields, "source": source})
    return ops


def postman_ops(doc, source, env):
    ops = []
    variables = {v["key"]: v.get("value", "") for v in doc.get("variable", [])}
    variables.update(env)

    def substitute(text):
        for _ in range(3):
            text = re.sub(r"\{\{(\w+)\}\}", lambda m: variables.get(m.group(1), "{" + m.group(1) + "}") or "{" + m.group(1) + "}", text)
        return text

    def walk(items):
        for item in items:
            if "item" in item:
                walk(item["item"])
                continue
            request = item.get("request") or {}
            url = request.get("url")
            raw = url.get("raw") if isinstance(url, dict) else url
            if not raw:
                continue
            raw = substitute(raw.split("?")[0])
            if not raw.startswith("http"):
                raw = "https://" + raw.lstrip("/")
            headers = sorted({h["key"].lower() for h in request.get("header", []) if not h.get("disabled")})
            body_fields = []
            try:
                example = json.loads((request.get("body") or {}).get("raw") or "null")
                if isinstance(example, dict):
                    body_fields = sorted(example)
            except ValueError:
                pass
            ops.append({**({"body_fields": body_fields} if body_fields else {}),
                        "method": request.get("method", "GET"), "url": raw, "required_query": [],
                        "required_headers": headers, "success": [], "response_pointers": [], "source": source})

    walk(doc.get("item", []))
    return ops


def wsdl_ops(text, source):
    """Each SOAP operation of a WSDL: the service address (`url`), its
    SOAPAction (`action`), the SOAP headers its input declares
    (`soap_headers`), and its response element's fields two levels deep as
    pointers by local name (`/GetUserResponse/User/Id`)."""
    location = (re.search(r'<soap:address location="([^"]+)"', text) or [None, ""])[1]
    elements = {}  # top-level xs:element name -> its child (name, type) list
    for m in re.finditer(r'<xs:element name="(\w+)">\s*<xs:complexType>(.*?)</xs:complexType>\s*</xs:element>', text, re.S):
        elements[m[1]] = re.findall(r'<xs:element[^>]*?name="(\w+)"[^>]*?type="(?:\w+:)?(\w+)"', m[2])
    types = {}  # complexType name -> its child element names (own sequence)
    for m in re.finditer(r'<xs:complexType name="(\w+)">(.*?)</xs:complexType>', text, re.S):
        types[m[1]] = re.findall(r'<xs:element[^>]*?name="(\w+)"', m[2])
    ops = []
    for m in re.finditer(r'<wsdl:operation name="(\w+)">\s*<soap:operation soapAction="([^"]*)"', text):
        name, action = m[1], m[2]
        headers = re.search(r'<wsdl:message name="%sRequest_Headers">(.*?)</wsdl:message>' % name, text, re.S)
        soap_headers = sorted(re.findall(r'element="tns:(\w+)"', headers[1])) if headers else []
        response = name + "Response"
        pointers = []
        for child, ctype in elements.get(response, []):
            pointers.append("/%s/%s" % (response, child))
            pointers += ["/%s/%s/%s" % (response, child, g) for g in types.get(ctype, [])]
        ops.append({"method": "SOAP", "url": location, "action": action, "soap_headers": soap_headers,
                    "required_query": [], "required_headers": [], "success": [],
                    "response_pointers": sorted(pointers), "source": source})
    return ops


def graphql_facts(doc):
    """For each query root field: the fields of what it returns (of its
    nodes, for a connection)."""
    schema = doc["data"]["__schema"] if "data" in doc else doc["__schema"]
    types = {t["name"]: t for t in schema["types"]}
    root = types.get(schema.get("queryType", {}).get("name", "QueryRoot")) or types.get("QueryRoot") or {}

    def named(t):
        while t and t.get("ofType"):
            t = t["ofType"]
        return (t or {}).get("name")

    out = {}
    for field in root.get("fields") or []:
        target = types.get(named(field["type"])) or {}
        if (target.get("name") or "").endswith("Connection"):
            nodes = next((f for f in target.get("fields") or [] if f["name"] == "nodes"), None)
            target = types.get(named(nodes["type"])) if nodes else {}
        out[field["name"]] = sorted(f["name"] for f in (target or {}).get("fields") or [])
    return out


def generate(vendor):
    meta_version = (vendor / "meta/version.txt").read_text().strip()
    out = {}
    for platform, sources in SOURCES.items():
        ops, described = [], []
        entry = {}
        for kind, rel in sources:
            path = vendor / rel
            if kind == "wsdl":
                ops += wsdl_ops(path.read_text(encoding="utf-8"), rel)
            elif kind == "graphql":
                entry["graphql"] = graphql_facts(load(path))
            elif kind == "meta":
                ops += meta_ops(load(path), rel, meta_version)
            elif kind == "postman":
                env = {}
                env_file = path.parent / "Amazon_Ads_API_Environment.postman_environment.json"
                if env_file.exists() and platform == "amazon_ads":
                    env = {v["key"]: v.get("value", "") for v in load(env_file)["values"]}
                if platform == "x_ads":
                    env = {"version": "12"}
                ops += postman_ops(load(path), rel, env)
            elif kind == "discovery":
                ops += discovery_ops(load(path), rel)
            else:
                ops += openapi_ops(load(path), rel)
            described.append(rel)
        unique = {}
        # The catalog reads with GET (and SOAP names Microsoft's operations):
        # only those are facts it can be held to.
        kept = ("GET", "SOAP", "POST") if platform in POST_FACTS else ("GET", "SOAP")
        for op in (o for o in ops if o["method"] in kept):
            unique.setdefault((op["method"], op["url"], op.get("action")), op)
        entry["sources"] = described
        entry["operations"] = sorted(unique.values(), key=lambda o: (o["url"], o["method"], o.get("action", "")))
        if platform == "meta_ads":
            entry["api_version"] = meta_version
        out[platform] = entry
    return {"generated_by": "infra/conformance/generate.py from ../shared/vendor-api (see its SOURCES.md)", "platforms": out}


def render(facts):
    """Stable, diff-friendly JSON: one operation a line."""
    lines = ["{", f' "generated_by": {json.dumps(facts["generated_by"])},', ' "platforms": {']
    platforms = sorted(facts["platforms"].items())
    for i, (name, entry) in enumerate(platforms):
        lines.append(f"  {json.dumps(name)}: {{")
        rest = {k: v for k, v in entry.items() if k != "operations"}
        for key in sorted(rest):
            lines.append(f"   {json.dumps(key)}: {json.dumps(rest[key], sort_keys=True)},")
        lines.append('   "operations": [')
        ops = entry["operations"]
        for j, op in enumerate(ops):
            lines.append("    " + json.dumps(op, sort_keys=True) + ("," if j + 1 < len(ops) else ""))
        lines.append("   ]")
        lines.append("  }" + ("," if i + 1 < len(platforms) else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vendor-api", default=str(ROOT.parent / "shared" / "vendor-api"))
    parser.add_argument("--out", default=str(ROOT / "tests" / "conformance" / "facts.json"))
    parser.add_argument("--check", action="store_true", help="fail if the committed facts differ")
    args = parser.parse_args()
    vendor = pathlib.Path(args.vendor_api)
    if not vendor.is_dir():
        print(f"no {vendor}: nothing to regenerate (the committed facts stand)")
        return 0
    text = render(generate(vendor))
    out = pathlib.Path(args.out)
    if args.check:
        if not out.exists() or out.read_text() != text:
            print(f"{out} differs from what {vendor} describes: run infra/conformance/generate.py and commit", file=sys.stderr)
            return 1
        print(f"{out} matches {vendor}")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}: {sum(len(p['operations']) for p in json.loads(text)['platforms'].values())} operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
