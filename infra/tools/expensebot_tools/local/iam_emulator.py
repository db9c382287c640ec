"""moto with IAM enforced the way AWS enforces it, for running each function under exactly its role.

moto checks IAM when asked (`enable_iam_authentication`), but differs from AWS in four ways that would make
a test kinder or harsher than AWS, so they are corrected here while enforcement is on:
- SQS's batch calls are authorised by the single call's action (AWS's Service Authorization Reference lists
  no sqs:SendMessageBatch, sqs:DeleteMessageBatch or sqs:ChangeMessageVisibilityBatch action); moto asks
  for the batch names, so a role holding sqs:SendMessage would be refused what AWS allows.
- Secrets Manager, EventBridge Scheduler, Lambda, CloudFormation and CloudWatch Logs calls, and SQS's
  GetQueueUrl and StartMessageMoveTask, are checked by moto against the resource "*", so a statement scoped
  to a secret's, a schedule's, a function's, an event source mapping's, a stack's, a log group's or a queue's
  ARN (as ours are) never
  matches; here the call's resource ARN is determined as AWS does. moto also names Lambda's Invoke action
  `lambda:Invoke`, where IAM's is `lambda:InvokeFunction`.
- CloudWatch's calls are checked by moto as `monitoring:<Action>` (its endpoint's name); IAM, and so every
  policy, names them `cloudwatch:<Action>`.
- moto recomputes each request's signature and, for some REST calls (EventBridge Scheduler's ListSchedules
  with a query string), computes it differently from botocore and answers SignatureDoesNotMatch; the
  identity is still established by the access key (and a role session's token), which is what the
  authorisation uses, so the signature comparison is skipped.
Every authorisation is recorded (who, action, resource, allowed), so a test can show what each role used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from expensebot_tools.project.iam import Role, matches_pattern

# AWS authorises each batch call as its single-message action.
BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# moto's action name (the API operation's) → IAM's, where they differ.
IAM_ACTIONS = {**BATCH_ACTIONS, "lambda:Invoke": "lambda:InvokeFunction"}
# moto names the action after the service's endpoint; IAM's prefix differs for CloudWatch (monitoring.*).
SERVICE_PREFIXES = {"monitoring": "cloudwatch"}
ADMIN_USER = "expensebot-harness"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def environment(self) -> dict[str, str]:
        """The variables Lambda sets for the execution role's session."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def client(self, service: str, **kwargs: Any) -> Any:
        import boto3

        session = boto3.session.Session(aws_access_key_id=self.access_key_id,
                                        aws_secret_access_key=self.secret_access_key,
                                        aws_session_token=self.session_token)
        return session.client(service, **kwargs)


@dataclass(frozen=True)
class Access:
    principal: str  # the role's (or user's) name
    action: str
    resource: str
    allowed: bool


@dataclass
class AccessLog:
    accesses: list[Access] = field(default_factory=list)

    def denied(self, principal: str | None = None) -> list[Access]:
        return [a for a in self.accesses if not a.allowed and principal in (None, a.principal)]

    def used(self, principal: str) -> set[tuple[str, str]]:
        """(action, resource) pairs the principal was allowed."""
        return {(a.action, a.resource) for a in self.accesses if a.allowed and a.principal == principal}

    def clear(self) -> None:
        self.accesses.clear()


def _principal(access_key: Any) -> str:
    return str(getattr(access_key, "_owner_role_name", None) or getattr(access_key, "_owner_user_name", "?"))


def _secret_resource(self: Any) -> str:
    secret_id = self._get_param("SecretId")
    if not secret_id:
        return "*"
    try:
        return str(self.backend.describe_secret(secret_id).arn)
    except Exception:  # an unknown secret: AWS checks the name's ARN pattern; "*" matches no scoped grant
        return "*"


def _schedule_resource(self: Any) -> str:
    path = self.uri.split("?")[0].rstrip("/")
    parent, _, name = path.rpartition("/")
    if not parent.endswith("/schedules") or not name:
        return "*"  # ListSchedules and the other calls without a schedule
    group = self._get_param("groupName") or self._get_param("GroupName") or "default"
    return f"arn:aws:scheduler:{self.region}:{self.current_account}:schedule/{group}/{name}"


def _lambda_resource(self: Any) -> str:
    """/2015-03-31/functions/<name or ARN>/… → the function's ARN; /2015-03-31/event-source-mappings/<UUID>
    → the mapping's ARN (IAM's resource types for Invoke and Get/UpdateEventSourceMapping)."""
    from urllib.parse import unquote

    parts = [unquote(part) for part in self.path.strip("/").split("/")]
    prefix = f"arn:aws:lambda:{self.region}:{self.current_account}"
    if len(parts) >= 3 and parts[1] == "event-source-mappings" and parts[2]:
        return f"{prefix}:event-source-mapping:{parts[2]}"
    if len(parts) >= 3 and parts[1] == "functions" and parts[2]:
        name = parts[2]
        return ":".join(name.split(":")[:7]) if name.startswith("arn:") else f"{prefix}:function:{name}"
    return "*"


def _log_group_resource(self: Any) -> str:
    """A call naming a log group → the log group's ARN (IAM's resource type for FilterLogEvents and the
    other log-group calls); the calls without one stay "*"."""
    name = self._get_param("logGroupName")
    if not name:
        return "*"
    return f"arn:aws:logs:{self.region}:{self.current_account}:log-group:{name}:*"


def _stack_resource(self: Any) -> str:
    name = self._get_param("StackName")
    if not name:
        return "*"
    try:
        return str(self.cloudformation_backend.get_stack(name).stack_id)
    except Exception:  # an unknown stack: "*" matches no scoped grant, as AWS refuses it
        return "*"


def _queue_resource(original: Any) -> Any:
    def determine(self: Any) -> str:
        source_arn = self._get_param("SourceArn")  # StartMessageMoveTask: the DLQ it moves from
        if source_arn:
            return str(source_arn)
        queue_name = self._get_param("QueueName")  # GetQueueUrl names the queue instead of its URL
        if queue_name and not self._get_param("QueueUrl"):
            try:
                return str(self.sqs_backend.get_queue(queue_name).queue_arn)
            except Exception:
                return "*"
        return str(original(self))

    return determine


@contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    missing = object()
    previous = target.__dict__.get(name, missing)
    setattr(target, name, value)
    try:
        yield
    finally:
        if previous is missing:
            delattr(target, name)
        else:
            setattr(target, name, previous)


@contextmanager
def iam_enforced() -> Iterator[AccessLog]:
    """IAM enforced on every moto call in the block, as AWS enforces it, with each check recorded.
    Callers need credentials of an IAM user or an assumed role (see `admin_credentials`)."""
    from moto.awslambda.responses import LambdaResponse
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core import enable_iam_authentication
    from moto.iam.access_control import IAMRequestBase
    from moto.logs.responses import LogsResponse
    from moto.scheduler.responses import EventBridgeSchedulerResponse
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sqs.responses import SQSResponse

    log = AccessLog()
    original_init = IAMRequestBase.__init__
    original_check = IAMRequestBase.check_action_permitted

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._action = IAM_ACTIONS.get(self._action, self._action)
        service, _, operation = self._action.partition(":")
        self._action = f"{SERVICE_PREFIXES.get(service, service)}:{operation}"

    def check(self: Any, resource: str) -> None:
        try:
            original_check(self, resource)
        except Exception:
            log.accesses.append(Access(_principal(self._access_key), self._action, resource, False))
            raise
        log.accesses.append(Access(_principal(self._access_key), self._action, resource, True))

    with (
        _patched(IAMRequestBase, "__init__", init),
        _patched(IAMRequestBase, "check_action_permitted", check),
        _patched(IAMRequestBase, "check_signature", lambda self: None),
        _patched(SecretsManagerResponse, "_determine_resource", _secret_resource),
        _patched(EventBridgeSchedulerResponse, "_determine_resource", _schedule_resource),
        _patched(LambdaResponse, "_determine_resource", _lambda_resource),
        _patched(CloudFormationResponse, "_determine_resource", _stack_resource),
        _patched(LogsResponse, "_determine_resource", _log_group_resource),
        _patched(SQSResponse, "_determine_resource", _queue_resource(SQSResponse._determine_resource)),
        enable_iam_authentication(),
    ):
        yield log


def admin_credentials(iam: Any) -> Credentials:
    """An IAM user allowed everything: the test harness itself (creating queues, playing Lambda's event
    source mapping's operator). Create it before enforcement starts."""
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(UserName=ADMIN_USER, PolicyName="everything", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def assume_role(iam: Any, sts: Any, role: Role, *, name: str, trusted_arn: str) -> Credentials:
    """Creates the role with exactly its policies and returns a session of it, as Lambda assumes a
    function's execution role. The trust policy names Lambda and the harness (which plays Lambda here)."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": "lambda.amazonaws.com", "AWS": trusted_arn},
    }]}
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    for policy_name, document in role.documents().items():
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    session = sts.assume_role(RoleArn=arn, RoleSessionName=name)["Credentials"]
    return Credentials(session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])


def attach_user_policy(iam: Any, role: Role, *, user: str) -> Credentials:
    """An IAM user holding exactly one policy (an operator with OperatorPolicy)."""
    iam.create_user(UserName=user)
    for policy_name, document in role.documents().items():
        iam.put_user_policy(UserName=user, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def unused_grants(role: Role, used: set[tuple[str, str]], *, service_side: Mapping[str, str]) -> list[str]:
    """Each Allow (action pattern on resource pattern) that no recorded call used, leaving out the
    actions Lambda itself uses with the role (`service_side`: action pattern → why), which no code path
    of ours makes."""
    unused = []
    for action, resource, source in role.granted():
        if any(matches_pattern(pattern, action, ignore_case=True) for pattern in service_side):
            continue
        hit = any(matches_pattern(action, a, ignore_case=True) and matches_pattern(resource, r, ignore_case=False)
                  for a, r in used)
        if not hit:
            unused.append(f"{action} on {resource} ({source})")
    return unused
