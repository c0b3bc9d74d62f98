"""Small building blocks more than one component uses."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws


def port_security_group(name: str, *, vpc_id: pulumi.Input[str], port: int, what: str,
                        source_group_ids: Sequence[pulumi.Input[str]] = (),
                        source_cidrs: Sequence[str] = (), tags: dict[str, str],
                        opts: pulumi.ResourceOptions) -> aws.ec2.SecurityGroup:
    """A security group that admits one TCP port from the given groups and CIDRs only
    (none given: admits nothing), with no egress: a data store answers, never calls out."""
    ingress = [aws.ec2.SecurityGroupIngressArgs(
        protocol="tcp", from_port=port, to_port=port,
        security_groups=list(source_group_ids) or None, cidr_blocks=list(source_cidrs) or None,
        description=f"{what} from the app tier")] if source_group_ids or source_cidrs else []
    return aws.ec2.SecurityGroup(name, vpc_id=vpc_id, description=f"{what} {port}",
                                 ingress=ingress, tags=tags, opts=opts)
