#!/usr/bin/env python3
"""Prints template.yaml as CloudFormation sees it after the SAM transform
(the resources SAM generates: roles, event source mappings, rules, the
schedule), as JSON, for tests/template.rs. Uses the SAM translator
(aws-sam-translator, which cfn-lint and the SAM CLI install), offline: the
template names no managed policy, so nothing is looked up.

Usage: translate.py [TEMPLATE]
"""

import json
import os
import pathlib
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no AWS managed policy: nothing to look up."""

    def load(self):
        return {}


def main():
    root = pathlib.Path(__file__).resolve().parents[2]
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "template.yaml"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(path.read_text())
    # As `sam package` would: the code is in S3 by the time it is deployed.
    for holder in [template.get("Globals", {}).get("Function", {})] + [
        r.get("Properties", {}) for r in template["Resources"].values() if r.get("Type") == "AWS::Serverless::Function"
    ]:
        if "CodeUri" in holder:
            holder["CodeUri"] = "s3://deployment-bucket/code.zip"
    translated = transform(template, {}, NoManagedPolicies())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
