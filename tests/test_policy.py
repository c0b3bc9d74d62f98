"""The policy pack (policy/): every rule on a resource where it holds and one where it is
broken, run through the pulumi_policy wrappers the CLI serves; the exceptions file; and the
offline plan's report (`sofacover plan` runs the same wrappers)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from config.models import DEFAULT_TAG_KEYS
from config.seed import BACKUP_RETENTION_DAYS
from policy import exceptions as exc_file
from policy import rules as R
from policy.exceptions import PolicyException, PolicyExceptionError
from policy.pack import EXCEPTIONS_RULE, policies, stale

ROOT = Path(__file__).resolve().parents[1]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1111"
WEST_KEY = "arn:aws:kms:us-west-2:123456789012:key/2222"


def _provider(env: str, region: str = "us-east-1") -> dict:
    tags = {k: f"x-{k}" for k in DEFAULT_TAG_KEYS} | {"Environment": env}
    return {"region": region, "defaultTags": json.dumps({"tags": tags})}


def res(type_: str, props: dict, name: str = "r", *, protect: bool = False,
        env: str = "prod", region: str = "us-east-1", stack: str = "prod") -> R.Res:
    return R.Res(type=type_, name=name, urn=f"urn:pulumi:{stack}::sofacover::{type_}::{name}",
                 props=props, protect=protect, provider_props=_provider(env, region))


def _opts(r: R.Res) -> PolicyResourceOptions:
    return PolicyResourceOptions(r.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _provider_of(r: R.Res) -> PolicyProviderResource:
    return PolicyProviderResource("pulumi:providers:aws", r.provider_props,
                                  "urn:pulumi:prod::sofacover::pulumi:providers:aws::aws", "aws")


def violations(rule: str, resources: list[R.Res], waived=()) -> list[str]:
    (policy,) = [p for p in policies(list(waived)) if p.name == rule]
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    if isinstance(policy, ResourceValidationPolicy):
        for r in resources:
            policy.validate(ResourceValidationArgs(r.type, r.props, r.urn, r.name, _opts(r),
                                                   _provider_of(r)), report)
    else:
        policy.validate(StackValidationArgs([
            PolicyResource(r.type, r.props, r.urn, r.name, _opts(r), _provider_of(r), None,
                           [], {}) for r in resources]), report)
    return found


# --- one compliant and one violating case per rule ---------------------------------------

PG = {"storageEncrypted": True, "kmsKeyId": KEY, "publiclyAccessible": False,
      "backupRetentionPeriod": BACKUP_RETENTION_DAYS, "deleteAutomatedBackups": False,
      "multiAz": True, "deletionProtection": True, "skipFinalSnapshot": False,
      "finalSnapshotIdentifier": "db-final", "tags": {}}
REDIS = {"atRestEncryptionEnabled": True, "transitEncryptionEnabled": True, "kmsKeyId": KEY,
         "multiAzEnabled": True, "automaticFailoverEnabled": True,
         "finalSnapshotIdentifier": "redis-final", "snapshotRetentionLimit": 7}
LT = {"metadataOptions": {"httpTokens": "required"},
      "blockDeviceMappings": [{"ebs": {"encrypted": "true"}}]}
BUCKET = {"bucket": "logs-1", "forceDestroy": False}
SSE = {"bucket": "logs-1", "rules": [{"applyServerSideEncryptionByDefault":
                                      {"sseAlgorithm": "AES256"}}]}
PAB = {"bucket": "logs-1", "blockPublicAcls": True, "blockPublicPolicy": True,
       "ignorePublicAcls": True, "restrictPublicBuckets": True}
WORLD_443 = {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
             "securityGroupId": "sg-alb", "description": "HTTPS from anywhere"}
LB = {"securityGroups": ["sg-alb"], "enableDeletionProtection": True}
DEPLOY = {"metadata": {"namespace": "app"}, "spec": {"template": {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"securityContext": {"runAsNonRoot": True,
                                 "seccompProfile": {"type": "RuntimeDefault"}},
             "containers": [{
                 "name": "web", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                 "readinessProbe": {"httpGet": {"port": 80}},
                 "livenessProbe": {"httpGet": {"port": 80}},
                 "securityContext": {"allowPrivilegeEscalation": False,
                                     "capabilities": {"drop": ["ALL"]}}}]}}}}
PDB = {"metadata": {"namespace": "app"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CRONJOB = "kubernetes:batch/v1:CronJob"


def with_(props: dict, *path_value) -> dict:
    """A deep copy of `props` with each (path, value) set; value None deletes the key."""
    out = copy.deepcopy(props)
    for path, value in zip(path_value[::2], path_value[1::2], strict=True):
        target = out
        for key in path[:-1]:
            target = target[key]
        if value is None:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    return out


def container(props: dict, *path_value) -> dict:
    base = ("spec", "template", "spec", "containers", 0)
    pairs = []
    for path, value in zip(path_value[::2], path_value[1::2], strict=True):
        pairs += [base + tuple(path), value]
    return with_(props, *pairs)


CASES: dict[str, tuple[list[R.Res], list[R.Res]]] = {
    "rds-encrypted-with-cmk": (
        [res(R.RDS_INSTANCE, PG)],
        [res(R.RDS_INSTANCE, with_(PG, ("storageEncrypted",), False, ("kmsKeyId",), None))]),
    "rds-force-ssl": (
        [res(R.RDS_PARAMS, {"family": "postgres16", "parameters": []}),
         res(R.RDS_PARAMS, {"family": "postgres14", "parameters": [
             {"name": "rds.force_ssl", "value": "1"}]})],
        [res(R.RDS_PARAMS, {"family": "postgres16", "parameters": [
            {"name": "rds.force_ssl", "value": "0"}]}),
         res(R.RDS_PARAMS, {"family": "postgres14", "parameters": []})]),
    "redis-encrypted": (
        [res(R.REDIS, REDIS)],
        [res(R.REDIS, with_(REDIS, ("transitEncryptionEnabled",), False))]),
    "ebs-encrypted": (
        [res(R.LAUNCH_TEMPLATE, LT)],
        [res(R.LAUNCH_TEMPLATE, with_(LT, ("blockDeviceMappings", 0, "ebs", "encrypted"),
                                      "false"))]),
    "sns-encrypted-with-cmk": (
        [res(R.TOPIC, {"kmsMasterKeyId": KEY})],
        [res(R.TOPIC, {"kmsMasterKeyId": "alias/aws/sns"}), res(R.TOPIC, {})]),
    "log-group-encrypted-with-cmk": (
        [res(R.LOG_GROUP, {"kmsKeyId": KEY})], [res(R.LOG_GROUP, {"retentionInDays": 30})]),
    "kms-key-rotation": (
        [res(R.KMS_KEY, {"enableKeyRotation": True}),
         res(R.KMS_KEY, {"customerMasterKeySpec": "RSA_2048"})],  # asymmetric: cannot rotate
        [res(R.KMS_KEY, {"enableKeyRotation": False})]),
    "kms-explicit-key-policy": (
        [res(R.KMS_KEY, {"policy": '{"Statement": []}'})], [res(R.KMS_KEY, {})]),
    "s3-encrypted": (
        [res(R.BUCKET, BUCKET), res(R.BUCKET_SSE, SSE, "sse")],
        [res(R.BUCKET, BUCKET), res(R.BUCKET_SSE, with_(SSE, ("bucket",), "other"), "sse")]),
    "s3-public-access-blocked": (
        [res(R.BUCKET, BUCKET), res(R.BUCKET_PAB, PAB, "pab")],
        [res(R.BUCKET, BUCKET),
         res(R.BUCKET_PAB, with_(PAB, ("restrictPublicBuckets",), False), "pab")]),
    "s3-tls-only": (
        [res(R.BUCKET, BUCKET), res(R.BUCKET_POLICY, {"bucket": "logs-1", "policy": json.dumps(
            {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})})],
        [res(R.BUCKET, BUCKET), res(R.BUCKET_POLICY, {"bucket": "logs-1", "policy": json.dumps(
            {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]})})]),
    "cloudflare-tls-strict": (
        [res(R.DNS_RECORD, {"zoneId": "z", "proxied": True}, "www"),
         *[res(R.ZONE_SETTING, {"zoneId": "z", "settingId": k, "value": v[0]}, k)
           for k, v in R.EDGE_TLS.items()]],
        [res(R.DNS_RECORD, {"zoneId": "z", "proxied": True}, "www"),
         res(R.ZONE_SETTING, {"zoneId": "z", "settingId": "ssl", "value": "flexible"}, "ssl")]),
    "database-not-public": (
        [res(R.RDS_INSTANCE, PG)],
        [res(R.RDS_INSTANCE, with_(PG, ("publiclyAccessible",), True))]),
    "datastore-subnets-private": (
        [res(R.SUBNET, {"id": "subnet-a", "mapPublicIpOnLaunch": False}, "a"),
         res(R.RDS_SUBNETS, {"subnetIds": ["subnet-a"]}, "g")],
        [res(R.SUBNET, {"id": "subnet-a", "mapPublicIpOnLaunch": True}, "a"),
         res(R.CACHE_SUBNETS, {"subnetIds": ["subnet-a"]}, "g")]),
    "sg-world-ingress-https-only": (
        [res(R.SG_INGRESS, WORLD_443),
         res(R.SG_INGRESS, with_(WORLD_443, ("cidrIpv4",), "10.0.0.0/16",
                                 ("fromPort",), 5432, ("toPort",), 5432))],
        [res(R.SG_INGRESS, with_(WORLD_443, ("fromPort",), 22, ("toPort",), 22)),
         res(R.SG, {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "protocol": "-1",
                                 "fromPort": 0, "toPort": 0}]}),
         res(R.SG_RULE, {"type": "ingress", "ipv6CidrBlocks": ["::/0"], "protocol": "tcp",
                         "fromPort": 0, "toPort": 65535})]),
    "sg-world-ingress-on-load-balancer": (
        [res(R.LOAD_BALANCER, LB, "alb"), res(R.SG_INGRESS, WORLD_443)],
        [res(R.LOAD_BALANCER, LB, "alb"),
         res(R.SG_INGRESS, with_(WORLD_443, ("securityGroupId",), "sg-app"))]),
    "sg-described": (
        [res(R.SG, {"description": "ALB", "ingress": [{"description": "HTTPS"}]})],
        [res(R.SG_EGRESS, {"cidrIpv4": "0.0.0.0/0"}),
         res(R.SG, {"description": "ALB", "ingress": [{"fromPort": 443}]})]),
    "lb-https-only": (
        [res(R.LISTENER, {"protocol": "HTTPS",
                          "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}),
         res(R.LISTENER, {"protocol": "HTTP", "defaultActions": [
             {"type": "redirect", "redirect": {"protocol": "HTTPS"}}]})],
        [res(R.LISTENER, {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-2016-08"}),
         res(R.LISTENER, {"protocol": "HTTP", "defaultActions": [{"type": "forward"}]})]),
    "imdsv2-required": (
        [res(R.LAUNCH_TEMPLATE, LT)],
        [res(R.LAUNCH_TEMPLATE, with_(LT, ("metadataOptions", "httpTokens"), "optional")),
         res(R.LAUNCH_TEMPLATE, with_(LT, ("metadataOptions",), None))]),
    "eks-endpoint-restricted": (
        [res(R.EKS_CLUSTER, {"vpcConfig": {"endpointPublicAccess": False}}),
         res(R.EKS_CLUSTER, {"vpcConfig": {"endpointPublicAccess": True,
                                           "publicAccessCidrs": ["203.0.113.0/24"]}})],
        [res(R.EKS_CLUSTER, {"vpcConfig": {}}),  # AWS's default: public, from anywhere
         res(R.EKS_CLUSTER, {"vpcConfig": {"publicAccessCidrs": ["0.0.0.0/0"]}})]),
    "eks-secrets-encrypted": (
        [res(R.EKS_CLUSTER, {"encryptionConfig": {"resources": ["secrets"],
                                                  "provider": {"keyArn": KEY}}})],
        [res(R.EKS_CLUSTER, {})]),
    "prod-backups-retained": (
        [res(R.RDS_INSTANCE, PG),
         res(R.RDS_INSTANCE, with_(PG, ("backupRetentionPeriod",), 1), env="dev"),
         res(R.RDS_INSTANCE, with_(PG, ("backupRetentionPeriod",), 0,
                                   ("replicateSourceDb",), "arn:db"))],
        [res(R.RDS_INSTANCE, with_(PG, ("backupRetentionPeriod",), BACKUP_RETENTION_DAYS - 1)),
         res(R.RDS_INSTANCE, with_(PG, ("deleteAutomatedBackups",), None))]),
    "prod-multi-az": (
        [res(R.RDS_INSTANCE, PG), res(R.REDIS, REDIS),
         res(R.RDS_INSTANCE, with_(PG, ("multiAz",), False), env="dev")],
        [res(R.RDS_INSTANCE, with_(PG, ("multiAz",), False)),
         res(R.REDIS, with_(REDIS, ("automaticFailoverEnabled",), False))]),
    "prod-deletion-protection": (
        [res(R.RDS_INSTANCE, PG), res(R.LOAD_BALANCER, LB)],
        [res(R.RDS_INSTANCE, with_(PG, ("deletionProtection",), False)),
         res(R.LOAD_BALANCER, with_(LB, ("enableDeletionProtection",), None))]),
    "prod-final-snapshot": (
        [res(R.RDS_INSTANCE, PG), res(R.REDIS, REDIS)],
        [res(R.RDS_INSTANCE, with_(PG, ("skipFinalSnapshot",), True)),
         res(R.REDIS, with_(REDIS, ("finalSnapshotIdentifier",), None))]),
    "prod-stateful-protected": (
        [res(R.RDS_INSTANCE, PG, protect=True), res(R.RDS_INSTANCE, PG, env="dev"),
         res(R.BUCKET, BUCKET)],  # not force_destroy: S3 refuses to delete it while full
        [res(R.RDS_INSTANCE, PG), res(R.REDIS, REDIS),
         res(R.BUCKET, with_(BUCKET, ("forceDestroy",), True))]),
    "prod-data-keys-protected": (
        [res(R.KMS_KEY, {"arn": KEY}, "k", protect=True), res(R.RDS_INSTANCE, PG, "db"),
         res(R.KMS_KEY, {"arn": WEST_KEY}, "logs-key")],  # encrypts nothing stateful
        [res(R.KMS_KEY, {"arn": KEY}, "k"), res(R.RDS_INSTANCE, PG, "db")]),
    "replica-key-in-own-region": (
        [res(R.RDS_INSTANCE, with_(PG, ("replicateSourceDb",), "arn:db", ("kmsKeyId",),
                                   WEST_KEY), region="us-west-2"),
         res(R.BACKUP_REPLICATION, {"kmsKeyId": WEST_KEY}, region="us-west-2")],
        [res(R.RDS_INSTANCE, with_(PG, ("replicateSourceDb",), "arn:db"), region="us-west-2"),
         res(R.BACKUP_REPLICATION, {"kmsKeyId": KEY}, region="us-west-2")]),
    "required-tags": (
        [res(R.RDS_INSTANCE, PG),  # the provider's default tags apply
         res("aws:ec2/route:Route", {}),  # not taggable
         res("aws:autoscaling/group:Group", {"tags": [
             {"key": k, "value": "v"} for k in DEFAULT_TAG_KEYS]})],
        # A Group takes no default tags (no tags_all in the SDK): it must list them itself.
        [res("aws:autoscaling/group:Group", {"tags": [{"key": "Name", "value": "asg"}]}),
         R.Res(R.RDS_INSTANCE, "db", "urn:pulumi:prod::p::t::db", PG)]),
    "k8s-resource-requests": (
        [res(DEPLOYMENT, DEPLOY)],
        [res(DEPLOYMENT, container(DEPLOY, ("resources", "requests", "memory"), None)),
         res(CRONJOB, {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
             "containers": [{"name": "job"}]}}}}}})]),
    "k8s-probes": (
        [res(DEPLOYMENT, DEPLOY)],
        [res(DEPLOYMENT, container(DEPLOY, ("livenessProbe",), None))]),
    "k8s-restricted-security-context": (
        [res(DEPLOYMENT, DEPLOY)],
        [res(DEPLOYMENT, container(DEPLOY, ("securityContext", "allowPrivilegeEscalation"),
                                   None)),
         res(DEPLOYMENT, with_(DEPLOY, ("spec", "template", "spec", "securityContext"), None)),
         res(DEPLOYMENT, container(DEPLOY, ("securityContext", "runAsUser"), 0)),
         res(DEPLOYMENT, container(DEPLOY, ("securityContext", "capabilities"),
                                   {"add": ["SYS_ADMIN"], "drop": ["ALL"]})),
         res(DEPLOYMENT, with_(DEPLOY, ("spec", "template", "spec", "hostNetwork"), True))]),
    "k8s-pod-disruption-budget": (
        [res(DEPLOYMENT, DEPLOY, "web"), res(R.PDB, PDB, "web-pdb")],
        [res(DEPLOYMENT, DEPLOY, "web"),
         res(R.PDB, with_(PDB, ("metadata", "namespace"), "other"), "web-pdb")]),
}


def test_every_rule_has_a_compliant_and_a_violating_case():
    assert set(CASES) == {r.name for r in R.RULES}


def test_the_pack_serves_every_rule_and_the_exceptions_check():
    names = [p.name for p in policies([])]
    assert names == [r.name for r in R.RULES] + [EXCEPTIONS_RULE]
    assert len(set(names)) == len(names)
    levels = {r.name: r.level for r in R.RULES}
    for p in policies([]):
        expected = EnforcementLevel.ADVISORY if levels.get(p.name) == "advisory" \
            else EnforcementLevel.MANDATORY
        assert p.enforcement_level == expected, p.name


def test_every_rule_names_its_source():
    for r in R.RULES:
        assert r.source and r.description, r.name


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_holds_on_the_compliant_case(rule):
    good, _ = CASES[rule]
    assert violations(rule, good) == []


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_on_the_violating_case(rule):
    _, bad = CASES[rule]
    if R.rules_by_name()[rule].check is not None:
        for r in bad:  # each violating resource on its own
            assert violations(rule, [r]), (rule, r.type, r.props)
    else:
        assert violations(rule, bad), rule


def test_a_resource_under_a_preview_unknown_is_not_guessed():
    # pulumi_policy raises UnknownValueError when a rule reads an unknown during preview;
    # offline, unknowns are "[unknown]" strings and must not count as compliant values.
    assert violations("imdsv2-required", [res(R.LAUNCH_TEMPLATE, with_(
        LT, ("metadataOptions", "httpTokens"), "[unknown]"))])


# --- exceptions ----------------------------------------------------------------------------

SPARE = res(DEPLOYMENT, container(DEPLOY, ("livenessProbe",), None), "sofacover-prod-spare")


def _exception(**kw) -> PolicyException:
    return PolicyException(policy="k8s-probes", reason="placeholder pods serve nothing", **kw)


def test_an_exception_waives_its_rule_for_its_resource_only():
    waiver = _exception(type=DEPLOYMENT, name="sofacover-*-spare")
    assert violations("k8s-probes", [SPARE], [waiver]) == []
    other = res(DEPLOYMENT, SPARE.props, "sofacover-prod-web")
    assert violations("k8s-probes", [other], [waiver])
    assert violations("k8s-resource-requests", [res(DEPLOYMENT, container(
        SPARE.props, ("resources",), None), SPARE.name)], [waiver])


def test_a_stale_exception_is_a_violation():
    waiver = _exception(type=DEPLOYMENT, name="sofacover-*-spare")
    assert stale(waiver, [SPARE]) is None
    fixed = res(DEPLOYMENT, DEPLOY, SPARE.name)
    assert "stale" in stale(waiver, [fixed])
    assert violations(EXCEPTIONS_RULE, [fixed], [waiver])
    assert violations(EXCEPTIONS_RULE, [SPARE], [waiver]) == []


def test_an_exception_naming_a_stack_must_match_there():
    by_urn = _exception(urn=SPARE.urn.replace("spare", "gone"))
    assert "matches no resource of stack prod" in stale(by_urn, [SPARE])
    pinned = _exception(type=DEPLOYMENT, name="x", stacks=["prod"])
    assert stale(pinned, [SPARE])
    elsewhere = _exception(type=DEPLOYMENT, name="x", stacks=["dev"])
    assert stale(elsewhere, [SPARE]) is None  # judged where dev is planned


def test_the_exceptions_file_is_valid_and_every_entry_has_a_reason():
    entries = exc_file.load(known={r.name for r in R.RULES})
    assert all(len(e.reason) >= 20 for e in entries)


@pytest.mark.parametrize("text, expected", [
    ("- {policy: k8s-probes, type: T, name: n}", "[0].reason: Field required"),
    ("- {policy: nope, type: T, name: n, reason: long enough reason to pass}",
     "[0].policy: 'nope' is not a rule of the pack"),
    ("- {policy: k8s-probes, reason: long enough reason to pass}", "by urn, or by type"),
    ("{policy: k8s-probes}", "must be a list"),
    ("- {policy: k8s-probes, urn: u, name: n, reason: long enough reason to pass}",
     "exclusive"),
])
def test_a_bad_exceptions_file_is_refused_naming_the_entry(tmp_path, text, expected):
    path = tmp_path / "exceptions.yaml"
    path.write_text(text)
    with pytest.raises(PolicyExceptionError, match=None) as info:
        exc_file.load(path, known={r.name for r in R.RULES})
    assert expected in str(info.value)
    assert "Traceback" not in str(info.value)


# --- the pack as the CLI loads it ----------------------------------------------------------

def test_the_pack_folder_is_what_the_pulumi_cli_expects():
    import yaml

    project = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    requirements = (ROOT / "policy" / "requirements.txt").read_text()
    assert "pulumi-policy==" in requirements
    main = (ROOT / "policy" / "__main__.py").read_text()
    assert "PolicyPack(" in main


def test_the_pack_answers_the_pulumi_cli_over_the_analyzer_protocol():
    """As `pulumi preview --policy-pack policy` runs it: __main__.py started in the pack's
    folder prints its port; the engine asks for the policies, then analyzes resources."""
    import subprocess
    import sys

    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    proc = subprocess.Popen([sys.executable, "__main__.py"], cwd=ROOT / "policy",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
            assert {p.name for p in info.policies} == {r.name for r in R.RULES} | {
                EXCEPTIONS_RULE}
            props = struct_pb2.Struct()
            props.update(with_(LT, ("metadataOptions", "httpTokens"), "optional"))
            found = stub.Analyze(analyzer_pb2.AnalyzeRequest(
                type=R.LAUNCH_TEMPLATE, properties=props, name="lt",
                urn=f"urn:pulumi:prod::sofacover::{R.LAUNCH_TEMPLATE}::lt"), timeout=60)
            fired = {d.policyName for d in found.diagnostics}
            assert "imdsv2-required" in fired and "ebs-encrypted" not in fired
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_docs_policy_md_is_the_current_rule_list():
    from planner.policy import rules_markdown

    assert (ROOT / "docs" / "policy.md").read_text() == rules_markdown(), \
        "regenerate: .venv/bin/sofacover policy-rules > docs/policy.md"


def test_the_pack_imports_only_what_its_requirements_install():
    """The CLI runs the pack in policy/venv, from policy/requirements.txt alone: importing
    the rules must not pull in the plan's own tooling (moto, boto3, planner, rich)."""
    import subprocess
    import sys

    code = ("import sys, policy.pack; print(sorted({m.split('.')[0] for m in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    loaded = set(json.loads(done.stdout.replace("'", '"')))
    assert loaded & {"moto", "boto3", "botocore", "planner", "rich", "typer",
                     "matplotlib", "components"} == set()
    wanted = {"pulumi_policy", "pulumi", "pydantic", "yaml"}
    assert wanted <= loaded
    requirements = (ROOT / "policy" / "requirements.txt").read_text().lower()
    for dist in ("pulumi-policy", "pulumi", "pulumi-aws", "pydantic", "pyyaml"):
        assert f"\n{dist}" in f"\n{requirements}", dist
