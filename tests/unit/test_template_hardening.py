"""The hardening of template.yaml (issue 12, section 3): throttling and access logs on the HTTP API, the webhook's
reserved concurrency, a log group with a retention for every function, the database URL as a secret, the
network-interface actions only with a VPC, encrypted topic and queues. Where SAM adds resources or policies of its
own, the test reads the template as the SAM translator expands it (expensebot_tools.project.sam_expand)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any

import pytest

from expensebot_tools.project.sam_expand import expand
from expensebot_tools.project.template import Resolver, Template

WEBHOOK_FUNCTION = "WebhookFunction"


@pytest.fixture(scope="module")
def expanded() -> dict[str, Any]:
    return expand()


def _parameter(template: Template, name: str) -> dict[str, Any]:
    assert name in template.raw["Parameters"], f"no parameter {name}"
    return template.raw["Parameters"][name]


# ---------------------------------------------------------------- the HTTP API


def _webhook_event(template: Template) -> dict[str, Any]:
    (event,) = [
        e["Properties"] for e in template.functions[WEBHOOK_FUNCTION].properties["Events"].values()
        if e["Type"] == "HttpApi"
    ]
    return event


def _http_api(template: Template) -> tuple[str, dict[str, Any]]:
    api_id = _webhook_event(template).get("ApiId", {}).get("Ref")
    assert api_id, "the webhook's HttpApi event names no ApiId: SAM's implicit API has no throttling or access log"
    api = template.resources[api_id]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    return api_id, api["Properties"]


def test_the_http_api_throttles_every_route_at_the_rate_and_burst_parameters(template):
    _, api = _http_api(template)
    assert api["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "WebhookThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "WebhookThrottlingBurstLimit"},
    }
    rate = int(_parameter(template, "WebhookThrottlingRateLimit")["Default"])
    burst = int(_parameter(template, "WebhookThrottlingBurstLimit")["Default"])
    assert 0 < rate <= burst


def test_the_http_api_writes_an_access_log_to_a_log_group_that_expires(template):
    _, api = _http_api(template)
    settings = api["AccessLogSettings"]
    log_group_id, attribute = settings["DestinationArn"]["Fn::GetAtt"]
    assert attribute == "Arn"
    log_group = template.resources[log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "$context.requestId" in settings["Format"] and "$context.status" in settings["Format"]
    # The access log must never hold the secret token header or the update (users' messages).
    assert "header" not in settings["Format"].lower() and "body" not in settings["Format"].lower()


def test_the_webhook_url_output_is_the_declared_apis_url(template):
    api_id, _ = _http_api(template)
    url = template.raw["Outputs"]["WebhookUrl"]["Value"]["Fn::Sub"]
    assert url == f"https://${{{api_id}}}.execute-api.${{AWS::Region}}.amazonaws.com{_webhook_event(template)['Path']}"


def test_the_expanded_api_stage_carries_the_throttling_and_the_access_log(template, expanded):
    api_id, _ = _http_api(template)
    (stage,) = [
        r["Properties"] for r in expanded["Resources"].values()
        if r["Type"] == "AWS::ApiGatewayV2::Stage" and r["Properties"]["ApiId"] == {"Ref": api_id}
    ]
    assert stage["StageName"] == "$default"
    assert set(stage["DefaultRouteSettings"]) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    assert "DestinationArn" in stage["AccessLogSettings"]


def test_the_expanded_api_invokes_the_webhooks_live_alias_never_latest(template, expanded):
    api_id, _ = _http_api(template)
    alias = f"{WEBHOOK_FUNCTION}Alias{template.functions[WEBHOOK_FUNCTION].properties['AutoPublishAlias']}"
    assert expanded["Resources"][alias]["Type"] == "AWS::Lambda::Alias"
    body = expanded["Resources"][api_id]["Properties"]["Body"]
    (integration,) = [op["x-amazon-apigateway-integration"] for op in body["paths"]["/webhook"].values()]
    assert f"${{{alias}}}/invocations" in integration["uri"]["Fn::Sub"]
    permissions = [
        r["Properties"] for r in expanded["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert [p["FunctionName"] for p in permissions] == [{"Ref": alias}]


# ---------------------------------------------------------------- the webhook's concurrency


def test_the_webhook_reserves_concurrency_from_a_parameter_and_no_other_function_does(template):
    for function_id, spec in template.functions.items():
        reserved = spec.properties.get("ReservedConcurrentExecutions")
        if function_id == WEBHOOK_FUNCTION:
            assert reserved == {"Ref": "WebhookReservedConcurrency"}
        else:
            # Workers are bounded by their queue's MaximumConcurrency, jobs by their schedule.
            assert reserved is None, f"{function_id} reserves concurrency"
    assert "ReservedConcurrentExecutions" not in template.globals
    assert int(_parameter(template, "WebhookReservedConcurrency")["Default"]) >= 1


# ---------------------------------------------------------------- log groups


def test_every_function_logs_to_its_own_log_group_kept_for_the_retention_parameter(template):
    groups = {}
    for function_id, spec in template.functions.items():
        group_id = (spec.properties.get("LoggingConfig") or {}).get("LogGroup", {}).get("Ref")
        assert group_id, f"{function_id} has no LoggingConfig.LogGroup: Lambda would log to a group kept forever"
        assert template.resources[group_id]["Type"] == "AWS::Logs::LogGroup", function_id
        assert template.resources[group_id]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        groups[group_id] = function_id
    assert len(groups) == len(template.functions), "two functions share a log group"
    assert "LoggingConfig" not in template.globals


def test_log_retention_defaults_to_30_days_and_allows_only_values_cloudwatch_accepts(template):
    parameter = _parameter(template, "LogRetentionDays")
    assert int(parameter["Default"]) == 30
    cloudwatch_values = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                         2922, 3288, 3653}
    assert {int(v) for v in parameter["AllowedValues"]} == cloudwatch_values


def test_no_log_group_name_depends_on_its_function_so_it_exists_before_the_first_invoke(template, expanded):
    """A group named after the generated function name (!Sub /aws/lambda/${Function}) is created after the function;
    an invoke in between makes Lambda create it first and the deploy fails. The function must depend on the group."""
    resources = expanded["Resources"]
    for function_id in template.functions:
        function = resources[function_id]
        assert function["Type"] == "AWS::Lambda::Function"
        group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert function_id not in _references(resources[group_id]), f"{group_id} depends on {function_id}"


def _references(value: Any) -> set[str]:
    """Logical ids a value refers to (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(str(inner))
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else str(inner).split(".")[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(inner, str):
                    found |= _references(inner[1])
            else:
                found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    return found


# ---------------------------------------------------------------- the database URL as a secret

DATABASE_URL = "postgresql://app:Pl41n-Passw0rd@db.example:5432/expensebot"
RDS_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-AbCdEf"


def _resolver(template: Template, **parameters: Any) -> Resolver:
    """Resolves against the template's own resources: !Ref X gives "ref:X", !GetAtt X.A gives "att:X.A"."""
    resources = template.resources
    return Resolver(
        parameters={**template.parameter_defaults(), **parameters},
        refs={logical_id: f"ref:{logical_id}" for logical_id in resources},
        attributes={(logical_id, attr): f"att:{logical_id}.{attr}" for logical_id in resources
                    for attr in ("Arn", "QueueName", "QueueUrl")},
        conditions=template.raw["Conditions"],
    )


def _condition(template: Template, name: str, **parameters: Any) -> bool:
    return bool(_resolver(template, **parameters).resolve({"Condition": name}))


def test_the_database_url_parameter_reaches_no_functions_environment(template):
    assert _parameter(template, "DatabaseUrl").get("NoEcho") is True
    resolver = _resolver(template, DatabaseUrl=DATABASE_URL)
    for function_id in template.functions:
        environment = template.environment(function_id, resolver)
        leaked = [name for name, value in environment.items() if "Pl41n-Passw0rd" in value]
        assert leaked == [], f"{function_id}: the database password is in {leaked}"
        # Still declared, blank, so `sam local invoke --env-vars` may set it.
        assert environment["DATABASE_URL"] == ""
        assert environment["DATABASE_URL_SECRET_ARN"] == "ref:DatabaseUrlSecret"


def test_the_stack_keeps_the_database_url_in_a_secret_only_when_one_is_given(template):
    secret = template.resources["DatabaseUrlSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["SecretString"] == {"Ref": "DatabaseUrl"}
    assert _condition(template, secret["Condition"], DatabaseUrl=DATABASE_URL) is True
    assert _condition(template, secret["Condition"]) is False
    environment = template.environment(None, _resolver(template))
    assert "DATABASE_URL_SECRET_ARN" not in environment and environment["DATABASE_URL"] == ""


@pytest.mark.parametrize(
    ("parameters", "readable"),
    [
        ({"DatabaseUrl": DATABASE_URL}, ["ref:DatabaseUrlSecret"]),
        ({"DatabaseSecretArn": RDS_SECRET_ARN}, [RDS_SECRET_ARN]),
        ({}, None),
    ],
    ids=["database-url", "rds-secret", "neither"],
)
def test_the_shared_read_policy_grants_exactly_the_database_secret_the_stack_has(template, parameters, readable):
    policy = template.resources["DatabaseSecretReadPolicy"]
    if readable is None:
        assert _condition(template, policy["Condition"], **parameters) is False
        return
    assert _condition(template, policy["Condition"], **parameters) is True
    (statement,) = _resolver(template, **parameters).resolve(policy["Properties"]["PolicyDocument"])["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == readable


def test_every_function_attaches_the_read_policy_under_the_condition_that_creates_it(template):
    condition = template.resources["DatabaseSecretReadPolicy"]["Condition"]
    attach = {"Fn::If": [condition, {"Ref": "DatabaseSecretReadPolicy"}, {"Ref": "AWS::NoValue"}]}
    for function_id, spec in template.functions.items():
        assert attach in spec.properties["Policies"], function_id


def test_a_stack_given_both_a_database_url_and_an_rds_secret_is_refused(template):
    (assertion,) = template.raw["Rules"]["OneDatabase"]["Assertions"]
    assert _resolver(template, DatabaseUrl=DATABASE_URL, DatabaseSecretArn=RDS_SECRET_ARN).resolve(
        assertion["Assert"]) is False
    assert _resolver(template, DatabaseUrl=DATABASE_URL).resolve(assertion["Assert"]) is True
    assert _resolver(template, DatabaseSecretArn=RDS_SECRET_ARN).resolve(assertion["Assert"]) is True


# ---------------------------------------------------------------- network-interface actions only with a VPC

# The AWS managed policy SAM attaches to a function in a VPC; it allows these (and the basic logging actions).
VPC_ACCESS_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
)


def _expanded_resolver(expanded: dict[str, Any], template: Template, **parameters: Any) -> Resolver:
    resources = expanded["Resources"]
    return Resolver(
        parameters={**template.parameter_defaults(), **parameters},
        refs={logical_id: f"ref:{logical_id}" for logical_id in resources},
        attributes={(logical_id, "Arn"): f"att:{logical_id}.Arn" for logical_id in resources},
        conditions=expanded["Conditions"],
    )


def _allows(policy_document: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement covers the action (Action / NotAction with wildcards; no Deny in these)."""
    def listed(patterns: Any) -> bool:
        patterns = [patterns] if isinstance(patterns, str) else patterns
        return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)

    for statement in policy_document["Statement"]:
        assert statement["Effect"] == "Allow"
        if ("Action" in statement and listed(statement["Action"])) or (
            "NotAction" in statement and not listed(statement["NotAction"])
        ):
            return True
    return False


def _network_interface_grants(expanded: dict[str, Any], template: Template, **parameters: Any) -> dict[str, bool]:
    """Function → whether its role may use every network-interface action: the VPC policy is attached and no
    permissions boundary withholds them."""
    resources = expanded["Resources"]
    resolver = _expanded_resolver(expanded, template, **parameters)
    grants = {}
    for function_id in template.functions:
        role_id, _ = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"]
        role = resources[role_id]["Properties"]
        granted = VPC_ACCESS_POLICY in resolver.resolve(role["ManagedPolicyArns"])
        boundary = resolver.resolve({"Boundary": role.get("PermissionsBoundary", {"Ref": "AWS::NoValue"})})
        boundary = boundary.get("Boundary")
        if boundary is not None:
            boundary_id = boundary.removeprefix("ref:")
            assert resolver.resolve({"Condition": resources[boundary_id]["Condition"]}), f"{boundary_id} is not created"
            document = resources[boundary_id]["Properties"]["PolicyDocument"]
            granted = granted and all(_allows(document, action) for action in NETWORK_INTERFACE_ACTIONS)
        grants[function_id] = granted
    return grants


def test_sam_attaches_its_vpc_policy_to_every_role_whatever_the_condition(template, expanded):
    """Why the boundary exists: if SAM ever honours the condition, the boundary can go."""
    resources = expanded["Resources"]
    for function_id in template.functions:
        role_id, _ = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"]
        assert VPC_ACCESS_POLICY in resources[role_id]["Properties"]["ManagedPolicyArns"], role_id


def test_without_subnets_no_function_role_may_touch_network_interfaces(template, expanded):
    grants = _network_interface_grants(expanded, template, VpcSubnetIds="", VpcSecurityGroupIds="")
    assert len(grants) == len(template.functions)
    assert not any(grants.values()), [f for f, granted in grants.items() if granted]
    resolver = _expanded_resolver(expanded, template, VpcSubnetIds="")
    for function_id in template.functions:
        properties = expanded["Resources"][function_id]["Properties"]
        assert "VpcConfig" not in resolver.resolve({"VpcConfig": properties["VpcConfig"]}), function_id


def test_with_subnets_every_function_joins_the_vpc_and_may_manage_its_network_interfaces(template, expanded):
    vpc = {"VpcSubnetIds": ["subnet-0a1b2c3d"], "VpcSecurityGroupIds": ["sg-0a1b2c3d"]}
    grants = _network_interface_grants(expanded, template, **vpc)
    assert all(grants.values()), [f for f, granted in grants.items() if not granted]
    resolver = _expanded_resolver(expanded, template, **vpc)
    for function_id in template.functions:
        config = resolver.resolve(expanded["Resources"][function_id]["Properties"]["VpcConfig"])
        assert config == {"SubnetIds": ["subnet-0a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"]}, function_id


def test_the_boundary_withholds_nothing_but_ec2(template):
    document = template.resources["NoVpcPermissionsBoundary"]["Properties"]["PolicyDocument"]
    for action in ("sqs:SendMessage", "secretsmanager:GetSecretValue", "logs:PutLogEvents", "xray:PutTraceSegments",
                   "sqs:ChangeMessageVisibility", "kms:Decrypt"):
        assert _allows(document, action), action
    assert not any(_allows(document, action) for action in NETWORK_INTERFACE_ACTIONS)


# ---------------------------------------------------------------- encryption at rest


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use_to_publish(template):
    (topic,) = template.of_type("AWS::SNS::Topic").values()
    key_ref = topic["Properties"].get("KmsMasterKeyId")
    assert key_ref is not None, "the alarm topic is not encrypted"
    # alias/aws/sns would encrypt it too, but CloudWatch cannot use that key: every alarm would fail to publish.
    assert key_ref != "alias/aws/sns"
    key = template.resources[key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    granted = {
        action
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement["Effect"] == "Allow" and statement["Principal"].get("Service") == "cloudwatch.amazonaws.com"
        for action in statement["Action"]
    }
    assert granted == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_every_queue_is_encrypted_at_rest(template):
    assert len(template.queues) == 5 + 5 + 2  # the work queues, their DLQs, the scheduler DLQ, JobFailureQueue
    for queue_id, queue in template.queues.items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId"), queue_id
