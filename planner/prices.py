"""`sofacover prices refresh`: rebuild the table's AWS instance and storage rows from the AWS
Price List API (boto3 `pricing` client, GetProducts with TERM_MATCH filters).

Which rows: every `ec2:<type>`, `rds:<class>`, `elasticache:<node>` and `ebs:gp3` item the
table already has, for each region asked for. Every other row is kept as it is (its
source and date say where it came from). A refreshed row's source names the API call and
the offer's publicationDate; its date is the day of the refresh.

The API's response format: each PriceList entry is a JSON document with `product`
(`attributes`, `sku`), `terms.OnDemand.<offer>.priceDimensions.<rate>` (`unit`,
`pricePerUnit.USD`) and `publicationDate` (docs.aws.amazon.com/aws-cost-management/latest/
APIReference/API_pricing_GetProducts.html; an example response in aws/aws-cli
awscli/examples/pricing/get-products.rst). The endpoint lives in us-east-1, eu-central-1
and ap-south-1 only; it prices every region.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from config.regions import AZ_COUNT
from planner.cost import PRICES_FILE, PriceError, PriceRow, PriceTable, load_prices

PRICING_ENDPOINT_REGION = "us-east-1"
API_DOCS = ("https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/"
            "API_pricing_GetProducts.html")
UNITS = {"Hrs": "hour", "GB-Mo": "GB-month"}


@dataclass(frozen=True)
class Query:
    item: str
    region: str
    service: str
    filters: tuple[tuple[str, str], ...]

    def api_filters(self) -> list[dict[str, str]]:
        return [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in self.filters]


def query_for(item: str, region: str) -> Query | None:
    """The GetProducts filters that select `item` in `region`, or None (not refreshable)."""
    kind, _, name = item.partition(":")
    if kind == "ec2":
        return Query(item, region, "AmazonEC2", (
            ("instanceType", name), ("regionCode", region), ("operatingSystem", "Linux"),
            ("tenancy", "Shared"), ("preInstalledSw", "NA"), ("capacitystatus", "Used")))
    if kind == "rds" and name.startswith("db."):
        return Query(item, region, "AmazonRDS", (
            ("instanceType", name), ("regionCode", region), ("databaseEngine", "PostgreSQL"),
            ("deploymentOption", "Single-AZ")))
    if kind == "elasticache":
        return Query(item, region, "AmazonElastiCache", (
            ("instanceType", name), ("regionCode", region), ("cacheEngine", "Redis")))
    if item == "ebs:gp3":
        return Query(item, region, "AmazonEC2", (
            ("productFamily", "Storage"), ("volumeApiName", "gp3"), ("regionCode", region)))
    return None


def _on_demand(doc: dict[str, Any], where: str) -> tuple[str, float]:
    """(unit, USD) of the single on-demand price dimension of one product document."""
    try:
        offers = doc["terms"]["OnDemand"]
        dims = [d for offer in offers.values() for d in offer["priceDimensions"].values()]
    except (KeyError, TypeError, AttributeError):
        raise PriceError(f"{where}: malformed product: no terms.OnDemand.*.priceDimensions"
                         ) from None
    prices = {(d.get("unit"), d.get("pricePerUnit", {}).get("USD")) for d in dims}
    if len(prices) != 1:
        raise PriceError(f"{where}: {len(prices)} on-demand prices in one product; expected 1")
    unit, usd = prices.pop()
    try:
        return unit, float(usd)
    except (TypeError, ValueError):
        raise PriceError(f"{where}: malformed price {usd!r}") from None


def fetch(client: Any, q: Query, today: str) -> PriceRow:
    """One row from GetProducts; a clear PriceError for no match, several prices, or a
    response that is not what the API documents."""
    where = f"{q.item} in {q.region}"
    pages, token = [], None
    while True:
        kwargs: dict[str, Any] = {"ServiceCode": q.service, "Filters": q.api_filters(),
                                  "FormatVersion": "aws_v1", "MaxResults": 100}
        if token:
            kwargs["NextToken"] = token
        response = client.get_products(**kwargs)
        pages += response.get("PriceList") or []
        token = response.get("NextToken")
        if not token:
            break
    if not pages:
        raise PriceError(f"{where}: no product matches {dict(q.filters)} in {q.service}")
    found = set()
    published = set()
    for entry in pages:
        try:
            doc = json.loads(entry) if isinstance(entry, str) else entry
        except json.JSONDecodeError:
            raise PriceError(f"{where}: malformed response: a PriceList entry is not "
                             "JSON") from None
        if not isinstance(doc, dict):
            raise PriceError(f"{where}: malformed response: a PriceList entry is not an "
                             "object")
        unit, usd = _on_demand(doc, where)
        if usd > 0:  # reserved-capacity placeholders and free tiers list 0
            found.add((unit, usd))
            published.add(str(doc.get("publicationDate", "?")))
    if len(found) != 1:
        raise PriceError(f"{where}: {len(found)} different prices match "
                         f"{dict(q.filters)}; expected one (narrow the filters)")
    unit, usd = found.pop()
    filters = ", ".join(f"{k}={v}" for k, v in q.filters)
    return PriceRow(region=q.region, item=q.item, unit=UNITS.get(unit, unit), usd=usd,
                    date=today, verified=True,
                    source=f"{API_DOCS} ({q.service}, {filters})",
                    note=f"AWS Price List API, publicationDate {', '.join(sorted(published))}")


def refresh(table: PriceTable, regions: Sequence[str], client: Any,
            today: str | None = None) -> tuple[PriceTable, list[PriceRow]]:
    """The table with every refreshable item re-read for each region; returns the new table
    and the rows it changed or added."""
    today = today or dt.date.today().isoformat()
    items = sorted({r.item for r in table.prices if query_for(r.item, "x") is not None})
    rows = {(r.item, r.region): r for r in table.prices}
    changed = []
    for region in regions:
        for item in items:
            q = query_for(item, region)
            assert q is not None
            row = fetch(client, q, today)
            old = rows.get((item, region))
            if old is None or old.usd != row.usd or old.unit != row.unit:
                changed.append(row)
            rows[(item, region)] = row
    new = table.model_copy(update={"date": today, "prices": list(rows.values())})
    return new, changed


HEADER = """\
# The one dated price table of the project (planner/cost.py reads it). Rows whose source
# is the AWS Price List API were written by `sofacover prices refresh`; the others keep
# their own source and date. Columns: region, item, unit, usd, date, source, verified, note.
"""


def dump(table: PriceTable) -> str:
    data = table.model_dump(by_alias=True, exclude_none=True)
    return HEADER + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The dated price table (planner/data/prices.yaml).")


@app.command("refresh")
def refresh_command(
    region: Annotated[list[str] | None, typer.Option(
        "--region", "-r", help="Region to price (repeat; default: us-east-1).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the table here (default: planner/data/prices.yaml).",
        dir_okay=False)] = None,
    table_file: Annotated[Path | None, typer.Option(
        "--table", help="The table to start from (default: planner/data/prices.yaml).",
        exists=True, dir_okay=False)] = None,
) -> None:
    """Re-read the EC2, RDS, ElastiCache and EBS gp3 rows from the AWS Price List API (needs
    AWS credentials allowed pricing:GetProducts)."""
    regions = region or ["us-east-1"]
    bad = [r for r in regions if r not in AZ_COUNT]
    if bad:
        typer.echo(f"error: --region {bad[0]!r} is not a region this project knows; valid: "
                   f"{', '.join(sorted(AZ_COUNT))}", err=True)
        raise typer.Exit(2)
    target = out or PRICES_FILE
    if not target.parent.is_dir():
        typer.echo(f"error: --out {target}: folder {target.parent} does not exist", err=True)
        raise typer.Exit(2)
    import boto3
    import botocore.exceptions

    try:
        table = load_prices(table_file)
        client = boto3.client("pricing", region_name=PRICING_ENDPOINT_REGION)
        new, changed = refresh(table, regions, client)
    except PriceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        typer.echo(f"error: the AWS Price List API refused or failed: {exc}", err=True)
        raise typer.Exit(1) from None
    target.write_text(dump(new))
    for row in changed:
        typer.echo(f"{row.region} {row.item}: {row.usd:g} USD per {row.unit}")
    typer.echo(f"{len(changed)} row(s) changed or added; table written to {target}")
