"""`sofacover report`'s files: report.md, report.json and three pictures, from the plan.

What goes in (`build`): the planned stacks of an environment (or one stack) at a phase, the
time-to-capacity simulation of each serving stack (planner/capacity.py), their monthly cost
(planner/cost.py), composite availability (planner/availability.py) and the PgBouncer
connection budget (planner/connections.py); optionally the cost of a second phase to set
against it. What comes out (`write`): DIR/report.md, DIR/report.json, DIR/timeline.png (the
replicas and nodes through the N x step), DIR/cost.png (cost by phase and component against
the seed's budget) and DIR/environment.png (regions, components and links).

No secret reaches these files: the plan masks secret inputs before anything is kept, and the
report reads only sizes, types, counts and names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import seed
from planner import availability as avail
from planner import cost as costs
from planner.connections import ConnectionBudget, connection_budget

if TYPE_CHECKING:
    from planner.capacity import Result
    from planner.engine import StackPlan

FILES = ("report.md", "report.json", "timeline.png", "cost.png", "environment.png")
KPI_S = seed.SCALE_OUT_KPI_S


@dataclass
class Report:
    scope: str
    """`environment prod` or `stack prod-eu-west-1`."""
    environment: str
    phase: int
    load: float
    plans: list[StackPlan]
    capacity: dict[str, Result | None]
    cost: costs.EnvironmentCost
    availability: avail.EnvironmentAvailability
    connections: ConnectionBudget
    compare: costs.EnvironmentCost | None = None
    timing_note: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    """Serving stacks the simulator could not run, with the reason."""
    literal: dict[str, Result] = field(default_factory=dict)
    """Each kubernetes serving stack under the seed's literal HPA (its scale-up window, CPU
    limit = request): what the configured HPA is set against."""


LITERAL = (f"the seed's literal HPA ({seed.HPA_UP_WINDOW_S} s scale-up window, CPU limit = "
           "request)")


def build(plans: Sequence[StackPlan], *, scope: str, load: float = 10.0,
          compare_plans: Sequence[StackPlan] | None = None,
          analyse: Callable[[StackPlan], Result] | None = None,
          analyse_literal: Callable[[StackPlan], Result] | None = None,
          prices: costs.PriceTable | None = None) -> Report:
    """Everything the files say, computed once. `analyse` runs the capacity simulation of
    one serving stack (default: planner.capacity.analyse_stack on its validated config);
    `analyse_literal` the same kubernetes stack under the seed's literal HPA (default:
    planner.capacity.analyse_seed_literal)."""
    from planner import capacity

    timing = capacity.Timing()

    def default(plan: StackPlan) -> Result:
        assert plan.config is not None
        return capacity.analyse_stack(plan.config, load=load, timing=timing, kpi_s=KPI_S)

    def default_literal(plan: StackPlan) -> Result:
        assert plan.config is not None
        return capacity.analyse_seed_literal(plan.config, load=load, timing=timing,
                                             kpi_s=KPI_S)

    run = analyse or default
    run_literal = analyse_literal or default_literal
    results: dict[str, Result | None] = {}
    literal: dict[str, Result] = {}
    errors: dict[str, str] = {}
    for plan in plans:
        cfg = plan.config
        if cfg is not None and cfg.hosts_app and cfg.compute is not None:
            try:
                results[plan.stack] = run(plan)
                if cfg.compute.platform == "kubernetes":
                    literal[plan.stack] = run_literal(plan)
            except ValueError as exc:
                results[plan.stack], errors[plan.stack] = None, str(exc)
        else:
            results[plan.stack] = None
    note = timing.assumptions()
    prices = prices or costs.load_prices()
    return Report(scope, plans[0].environment, plans[0].phase, load, list(plans), results,
                  costs.environment_cost(plans, prices=prices),
                  avail.environment_availability(plans), connection_budget(plans),
                  costs.environment_cost(compare_plans, prices=prices) if compare_plans
                  else None, note, errors, literal)


# === report.json ==============================================================================

def _r(v: float, n: int = 2) -> float:
    return round(v, n)


def as_json(rep: Report) -> dict[str, Any]:
    """Availability in percent (as the seed's targets are written), money in USD a month."""
    av = {s.stack: s for s in rep.availability.stacks}
    stacks = {}
    for sc in rep.cost.stacks:
        res = rep.capacity.get(sc.stack)
        sa = av[sc.stack]
        stacks[sc.stack] = {
            "region": sc.region,
            "serving": res is not None,
            "timeToCapacitySeconds": res.seconds if res is not None else None,
            "meetsScaleOutKpi": res.meets(KPI_S) if res is not None else None,
            "binding": list(res.binding) if res is not None else [],
            "seedLiteralHpa": _literal_json(rep.literal.get(sc.stack)),
            "monthlyCostUsd": _r(sc.monthly_usd),
            "spareCapacityUsd": _r(sc.spare_usd),
            "costByCategoryUsd": {k: _r(v) for k, v in sorted(sc.by_category().items())},
            "availability": _r(sa.availability * 100, 4) if sa.serving or sa.data else None,
        }
    env = rep.cost
    out: dict[str, Any] = {
        "scope": rep.scope, "phase": rep.phase,
        "loadStep": rep.load, "scaleOutKpiSeconds": KPI_S, "priceDate": env.price_date,
        "stacks": stacks,
        "environment": {
            "name": rep.environment,
            "monthlyCostUsd": _r(env.monthly_usd),
            "costPerDailyUserUsd": _r(env.cost_per_daily_user, 3),
            "availability": _r(rep.availability.availability * 100, 4),
            "readPathAvailability": _r(rep.availability.read_path * 100, 4),
            "budgetUsd": _r(env.budget_usd),
            "spareCapacityUsd": _r(env.spare_usd),
            "unverifiedPriceUsd": _r(env.unverified_usd),
            "baselineCostPerDailyUserUsd": _r(costs.baseline_cost_per_user(), 3),
            "targetCostPerDailyUserUsd": _r(costs.target_cost_per_user(), 3),
            "dailyUsers": _r(env.usage.daily_users, 0),
            "costByCategoryUsd": {k: _r(v) for k, v in env.by_category().items()},
            "savingsUsd": {s.lever: {"monthlyUsd": _r(s.monthly_usd), "applied": s.applied}
                           for s in env.savings},
            "availabilityTargets": list(avail.TARGETS),
        },
        "connectionBudget": [
            {"stack": d.stack, "database": d.resource, "maxConnections": d.max_connections,
             "usable": d.usable, "serverConnections": d.used,
             "steadyServerConnections": d.steady, "problem": d.problem,
             "pools": [{"stack": p.stack, "pool": p.name, "perInstance": p.per_instance,
                        "instances": p.instances, "surge": p.surge} for p in d.pools]}
            for d in rep.connections.databases],
        "pricedAtAnotherRegion": list(env.fallbacks),
        "notPriced": list(env.unpriced),
    }
    if rep.compare is not None:
        c = rep.compare
        out["comparePhase"] = {"phase": c.phase, "monthlyCostUsd": _r(c.monthly_usd),
                               "costPerDailyUserUsd": _r(c.cost_per_daily_user, 3),
                               "budgetUsd": _r(c.budget_usd),
                               "costByCategoryUsd": {k: _r(v)
                                                     for k, v in c.by_category().items()}}
    return out


def _literal_json(res: Result | None) -> dict[str, Any] | None:
    """The seed's literal HPA on the same stack (null: not a kubernetes serving stack)."""
    if res is None:
        return None
    return {"scaleUpWindowSeconds": seed.HPA_UP_WINDOW_S, "cpuLimitEqualsRequest": True,
            "timeToCapacitySeconds": res.seconds, "meetsScaleOutKpi": res.meets(KPI_S),
            "binding": list(res.binding)}


# === report.md ================================================================================

def _ttc(res: Result) -> str:
    took = f"{res.seconds} s" if res.seconds is not None else "not within the horizon"
    return f"{took}: {'PASS' if res.meets(KPI_S) else 'MISS'}"


def _usd(v: float) -> str:
    return f"${v:,.0f}"


def _pct(v: float) -> str:
    return f"{v * 100:.3f}%"


def markdown(rep: Report) -> str:
    env, av = rep.cost, rep.availability
    by_stack_av = {s.stack: s for s in av.stacks}
    lines = [f"# SofaCover report: {rep.scope}, phase {rep.phase}", "",
             "Made by `sofacover report` from the offline plan (the program under mocks): "
             "nothing here was measured on a deployed stack. Prices: "
             f"planner/data/prices.yaml, dated {env.price_date}.", "",
             f"| stack | region | {rep.load:g}x time to capacity | seed's literal HPA | "
             "monthly cost | availability |",
             "|---|---|---|---|---|---|"]
    for sc in env.stacks:
        res = rep.capacity.get(sc.stack)
        if res is None:
            ttc = rep.errors.get(sc.stack, "not serving")
        elif res.seconds is None:
            ttc = "not within the horizon: MISS"
        else:
            ttc = f"{res.seconds} s: {'PASS' if res.meets(KPI_S) else 'MISS'}"
        sa = by_stack_av[sc.stack]
        a = _pct(sa.availability) if sa.serving or sa.data else "-"
        lit = rep.literal.get(sc.stack)
        lines.append(f"| {sc.stack} | {sc.region or 'global'} | {ttc} | "
                     f"{_ttc(lit) if lit is not None else '-'} | "
                     f"{_usd(sc.monthly_usd)} | {a} |")
    budget_ok = env.monthly_usd <= env.budget_usd
    cpu_ok = env.cost_per_daily_user <= costs.target_cost_per_user()
    if not rep.scope.startswith("environment"):
        lines += ["", f"**{rep.scope} alone**: the seed's budget, its cost per user and its "
                  "uptime are the environment's; the figures below cover this stack only "
                  f"(`--env {rep.environment}` for the whole).", ""]
    lines += ["", "## The environment", "",
              f"- Monthly cost: **{_usd(env.monthly_usd)}** against the seed's budget of "
              f"{_usd(env.budget_usd)} at month {env.usage.month} (phase {rep.phase}; "
              f"$1,150 today, $4,550 at 6 months, linear between): "
              f"**{'within' if budget_ok else 'OVER'}**"
              + ("" if budget_ok else f" by {_usd(env.monthly_usd - env.budget_usd)}") + ".",
              f"- Cost per daily user: **${env.cost_per_daily_user:.2f}** for "
              f"{env.usage.daily_users:,.0f} daily users, against today's "
              f"${costs.baseline_cost_per_user():.2f} and the seed's target of "
              f"${costs.target_cost_per_user():.2f} (down "
              f"{seed.COST_PER_USER_REDUCTION:.0%}): **{'met' if cpu_ok else 'MISSED'}**.",
              f"- Availability (write path: orders, carts): **{_pct(av.write_path)}**; read "
              f"path (browsing): {_pct(av.read_path)}. Targets: "
              + ", ".join(f"{t}% {'met' if av.meets(t) else 'MISSED'}"
                          for t in avail.TARGETS) + ".",
              f"- Connection budget: "
              f"**{'fits' if rep.connections.ok else 'DOES NOT FIT'}** (below).", ""]
    if rep.environment != "prod":
        lines += [f"The seed's budget is production's; {rep.environment} is set against it "
                  "only for scale.", ""]
    lines += _capacity_md(rep) + _cost_md(rep) + _availability_md(rep) + _connections_md(rep)
    lines += ["## The environment as planned", "", "![environment](environment.png)", ""]
    return "\n".join(lines) + "\n"


def _capacity_md(rep: Report) -> list[str]:
    out = ["## Time to capacity", "",
           f"A step of {rep.load:g}x load at t = 0 on each serving stack as configured "
           f"(planner/capacity.py); the seed's KPI is capacity within {KPI_S} s. Assumed: "
           f"{rep.timing_note}.", ""]
    for stack, res in rep.capacity.items():
        if res is None:
            if stack in rep.errors:
                out.append(f"- {stack}: not simulated: {rep.errors[stack]}")
            continue
        out.append(f"- {stack} ({res.platform}): {_ttc(res)}")
        out += [f"  - {'binds' if i == 0 else 'then'}: {b}" for i, b in enumerate(res.binding)]
        out += [f"  - note: {n}" for n in res.notes]
        lit = rep.literal.get(stack)
        if lit is not None:
            out.append(f"  - under {LITERAL}: {_ttc(lit)}"
                       + ("" if lit.meets(KPI_S) else
                          "; binds: " + "; then ".join(lit.binding or ["not found"])))
    if rep.literal:
        out += ["", f"The seed's literal HPA is set beside each kubernetes stack: the same "
                f"services and nodes, with the seed's {seed.HPA_UP_WINDOW_S} s scale-up "
                "stabilisation window, only its +"
                f"{seed.HPA_UP_PERCENT}% per {seed.HPA_UP_PERIOD_S} s policy, and a CPU "
                "limit equal to the request (planner/capacity.py analyse_seed_literal)."]
    return out + ["", "![timeline](timeline.png)", ""]


def _cost_md(rep: Report) -> list[str]:
    env = rep.cost
    a = env.assumptions
    cats = env.by_category()
    out = ["## Cost", "", "| category | this plan | seed baseline |", "|---|---|---|"]
    for c in costs.CATEGORIES:
        base = seed.BUDGET_BASELINE_USD.get(c)
        out.append(f"| {c} | {_usd(cats[c])} | {_usd(base) if base is not None else '-'} |")
    out += [f"| **total** | **{_usd(env.monthly_usd)}** | "
            f"**{_usd(sum(seed.BUDGET_BASELINE_USD.values()))}** |", ""]
    by_item: dict[str, float] = {}
    for li in (li for sc in env.stacks for li in sc.lines):
        by_item[_label(li)] = by_item.get(_label(li), 0.0) + li.monthly_usd
    top = sorted(by_item.items(), key=lambda kv: -kv[1])[:5]
    if top and env.monthly_usd:
        out += ["Where it goes: " + "; ".join(
            f"{item} {_usd(v)} ({v / env.monthly_usd:.0%})" for item, v in top) + ".", ""]
    if env.spare_usd:
        held = [f"{sc.stack} {_usd(sc.spare_usd)} ({sc.fleet.spare_off_peak} "
                f"{sc.fleet.instance_type} off-peak)"
                for sc in env.stacks if sc.spare_usd and sc.fleet is not None]
        out += [f"Spare capacity for the {KPI_S} s scale-out: **{_usd(env.spare_usd)}** a "
                f"month ({env.spare_usd / env.monthly_usd:.0%} of the total): the nodes "
                "Cluster Autoscaler keeps up only for the placeholder pods, which real pods "
                "pre-empt in a spike (" + "; ".join(held) + "). EKS node groups the "
                "autoscaler owns are priced at the nodes it keeps (capacity.steady_nodes), "
                "not at the plan's desired capacity.", ""]
    if rep.compare is not None:
        c = rep.compare
        out += [f"Phase {c.phase} for comparison: {_usd(c.monthly_usd)} a month "
                f"(budget {_usd(c.budget_usd)}), ${c.cost_per_daily_user:.2f} per daily user "
                f"for {c.usage.daily_users:,.0f}, spare capacity {_usd(c.spare_usd)}; "
                f"phase {rep.phase} is "
                f"{_usd(env.monthly_usd - c.monthly_usd)} "
                f"{'more' if env.monthly_usd >= c.monthly_usd else 'less'}.", ""]
    out += ["Savings, apart from the total:", "", "| lever | a month | in the total | how |",
            "|---|---|---|---|"]
    out += [f"| {s.lever} | {_usd(s.monthly_usd)} | {'yes' if s.applied else 'no'} | {s.how} |"
            for s in env.savings]
    u = env.usage
    out += ["", f"Usage (the seed's targets at month {u.month}, linear from the baseline to "
            f"6 months): {u.daily_users:,.0f} daily users, {u.peak_concurrent_users:,.0f} at "
            f"the peak, {u.monthly_traffic_gb:,.0f} GB of traffic a month, a "
            f"{u.database_gb:,.0f} GB database. Assumptions (planner/cost.py `Assumptions`; "
            "UNVERIFIED estimates): "
            + "; ".join(f"{k} = {v:g}" for k, v in vars(a).items()) + ".", ""]
    if env.unverified_usd:
        out += [f"{_usd(env.unverified_usd)} of the total rests on UNVERIFIED prices (marked "
                "in the line items; planner/data/prices.yaml says why for each).", ""]
    if env.unpriced:
        out += ["**Not priced** (no row in the table; the total is short by these): "
                + ", ".join(env.unpriced) + ".", ""]
    if env.fallbacks:
        out += ["Priced at us-east-1's rate for want of a row in the table (run `sofacover "
                "prices refresh --region R`): " + ", ".join(env.fallbacks) + ".", ""]
    out += ["![cost](cost.png)", "", "<details><summary>Every line item</summary>", "",
            "| stack | resource | item | quantity | unit | $/unit | a month | note |",
            "|---|---|---|---|---|---|---|---|"]
    for sc in env.stacks:
        for li in sc.lines:
            note = "; ".join(filter(None, [li.note, "" if li.verified else "UNVERIFIED price"]))
            out.append(f"| {li.stack} | {li.resource} | {_label(li)} | {li.quantity:,.2f} | "
                       f"{li.unit} | {li.unit_usd:g} | {li.monthly_usd:,.2f} | {note} |")
    return out + ["", "</details>", ""]


def _label(li: costs.LineItem) -> str:
    """A line's item as the reader sees it: the spare capacity apart from the nodes the
    load needs, though both are priced from the same row."""
    return f"{li.item} (spare capacity)" if li.spare else li.item


def _availability_md(rep: Report) -> list[str]:
    av = rep.availability
    out = ["## Availability", "",
           "From the providers' published SLAs (monthly uptime commitments; a floor, not a "
           "measurement). Series multiply; regions are in parallel with the failover time "
           "each outage costs; the primary's data tier has the cross-region replicas as "
           "standbys behind a manual promotion (docs/runbook-dr.md).", "",
           "| stack | in series | availability |", "|---|---|---|"]
    for s in av.stacks:
        if not (s.serving or s.data):
            continue
        parts = ", ".join(f"{p.name} {p.availability * 100:g}%" for p in s.serving + s.data)
        out.append(f"| {s.stack} | {parts} | {_pct(s.availability)} |")
    edge = f"{av.edge.name} {av.edge.availability * 100:g}%" if av.edge else "none"
    used = sorted({p.sla for s in av.stacks for p in s.serving + s.data}
                  | ({av.edge.sla} if av.edge else set()))
    out += ["", "SLAs used: " + "; ".join(
        f"{k} {avail.SLAS[k].percent:g}% ({avail.SLAS[k].source}"
        + (f", {avail.SLAS[k].note}" if avail.SLAS[k].note else "") + ")" for k in used) + ".",
        "", f"Edge: {edge}; region failover: "
        f"{f'{av.failover_s:g} s (the load balancer monitor)' if av.failover_s else 'none'}; "
        f"mean outage {av.assumptions.mttr_s:g} s and replica promotion "
        f"{av.assumptions.promotion_s:g} s (UNVERIFIED estimates).",
        f"Write path {_pct(av.write_path)}, read path {_pct(av.read_path)}.", ""]
    return out


def _connections_md(rep: Report) -> list[str]:
    out = ["## Connection budget", "",
           "Every PgBouncer pool as rendered in the plan, times the processes that run it, "
           "plus the largest rolling-update surge (stacks deploy one at a time), against "
           "the database's max_connections less PostgreSQL's superuser_reserved_connections "
           "(config.models.pool_budget_problem).", "",
           "| database | max_connections | usable | pools | server connections | verdict |",
           "|---|---|---|---|---|---|"]
    for d in rep.connections.databases:
        pools = "; ".join(f"{p.stack}/{p.name}: {p.per_instance} x {p.instances} "
                          f"({p.runs_on})" for p in d.pools) or "none"
        verdict = ("not set: RDS's default formula" if d.max_connections is None
                   else d.problem or "fits")
        out.append(f"| {d.stack} {d.resource} | {d.max_connections or '-'} | "
                   f"{d.usable if d.usable is not None else '-'} | {pools} | {d.used} | "
                   f"{verdict} |")
    for p in rep.connections.unmatched:
        out.append(f"| {p.host} | - | - | {p.stack}/{p.name} | {p.server_connections} | "
                   "a database outside this report: not checked here (report the "
                   "environment) |")
    return out + [""]


# === pictures =================================================================================

def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")  # files only: no display
    import matplotlib.pyplot as plt

    # parse_math off: "$" in a label is a dollar, not the start of TeX math. No layout
    # engine from a matplotlibrc: each picture is laid out once, by _save.
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "text.parse_math": False,
                         "figure.autolayout": False, "figure.constrained_layout.use": False})
    return plt


def _save(plt, fig, path: Path) -> None:  # noqa: ANN001 - matplotlib's module and figure
    """Lay the figure out tight and write it. tight_layout leaves a placeholder layout engine
    behind, and savefig, seeing one, draws the whole figure once more (rendering nothing)
    before the draw it writes: with the engine taken off (None: _pyplot's rcParams name no
    engine) the figure is drawn once. The same pixels, about a tenth less CPU a picture."""
    fig.tight_layout()
    fig.set_layout_engine(None)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def timeline_png(rep: Report, path: Path) -> None:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    sims = [(s, r) for s, r in rep.capacity.items() if r is not None]
    n = max(1, len(sims))
    fig, axes = plt.subplots(2, n, figsize=(max(8.0, 4.2 * n + 0.8), 6.4), sharex=True,
                             squeeze=False)
    for col, (stack, res) in enumerate(sims):
        rows = res.timeline
        end = min(len(rows), max(KPI_S * 3, (res.seconds or 0) + 120))
        rows = rows[:end]
        t = [r.t for r in rows]
        top, bottom = axes[0][col], axes[1][col]
        unit = "pods" if res.platform == "kubernetes" else "instances"
        top.step(t, [r.desired for r in rows], where="post", label="desired", color="#999")
        top.step(t, [r.total for r in rows], where="post", label="created", color="#4C72B0")
        top.step(t, [r.ready for r in rows], where="post", label="ready", color="#2CA02C",
                 linewidth=2)
        verdict = ("PASS" if res.meets(KPI_S) else "MISS")
        took = f"{res.seconds} s" if res.seconds is not None else "not reached"
        top.set_title(f"{stack} ({res.platform}): {took} {verdict}", fontsize=10,
                      color="#2CA02C" if res.meets(KPI_S) else "#D62728")
        top.set_ylabel(unit)
        lit = rep.literal.get(stack)
        if lit is not None:
            # low in the panel, where the replicas have not climbed yet and no legend sits
            top.text(0.25, 0.03, f"seed's literal HPA: {_ttc(lit)}", transform=top.transAxes,
                     va="bottom", fontsize=8,
                     color="#2CA02C" if lit.meets(KPI_S) else "#D62728")
        bottom.step(t, [r.nodes_ready for r in rows], where="post", label="nodes ready",
                    color="#8C564B", linewidth=2)
        bottom.step(t, [r.nodes_ready + r.nodes_launching for r in rows], where="post",
                    label="nodes incl. launching", color="#E377C2")
        bottom.set_ylabel("nodes" if res.platform == "kubernetes" else "instances")
        bottom.set_xlabel(f"seconds after the {rep.load:g}x step")
        for ax in (top, bottom):
            ax.axvline(KPI_S, color="#D62728", linestyle="--", linewidth=1)
            ax.grid(alpha=0.3)
        top.text(KPI_S, top.get_ylim()[1] * 0.97, f" KPI {KPI_S} s", color="#D62728",
                 va="top", fontsize=8)
        horizon = max(KPI_S * 1.5, t[-1] if t else 0)
        for ax in (top, bottom):
            ax.set_xlim(0, horizon)
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if col == 0:
            top.legend(loc="lower right", fontsize=8, framealpha=0.9)
            bottom.legend(loc="lower right", fontsize=8, framealpha=0.9)
    if not sims:
        axes[0][0].text(0.5, 0.5, "no serving stack in this scope", ha="center")
    fig.suptitle(f"{rep.scope}, phase {rep.phase}: replicas and nodes through a "
                 f"{rep.load:g}x load step", fontsize=11)
    _save(plt, fig, path)


CATEGORY_COLORS = {"compute": "#4C72B0", "database": "#DD8452", "storage": "#55A868",
                   "bandwidth": "#C44E52", "monitoring": "#8172B3", "network": "#937860",
                   "security": "#DA8BC3", "edge": "#8C8C8C"}


SPARE = "spare capacity"
"""The cost picture's segment for the placeholder pods' nodes, cut out of compute."""


def _split_spare(cats: dict[str, float], spare: float) -> dict[str, float]:
    """Categories with the spare capacity apart from compute, right after it."""
    out: dict[str, float] = {}
    for c in costs.CATEGORIES:
        out[c] = cats.get(c, 0.0) - (spare if c == "compute" else 0.0)
        if c == "compute":
            out[SPARE] = spare
    return out


def _bar_style(cat: str) -> dict[str, Any]:
    if cat == SPARE:
        return {"color": CATEGORY_COLORS["compute"], "hatch": "//", "edgecolor": "white",
                "alpha": 0.6}
    return {"color": CATEGORY_COLORS[cat]}


def cost_png(rep: Report, path: Path) -> None:
    plt = _pyplot()
    phases = sorted([rep.cost] + ([rep.compare] if rep.compare else []),
                    key=lambda e: e.phase)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2),
                                      gridspec_kw={"width_ratios": [1, 1.6]})
    labels = ["seed today"] + [f"phase {e.phase}" for e in phases]
    columns = [dict(seed.BUDGET_BASELINE_USD)] + [_split_spare(e.by_category(), e.spare_usd)
                                                  for e in phases]
    bottoms = [0.0] * len(columns)
    for cat in _split_spare({}, 0.0):
        vals = [col.get(cat, 0.0) for col in columns]
        if not any(vals):
            continue
        left.bar(labels, vals, bottom=bottoms, label=cat, width=0.6, **_bar_style(cat))
        bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
    whole = rep.scope.startswith("environment")  # the budget is the environment's
    budgets = [sum(seed.BUDGET_BASELINE_USD.values())] + [e.budget_usd for e in phases]
    for i, (b, total) in enumerate(zip(budgets, bottoms, strict=True)):
        if whole or i == 0:
            left.hlines(b, i - 0.38, i + 0.38, color="black", linestyle="--", linewidth=1.5)
        label = f"${total:,.0f}\nbudget ${b:,.0f}" if whole or i == 0 else f"${total:,.0f}"
        left.text(i, max(b if whole or i == 0 else 0, total) * 1.02, label, ha="center",
                  va="bottom", fontsize=8)
    left.set_ylim(0, max(max(bottoms), max(budgets) if whole else budgets[0]) * 1.22)
    left.set_ylabel("USD a month")
    left.set_title("Monthly cost by category (dashed: the seed's budget)" if whole
                   else "Monthly cost by category (this stack alone)")
    # the legend on the side of the lower bars, clear of the totals written above them
    left.legend(fontsize=8, loc="upper left" if bottoms[-1] >= bottoms[0] else "upper right")
    left.grid(axis="y", alpha=0.3)
    # Right: the report's phase by stack and category, or, for one stack, its ten largest
    # items (horizontal bars, so the names read).
    stacks = [s for s in rep.cost.stacks if s.monthly_usd > 0]
    if len(stacks) > 1:
        names = [s.stack for s in stacks]
        lefts = [0.0] * len(stacks)
        for cat in _split_spare({}, 0.0):
            vals = [_split_spare(s.by_category(), s.spare_usd)[cat] for s in stacks]
            if any(vals):
                right.barh(names, vals, left=lefts, label=cat, **_bar_style(cat))
                lefts = [a + v for a, v in zip(lefts, vals, strict=True)]
        what = "by stack"
    else:
        items: dict[tuple[str, str], float] = {}
        for li in (li for sc in stacks for li in sc.lines):
            key = (_label(li), li.category)
            items[key] = items.get(key, 0.0) + li.monthly_usd
        top = sorted(items.items(), key=lambda kv: -kv[1])[:10]
        names = [item for (item, _), _ in top]
        lefts = [v for _, v in top]
        right.barh(names, lefts, color=[CATEGORY_COLORS[cat] for (_, cat), _ in top],
                   hatch=["//" if name.endswith(f"({SPARE})") else "" for name in names],
                   edgecolor="white")
        what = "largest items"
    for y, total in enumerate(lefts):
        right.text(total, y, f"  ${total:,.0f}", va="center", fontsize=8)
    right.set_xlim(0, max(lefts or [1]) * 1.18)
    right.invert_yaxis()
    right.set_xlabel("USD a month")
    right.set_title(f"Phase {rep.phase} {what}: ${rep.cost.monthly_usd:,.0f} a month, "
                    f"${rep.cost.cost_per_daily_user:.2f} per daily user")
    right.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{rep.scope}: list prices of {rep.cost.price_date}", fontsize=11)
    _save(plt, fig, path)


def _components(plan: StackPlan, fleet: costs.Fleet | None = None) -> list[str]:
    """What a stack runs, in words, from its planned resources (and the nodes Cluster
    Autoscaler keeps, from the cost model's fleet)."""
    types = {r.type for r in plan.resources if not r.read}
    out = []
    if "aws:ec2/vpc:Vpc" in types:
        nats = sum(1 for r in plan.resources if r.type == "aws:ec2/natGateway:NatGateway")
        out.append(f"VPC, {nats} NAT gateway{'s' * (nats != 1)}")
    if "aws:lb/loadBalancer:LoadBalancer" in types:
        out.append("ALB")
    for r in plan.resources:
        if r.type == costs.ASG and not r.read:
            lt = next((x.inputs for x in plan.resources if x.type == costs.LAUNCH_TEMPLATE),
                      {})
            kind = "EKS nodes" if "aws:eks/cluster:Cluster" in types else "EC2"
            out.append(f"{kind} {lt.get('instanceType', '')} x{r.inputs.get('minSize')}-"
                       f"{r.inputs.get('maxSize')}"
                       + (f", {fleet.off_peak} kept up ({fleet.spare_off_peak} spare)"
                          if fleet is not None and fleet.autoscaled else ""))
    if "aws:eks/cluster:Cluster" in types:
        hpas = [r for r in plan.resources if r.type == costs.HPA]
        out.append(f"EKS, {len(hpas)} services (HPA)")
    for r in plan.resources:
        if r.type == "aws:rds/instance:Instance":
            role = "replica" if r.inputs.get("replicateSourceDb") else "primary"
            az = "Multi-AZ" if r.inputs.get("multiAz") else "Single-AZ"
            out.append(f"RDS {role} {r.inputs.get('instanceClass')} {az}")
        elif r.type == ("aws:rds/instanceAutomatedBackupsReplication:"
                        "InstanceAutomatedBackupsReplication"):
            out.append(f"backups copied to {r.inputs.get('region')}")
        elif r.type == "aws:elasticache/replicationGroup:ReplicationGroup":
            out.append(f"Redis {r.inputs.get('nodeType')} x{r.inputs.get('numCacheClusters')}")
    if any(r.type == "kubernetes:core/v1:ConfigMap" and "pgbouncer.ini" in
           (r.inputs.get("data") or {}) for r in plan.resources) or any(
            r.type == "aws:ssm/parameter:Parameter" and "[databases]" in
            str(r.inputs.get("insecureValue") or "") for r in plan.resources):
        out.append("PgBouncer")
    return out


BOX_TOP = 4.9


def environment_png(rep: Report, path: Path) -> None:
    """Regions as columns (their components inside), the edge above, links as arrows:
    users to the edge, the edge to each serving region, the primary's database to its
    replicas and its backup copy."""
    plt = _pyplot()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    regional = [p for p in rep.plans if p.region]
    edge_plans = [p for p in rep.plans if not p.region]
    n = max(1, len(regional))
    width = 3.3
    fig_w = max(8.0, n * (width + 0.5) + 0.8)
    fig, ax = plt.subplots(figsize=(fig_w, 7.2))
    ax.set_xlim(0, fig_w)
    ax.set_ylim(0, 7.2)
    ax.axis("off")
    serving = {s for s, r in rep.capacity.items() if r is not None}
    fleets = {sc.stack: sc.fleet for sc in rep.cost.stacks}
    boxes: dict[str, tuple[float, float, float, float]] = {}
    primary_db: tuple[float, float] | None = None
    replica_dbs: list[tuple[float, float]] = []
    for i, plan in enumerate(regional):
        x = 0.5 + i * (width + 0.5)
        comps = _components(plan, fleets.get(plan.stack))
        height = 0.7 + 0.42 * max(1, len(comps))
        y = BOX_TOP - height
        is_serving = plan.stack in serving
        ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.05",
                                    facecolor="#EAF2FB" if is_serving else "#F4F4F4",
                                    edgecolor="#4C72B0" if is_serving else "#999"))
        ax.text(x + width / 2, y + height - 0.25, f"{plan.region}", ha="center",
                fontsize=10, fontweight="bold")
        ax.text(x + width / 2, y + height - 0.52,
                f"{plan.stack} ({plan.role}{', serving' if is_serving else ''})",
                ha="center", fontsize=8, color="#555")
        for j, comp in enumerate(comps):
            cy = y + height - 0.95 - j * 0.42
            ax.text(x + 0.2, cy, "• " + comp, fontsize=8.5, va="center")
            if comp.startswith("RDS primary"):
                primary_db = (x + width / 2, y - 0.08)
            elif comp.startswith("RDS replica"):
                replica_dbs.append((x + width / 2, y - 0.08))
        boxes[plan.stack] = (x, y, width, height)
    # The edge (Cloudflare) above, with the users.
    ew = min(fig_w - 1.0, 6.8)
    ex, ey, eh = fig_w / 2 - ew / 2, 5.3, 0.8
    edge_label = "no CDN / edge in this scope"
    if edge_plans or rep.availability.edge:
        cfg = next((p.config for p in rep.plans if p.config is not None and
                    p.config.edge is not None), None)
        plan_name = cfg.edge.plan if cfg is not None and cfg.edge is not None else "?"
        types = {r.type for p in rep.plans for r in p.resources}
        parts = ["DNS (proxied)"]
        for token, label in (("cloudflare:index/ruleset:Ruleset", "cache rules"),
                             ("cloudflare:index/workersScript:WorkersScript", "API Worker"),
                             ("cloudflare:index/loadBalancer:LoadBalancer",
                              "geo load balancer")):
            if token in types:
                parts.append(label)
        edge_label = f"Cloudflare ({plan_name}): {', '.join(parts)}"
    ax.add_patch(FancyBboxPatch((ex, ey), ew, eh, boxstyle="round,pad=0.05",
                                facecolor="#FFF4E5", edgecolor="#FF7F0E"))
    ax.text(ex + ew / 2, ey + eh / 2, edge_label, ha="center", va="center", fontsize=9)
    ax.text(ex + ew / 2, 6.75, "users", ha="center", fontsize=10, fontweight="bold")
    ax.add_patch(FancyArrowPatch((ex + ew / 2, 6.65), (ex + ew / 2, ey + eh + 0.05),
                                 arrowstyle="-|>", mutation_scale=12, color="#333"))
    for stack, (x, y, w, h) in boxes.items():
        if stack in serving:
            ax.add_patch(FancyArrowPatch((ex + ew / 2, ey - 0.05), (x + w / 2, y + h + 0.05),
                                         arrowstyle="-|>", mutation_scale=12,
                                         color="#FF7F0E", linewidth=1.2))
    if primary_db is not None and replica_dbs:
        for rx, ry in replica_dbs:
            ax.add_patch(FancyArrowPatch(primary_db, (rx, ry), connectionstyle="arc3,rad=0.1",
                                         arrowstyle="-|>", mutation_scale=10,
                                         color="#DD8452", linestyle="--"))
        ax.text(fig_w - 0.5, 0.05, "dashed: the primary's database replicating to the read "
                "replicas", fontsize=8, color="#DD8452", ha="right")
    totals = rep.cost
    ax.text(0.5, 0.05, f"phase {rep.phase}: {_usd(totals.monthly_usd)} a month; "
            f"availability {_pct(rep.availability.availability)} (write path)", fontsize=9,
            color="#333")
    ax.set_title(f"{rep.scope}, phase {rep.phase}: regions, components and links",
                 fontsize=11)
    _save(plt, fig, path)


def write(rep: Report, out_dir: Path) -> list[Path]:
    """Write the five files into `out_dir` (created if missing); returns their paths."""
    return write_text(rep, out_dir) + write_pictures(rep, out_dir)


def write_text(rep: Report, out_dir: Path) -> list[Path]:
    """report.md and report.json alone (what write() writes first); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f for f in FILES[:2]]
    paths[0].write_text(markdown(rep))
    paths[1].write_text(json.dumps(as_json(rep), indent=2) + "\n")
    return paths


def write_pictures(rep: Report, out_dir: Path) -> list[Path]:
    """The three pictures alone (what write() writes after the text); returns their paths.
    They take about a second of CPU together, nearly all of it matplotlib's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f for f in FILES[2:]]
    timeline_png(rep, paths[0])
    cost_png(rep, paths[1])
    environment_png(rep, paths[2])
    return paths


def check_out_dir(out_dir: Path) -> str | None:
    """Why `out_dir` cannot take the report, or None."""
    if out_dir.exists() and not out_dir.is_dir():
        return f"--out {out_dir}: is a file; give a folder"
    parent = out_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        return f"--out {out_dir}: {parent} is not a writable folder"
    return None
