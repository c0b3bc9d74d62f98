"""AWS regions the project accepts, and the per-region network defaults.

The region list is the public AWS commercial partition (checked 2026-11); a stack file
naming anything else fails validation. Availability-zone counts are public facts used by
validation (a VPC cannot span more AZs than the region has); the offline plan's mocks
answer `getAvailabilityZones` from moto's data, and a test keeps the two in agreement.
"""

from __future__ import annotations

# region -> number of availability zones open to all accounts
AZ_COUNT: dict[str, int] = {
    "us-east-1": 6, "us-east-2": 3, "us-west-1": 2, "us-west-2": 4,
    "ca-central-1": 3, "ca-west-1": 3, "mx-central-1": 3, "sa-east-1": 3,
    "eu-west-1": 3, "eu-west-2": 3, "eu-west-3": 3, "eu-central-1": 3, "eu-central-2": 3,
    "eu-north-1": 3, "eu-south-1": 3, "eu-south-2": 3,
    "ap-southeast-1": 3, "ap-southeast-2": 3, "ap-southeast-3": 3, "ap-southeast-4": 3,
    "ap-southeast-5": 3, "ap-southeast-7": 3, "ap-northeast-1": 3, "ap-northeast-2": 4,
    "ap-northeast-3": 3, "ap-south-1": 3, "ap-south-2": 3, "ap-east-1": 3,
    "me-south-1": 3, "me-central-1": 3, "il-central-1": 3, "af-south-1": 3,
}
KNOWN_REGIONS: frozenset[str] = frozenset(AZ_COUNT)

# Zone ids where EKS does not place control-plane interfaces (CreateCluster fails with
# UnsupportedAvailabilityZoneException). Source: the EKS user guide, "Cluster VPC and subnet
# requirements" (read 2026-11-27). The network leaves them out in every stack (a stack may
# move to EKS in a later phase), so a region offers that many fewer zones to a VPC here.
EKS_UNSUPPORTED_ZONES: dict[str, tuple[str, ...]] = {
    "us-east-1": ("use1-az3",), "us-west-1": ("usw1-az2",), "ca-central-1": ("cac1-az3",),
}
EKS_UNSUPPORTED_ZONE_IDS: tuple[str, ...] = tuple(
    z for zones in EKS_UNSUPPORTED_ZONES.values() for z in zones)


def usable_az_count(region: str) -> int:
    """Availability zones a VPC of this project can span in `region`."""
    return AZ_COUNT[region] - len(EKS_UNSUPPORTED_ZONES.get(region, ()))

# One /16 per region, disjoint, so any two regions can be peered later without renumbering.
DEFAULT_VPC_CIDR: dict[str, str] = {
    "us-east-1": "10.10.0.0/16",
    "us-west-2": "10.20.0.0/16",
    "eu-west-1": "10.30.0.0/16",
    "ap-southeast-1": "10.40.0.0/16",
}
# dev lives in its own range so it can never collide with a prod region.
DEV_VPC_CIDR = "10.100.0.0/16"
FALLBACK_VPC_CIDR = "10.0.0.0/16"

