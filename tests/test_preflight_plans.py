"""The preflight over whole plans: every stack of dev and prod at every phase passes it, an
error fails `sofacover plan` with one line per finding, and docs/preflight.md is current."""

from __future__ import annotations

from typer.testing import CliRunner

from planner import preflight
from planner.cli import app
from tests.conftest import ROOT


def _errors(plans) -> list[str]:
    return [f.line() for f in preflight.check(list(plans)) if f.severity == "error"]


def test_every_prod_stack_passes_the_preflight_at_every_phase(prod, prod_phase2,
                                                              prod_phase3):
    for phase, plans in ((1, prod), (2, prod_phase2), (3, prod_phase3)):
        assert _errors(plans.values()) == [], f"phase {phase}"


def test_dev_passes_the_preflight_at_every_phase(dev_phases):
    for phase, plan in dev_phases.items():
        assert _errors([plan]) == [], f"phase {phase}"


def test_a_preflight_error_fails_the_plan_with_one_line_naming_stack_resource_and_source():
    # PostgreSQL 16 leaves RDS standard support on 2029-02-28: judged as of the day after.
    result = CliRunner().invoke(app, ["plan", "--stack", "dev", "--as-of", "2029-03-01"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 1, result.output
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: dev: aws:rds/instance:Instance sofacover-dev-database-db: "
                           "engineVersion: PostgreSQL 16 left standard support on 2029-02-28")
    assert line.endswith("[aws-rds-engine-version; source: https://docs.aws.amazon.com/"
                         "AmazonRDS/latest/PostgreSQLReleaseNotes/"
                         "postgresql-release-calendar.html]")
    assert "preflight: 1 errors, 0 warnings" in result.stdout


def test_the_same_plan_today_passes():
    result = CliRunner().invoke(app, ["plan", "--stack", "dev", "--as-of", "2026-11-27"])
    assert result.exit_code == 0, result.output
    assert not [ln for ln in result.stdout.splitlines() if ln.startswith("error:")]


def test_as_of_must_be_a_date():
    result = CliRunner().invoke(app, ["plan", "--as-of", "soon"])
    assert result.exit_code == 2 and "--as-of 'soon' is not a date" in result.output


def test_docs_preflight_md_lists_every_rule_with_its_source():
    doc = (ROOT / "docs" / "preflight.md").read_text()
    assert doc == preflight.rules_markdown(), "regenerate: sofacover preflight-rules > " \
        "docs/preflight.md"
    for rule in preflight.RULES.values():
        assert f"`{rule.id}`" in doc and rule.checked in doc
