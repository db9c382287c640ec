"""template.yaml expanded by the SAM translator (PyPI `aws-sam-translator`), offline: the plain
CloudFormation that a deploy creates, with every role SAM generates for a function. The template tests
check what SAM adds on its own (the managed policies it attaches), and `make lint` runs checkov on it.

    python -m expensebot_tools.project.sam_expand [OUTPUT.json]   # writes the expanded template (stdout without)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3
from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from expensebot_tools.project.template import TEMPLATE_PATH, load_template

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

# The translator uploads nothing and reads no code: it only needs CodeUri / ContentUri to look like an S3
# location, as `sam validate` and `sam deploy` (after packaging) give it.
_PLACEHOLDER_S3_URI = "s3://expensebot-expand/placeholder.zip"


def _managed_policy_map() -> dict[str, str]:
    """AWS managed policy name → ARN. The translator needs it only when a function's `Policies` names such a
    policy; SAM CLI asks IAM, offline the table SAM ships for the same purpose does."""
    return get_bundled_managed_policy_map("aws") or {}


def expand(path: Path = TEMPLATE_PATH, parameter_values: dict[str, Any] | None = None) -> dict[str, Any]:
    template = load_template(path)  # a fresh copy: the translator changes what it is given
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = _PLACEHOLDER_S3_URI
    values = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"}
    values.update(parameter_values or {})
    # The session only names the region (for ARN partitions and pseudo parameters); nothing calls AWS.
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    return translator.translate(template, values, get_managed_policy_map=_managed_policy_map)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(expand(), indent=1, sort_keys=True)
    if args:
        Path(args[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(args[0]).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
