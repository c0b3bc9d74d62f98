"""The thresholds table and its Prometheus rules, checked by the real promtool.

`promtool check rules` validates the rendered rule file; `promtool test rules` runs unit
tests generated from the table: for every rule, input series that cross its level for its
duration (the alert fires, with its labels and annotations), series just inside the level
(silence) and series that cross it for less than the duration (silence). Every expected
value comes from config/thresholds.py, so a level changed there moves the tests with it.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring import render_prometheus_rules
from config import seed, thresholds
from config.thresholds import METRICS, SEED_ALERTS, AlertRule, Threshold, alert_rules

INSTALL = "apt-get install -y prometheus"
INTERVAL_MIN = 1
CROSS, INSIDE = 1.05, 0.99  # how far past / short of a level the test series sit


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool is not installed; install it with `{INSTALL}` (Debian package "
                    "prometheus ships promtool), then run the tests again")
    return path


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


def write_rules(path: Path, **kw: Any) -> Path:
    path.write_text(yaml.safe_dump(render_prometheus_rules(**kw), sort_keys=False))
    return path


@pytest.fixture(scope="session")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rules(tmp_path_factory.mktemp("rules") / "sofacover.rules.yml")


# --- series that make each signal read a given value ------------------------------------------

def _f(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _series(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def gauge(metric: str, labels: dict[str, str], value: float, n: int) -> dict[str, str]:
    return {"series": _series(metric, labels), "values": f"{_f(value)}+0x{n}"}


def counter(metric: str, labels: dict[str, str], per_minute: float, n: int) -> dict[str, str]:
    return {"series": _series(metric, labels), "values": f"0+{_f(per_minute)}x{n}"}


# Input series, the alert's labels, and the minute from which the expression reads the value:
# 0 for gauges, 1 for ratios of counters (rate needs two samples), the rate window for an
# absolute rate (rate divides by the whole window, so it ramps up while the window fills).
Series = tuple[list[dict[str, str]], dict[str, str], int]
NODE = {"instance": "node-0"}
DISK = {**NODE, "device": "/dev/nvme0n1p1", "fstype": "ext4", "mountpoint": "/"}
HPA = {"namespace": "sofacover", "horizontalpodautoscaler": "web"}


def _cpu(v: float, n: int) -> Series:
    idle, user = ({**NODE, "cpu": "0", "mode": mode} for mode in ("idle", "user"))
    return [counter("node_cpu_seconds_total", idle, (1 - v / 100) * 60, n),
            counter("node_cpu_seconds_total", user, v / 100 * 60, n)], NODE, 1


def _memory(v: float, n: int) -> Series:
    return [gauge("node_memory_MemTotal_bytes", NODE, 1000, n),
            gauge("node_memory_MemAvailable_bytes", NODE, 1000 * (1 - v / 100), n)], NODE, 0


def _disk(v: float, n: int) -> Series:
    return [gauge("node_filesystem_size_bytes", DISK, 1000, n),
            gauge("node_filesystem_avail_bytes", DISK, 1000 * (1 - v / 100), n)], DISK, 0


def _latency(v: float, n: int) -> Series:
    # Every request in one bucket (0, b]: histogram_quantile interpolates q * b.
    b = v / 1000 / thresholds.LATENCY_QUANTILE
    return [counter("http_request_duration_seconds_bucket", {"le": _f(b)}, 60, n),
            counter("http_request_duration_seconds_bucket", {"le": "+Inf"}, 60, n)], {}, 1


def _errors(v: float, n: int) -> Series:
    return [counter("http_requests_total", {"code": "500"}, v, n),
            counter("http_requests_total", {"code": "200"}, 100 - v, n)], {}, 1


def _gauge_of(metric: str, labels: dict[str, str]) -> Callable[[float, int], Series]:
    def build(v: float, n: int) -> Series:
        return [gauge(metric, {**NODE, **labels}, v, n)], NODE, 0
    return build


def _redis_memory(v: float, n: int) -> Series:
    return [gauge("redis_memory_used_bytes", NODE, 10 * v, n),
            gauge("redis_memory_max_bytes", NODE, 1000, n)], NODE, 0


RATE_WINDOW_MIN = int(re.search(r"\[(\d+)m\]",
                                thresholds.SIGNALS["redis_evictions_per_minute"].query)[1])


def _evictions(v: float, n: int) -> Series:
    return [counter("redis_evicted_keys_total", NODE, v, n)], NODE, RATE_WINDOW_MIN


def _hpa(v: float, n: int) -> Series:
    current = seed.HPA_MAX if v else seed.HPA_MAX - 1
    return [gauge("kube_horizontalpodautoscaler_status_current_replicas", HPA, current, n),
            gauge("kube_horizontalpodautoscaler_spec_max_replicas", HPA, seed.HPA_MAX, n)], HPA, 0


def _conversion(v: float, n: int) -> Series:
    return [counter("sofacover_sessions_total", {}, 100, n),
            counter("sofacover_orders_total", {}, v, n)], {}, 1


def _abandonment(v: float, n: int) -> Series:
    return [counter("sofacover_carts_total", {}, 100, n),
            counter("sofacover_checkouts_total", {}, 100 - v, n)], {}, 1


def _satisfaction(v: float, n: int) -> Series:
    return [gauge("sofacover_satisfaction_score", {}, v, n)], {}, 0


SERIES: dict[str, Callable[[float, int], Series]] = {
    "cpu_percent": _cpu,
    "memory_percent": _memory,
    "disk_percent": _disk,
    "latency_p95_ms": _latency,
    "error_rate_percent": _errors,
    "db_connections": _gauge_of("pg_stat_database_numbackends", {"datname": "sofacover"}),
    "replica_lag_seconds": _gauge_of("pg_replication_lag_seconds", {}),
    "redis_memory_percent": _redis_memory,
    "redis_evictions_per_minute": _evictions,
    "redis_replication_lag_seconds": _gauge_of("redis_connected_slave_lag_seconds",
                                               {"slave_ip": "10.10.192.12"}),
    "pgbouncer_client_wait_seconds": _gauge_of("pgbouncer_pools_client_maxwait_seconds",
                                               {"database": "sofacover", "user": "app"}),
    "hpa_at_max": _hpa,
    "conversion_rate_percent": _conversion,
    "cart_abandonment_percent": _abandonment,
    "satisfaction_score": _satisfaction,
}


def value(r: AlertRule, factor: float) -> float:
    """A reading `factor` of the way to the rule's level, on its bad side when > 1."""
    if r.threshold is None:
        return 1.0 if factor > 1 else 0.0
    return r.threshold * factor if r.operator.startswith(">") else r.threshold / factor


def expected_alert(r: AlertRule, labels: dict[str, str]) -> dict[str, Any]:
    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)

    return {"exp_labels": {**labels, "severity": r.severity, "category": r.group},
            "exp_annotations": {"summary": fill(r.summary), "description": fill(r.description)}}


Case = str  # "fires": crossed for its duration; "inside": just inside the level all along;
# "short": crossed, but for one interval less than the duration


def rule_test(r: AlertRule, reading: float, case: Case) -> dict[str, Any]:
    minutes = r.for_seconds // 60
    build = SERIES[r.signal or ""]
    _, _, active_from = build(reading, 1)
    series, labels, _ = build(reading, active_from + minutes + 10)
    at = active_from + minutes + (-INTERVAL_MIN if case == "short" else INTERVAL_MIN)
    return {
        "interval": f"{INTERVAL_MIN}m",
        "input_series": series,
        "alert_rule_test": [{
            "eval_time": f"{at}m", "alertname": r.name,
            "exp_alerts": [expected_alert(r, labels)] if case == "fires" else [],
        }],
    }


def write_tests(path: Path, rules: Path, tests: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"rule_files": [str(rules)],
                                    "evaluation_interval": f"{INTERVAL_MIN}m",
                                    "tests": tests}, sort_keys=False))
    return path


def promtool_test(promtool: str, tmp_path: Path, rules: Path, tests: list[dict]) -> None:
    result = run(promtool, "test", "rules", str(write_tests(tmp_path / "test.yml", rules, tests)))
    assert result.returncode == 0, result.stdout + result.stderr


RULES = [r for r in alert_rules() if r.signal is not None]
IDS = [r.name for r in RULES]
CASES: dict[Case, float] = {"fires": CROSS, "inside": INSIDE, "short": CROSS}


@pytest.fixture(scope="module")
def generated(promtool: str, rule_file: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[Case, str], str]:
    """promtool's verdict on every generated rule test, from ONE `promtool test rules` run.

    Each (case, rule) is its own test file; promtool reports every file under its own
    "Unit Testing:  <file>" header, "  SUCCESS" or "  FAILED:" and the failures (on stderr,
    merged here into stdout so each failure stays under its file's header). The tests below
    assert their own file's verdict, so a wrong rule fails exactly its own tests.

    Each file loads the rendered rules that read its input series (rules_that_read), not all
    of them: promtool evaluates every loaded rule at every step, and the rules that read
    none of the series return nothing, so they only cost time.
    """
    folder = tmp_path_factory.mktemp("rule-tests")
    rendered = yaml.safe_load(rule_file.read_text())
    rule_files: dict[str, Path] = {}  # by content
    paths = {}
    for case, factor in CASES.items():
        for r in RULES:
            test = rule_test(r, value(r, factor), case)
            metrics = {s["series"].split("{")[0] for s in test["input_series"]}
            text = yaml.safe_dump(rules_that_read(rendered, metrics, r.name), sort_keys=False)
            if text not in rule_files:
                rule_files[text] = folder / f"rules-{len(rule_files)}.yml"
                rule_files[text].write_text(text)
            paths[case, r.name] = write_tests(folder / f"{case}-{r.name}.yml",
                                              rule_files[text], [test])
    result = subprocess.run([promtool, "test", "rules", *map(str, paths.values())],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=300)
    parts = re.split(r"^Unit Testing:  (.+)\n", result.stdout, flags=re.MULTILINE)
    verdicts = dict(zip(parts[1::2], (p.strip() for p in parts[2::2]), strict=True))
    # promtool exits 0 exactly when every file passed; anything else is a broken run.
    all_passed = all(verdicts.get(str(p)) == "SUCCESS" for p in paths.values())
    assert all_passed == (result.returncode == 0), result.stdout
    return {key: verdicts.get(str(p), f"no result for {p} in promtool's output:\n"
                                      f"{result.stdout}")
            for key, p in paths.items()}


def rules_that_read(rendered: dict[str, Any], metrics: set[str], alert: str) -> dict[str, Any]:
    """The rendered groups cut, in order, to the rule under test and the rules whose expression
    names one of `metrics` or could select any series (by __name__, by labels alone as in
    `{instance="x"}`, or the ALERTS series that alerts write).

    A rule that selects none of a test's series evaluates to nothing on it: it can neither
    fire nor fail (promtool fails a test on any loaded rule's evaluation error, and the rules
    that could are kept).
    """
    def reads(rule: dict[str, Any]) -> bool:
        return (rule.get("alert") == alert or re.search(r"(^|[^\w:])\{", rule["expr"]) is not None
                or any(name in rule["expr"] for name in metrics | {"__name__", "ALERTS"}))

    groups = [{**g, "rules": [r for r in g["rules"] if reads(r)]} for g in rendered["groups"]]
    return {**rendered, "groups": [g for g in groups if g["rules"]]}


def assert_passed(generated: dict[tuple[Case, str], str], case: Case, r: AlertRule) -> None:
    verdict = generated[case, r.name]
    assert verdict == "SUCCESS", f"promtool test rules {case}-{r.name}.yml:\n{verdict}"


# --- promtool check rules -------------------------------------------------------------------

def test_rendered_rules_pass_promtool_check(promtool, rule_file):
    result = run(promtool, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


def test_promtool_check_rejects_a_broken_expression(promtool, tmp_path):
    broken = dataclasses.replace(RULES[0], operator=">>")
    result = run(promtool, "check", "rules",
                 str(write_rules(tmp_path / "broken.yml", rules=[broken])))
    assert result.returncode != 0
    assert broken.name in result.stdout + result.stderr


def test_every_seed_alert_is_in_the_rendered_file(rule_file):
    rendered = yaml.safe_load(rule_file.read_text())
    names = [r["alert"] for g in rendered["groups"] for r in g["rules"]]
    assert [a.name for a in SEED_ALERTS] == names[:len(SEED_ALERTS)]
    assert len(names) == len(set(names)) == len(RULES)


# --- promtool test rules, generated per rule -------------------------------------------------

@pytest.mark.parametrize("r", RULES, ids=IDS)
def test_alert_fires_when_its_level_is_crossed_for_its_duration(generated, r):
    assert_passed(generated, "fires", r)


@pytest.mark.parametrize("r", RULES, ids=IDS)
def test_alert_stays_silent_just_inside_its_level(generated, r):
    assert_passed(generated, "inside", r)


@pytest.mark.parametrize("r", RULES, ids=IDS)
def test_alert_stays_silent_while_crossed_for_less_than_its_duration(generated, r):
    assert_passed(generated, "short", r)


def test_a_threshold_changed_in_the_table_moves_the_rules_and_the_tests(
        promtool, tmp_path, monkeypatch):
    row = METRICS["memory_percent"]
    before = thresholds.rule("HighMemoryUsage")
    lowered = row.warning - 10
    monkeypatch.setitem(METRICS, "memory_percent", dataclasses.replace(row, warning=lowered))
    after = thresholds.rule("HighMemoryUsage")
    assert after.threshold == lowered and after.expr.endswith(f"> {thresholds.number(lowered)}")
    rules = write_rules(tmp_path / "rules.yml")
    # A reading between the new and the old level: silent before, firing now.
    reading = (lowered + before.threshold) / 2
    promtool_test(promtool, tmp_path, rules, [rule_test(after, reading, "fires")])


def test_a_seed_alert_changed_in_the_table_moves_its_rule(promtool, tmp_path, monkeypatch):
    high = thresholds.seed_alert("HighCPUUsage")
    changed = dataclasses.replace(high, threshold=high.threshold - 5, for_seconds=600)
    monkeypatch.setattr(thresholds, "SEED_ALERTS",
                        tuple(changed if a is high else a for a in SEED_ALERTS))
    r = thresholds.rule("HighCPUUsage")
    assert r.for_ == "10m" and r.expr.endswith(f"> {thresholds.number(changed.threshold)}")
    rules = write_rules(tmp_path / "rules.yml")
    promtool_test(promtool, tmp_path, rules, [
        rule_test(r, value(r, CROSS), "fires"),
        rule_test(r, value(r, CROSS), "short"),
    ])


def test_the_pool_budget_moves_the_budget_rule(promtool, tmp_path):
    budget = seed.PGBOUNCER_MAX_SERVER_CONNECTIONS * 2
    r = thresholds.rule("DatabaseConnectionsNearPoolBudget", alert_rules(budget))
    assert r.threshold == budget * METRICS["pool_budget_percent"].critical / 100
    rules = write_rules(tmp_path / "rules.yml", pool_budget=budget)
    promtool_test(promtool, tmp_path, rules, [
        rule_test(r, value(r, CROSS), "fires"),
        rule_test(r, value(r, INSIDE), "inside"),
    ])


# --- the table itself ---------------------------------------------------------------------

SEED_RULES_AS_WRITTEN = ("HighCPUUsage cpu > 80 for 5m (warning); CriticalCPUUsage cpu > 90 "
                         "for 2m (critical); DatabaseConnectionsHigh connections > 80 for 3m "
                         "(warning)")  # the seed plan's words


def test_seed_alerts_read_exactly_as_the_seed_writes_them():
    words = {"cpu_percent": "cpu", "db_connections": "connections"}
    rendered = "; ".join(f"{a.name} {words[a.signal]} > {thresholds.number(a.threshold)} for "
                         f"{thresholds.duration(a.for_seconds)} ({a.severity})"
                         for a in SEED_ALERTS)
    assert rendered == SEED_RULES_AS_WRITTEN


def test_seed_alert_rules_use_the_seed_numbers():
    for a in SEED_ALERTS:
        r = thresholds.rule(a.name)
        assert r.expr.endswith(f"> {thresholds.number(a.threshold)}")
        assert (r.for_seconds, r.severity, r.group) == (a.for_seconds, a.severity, "seed")


def test_critical_cpu_alert_sits_at_the_cpu_critical_level():
    # The seed writes 90 twice (alert rule and metric table); they must not drift apart.
    assert thresholds.seed_alert("CriticalCPUUsage").threshold == METRICS["cpu_percent"].critical


@pytest.mark.parametrize("r", RULES, ids=IDS)
def test_every_expression_ends_with_its_own_level(r):
    if r.threshold is None:
        assert r.name == "HPAAtMaxReplicas"
        return
    assert r.expr.endswith(f" {r.operator} {thresholds.number(r.threshold)}")
    assert r.summary.startswith(thresholds.SIGNALS[r.signal or ""].what)


def test_levels_in_pairs_come_from_their_metrics_row():
    for r in RULES:
        row = METRICS.get(thresholds.SIGNALS[r.signal or ""].metric or "")
        if row is not None and r.group != "seed":
            assert r.threshold == row.level(r.severity)
            assert r.operator == row.operator


def test_lower_is_worse_metrics_alert_below_their_level():
    assert thresholds.rule("ConversionRateLow").operator == "<"
    assert thresholds.rule("SatisfactionCritical").operator == "<"
    assert METRICS["throughput_rpm"].direction == "below"


def test_a_critical_level_milder_than_the_warning_is_refused():
    with pytest.raises(ValueError, match="critical .* must be worse than warning"):
        Threshold("cpu", "%", 90, 70, "above", "seed")
    with pytest.raises(ValueError, match="critical .* must be worse than warning"):
        Threshold("conversion", "%", 1, 2, "below", "seed")


def test_a_pool_budget_below_one_is_refused():
    with pytest.raises(ValueError, match="pool_budget"):
        alert_rules(0)


def test_unknown_rule_names_fail_loudly():
    with pytest.raises(KeyError, match="NoSuchRule"):
        thresholds.rule("NoSuchRule")


@pytest.mark.parametrize(("seconds", "text"), [(120, "2m"), (3600, "1h"), (90, "90s")])
def test_durations_render_as_prometheus_writes_them(seconds, text):
    assert thresholds.duration(seconds) == text


def test_every_signal_has_series_for_the_tests():
    # A signal added to the table without test series must fail here, not be skipped.
    assert set(thresholds.SIGNALS) == set(SERIES)
