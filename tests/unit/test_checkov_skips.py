"""The checkov checks `make lint` skips: each with its reason beside it, in the file and in the template."""

from __future__ import annotations

import re

import yaml

from expensebot_tools.project.template import PROJECT_ROOT

SKIPS = PROJECT_ROOT / "infra" / "checkov-skips.yaml"
CHECK_ID = re.compile(r"CKV2?_AWS_\d+")


def test_every_check_skipped_for_the_whole_template_says_why():
    skips = yaml.safe_load(SKIPS.read_text(encoding="utf-8"))
    assert skips, "the skip file is empty: drop it from the Makefile instead"
    for check_id, reason in skips.items():
        assert CHECK_ID.fullmatch(check_id), f"{check_id!r} is not a checkov AWS check id"
        assert isinstance(reason, str) and len(reason.split()) >= 15, f"{check_id}: say why it does not apply"


def test_every_check_skipped_for_one_resource_says_why(template):
    found = 0
    for logical_id, resource in template.resources.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found += 1
            assert CHECK_ID.fullmatch(skip["id"]), f"{logical_id}: {skip['id']!r}"
            assert len(str(skip.get("comment", "")).split()) >= 5, f"{logical_id} skips {skip['id']} without a reason"
    assert found, "no resource skips a check: this test has nothing left to read"


def test_make_lint_runs_checkov_on_the_template_and_its_sam_expansion_with_the_skip_file():
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(CHECKOV) $(CHECKOV_ARGS) -f template.yaml" in lint
    assert "$(CHECKOV) $(CHECKOV_ARGS) -f $(EXPANDED)" in lint
    assert "expensebot_tools.project.sam_expand $(EXPANDED)" in lint
    assert "infra/checkov-skips.yaml" in makefile
