"""deploy/: Prometheus config and rules (checked and unit-tested with promtool), Grafana
provisioning and dashboards, docker-compose.yml and the Dockerfile.

The central check: every PromQL expression in the rules and the dashboards uses only metric
names the service exports (app.metrics), Prometheus' own `up`, or recording rules defined in
deploy/prometheus/rules. A renamed metric breaks this test instead of an empty Grafana panel.

promtool comes from the Debian `prometheus` package (CI installs it). Without it these tests
skip, unless WATERLINE_REQUIRE_POSTGRES=1 (the CI flag), where a missing promtool fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = DEPLOY / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.yml"
GRAFANA_DASHBOARD_PATH = "/var/lib/grafana/dashboards"
SEVERITIES = {"critical", "warning", "info"}

# Prometheus' own series that queries may use: `up` from every scrape, and ALERTS (dashboards
# list the firing Waterline alerts).
PROMETHEUS_RULE_METRICS = {"up"}
PROMETHEUS_DASHBOARD_METRICS = {"up", "ALERTS"}


# --- promtool ----------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found (Debian package `prometheus`)"
        if os.environ.get("WATERLINE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{message}; required because WATERLINE_REQUIRE_POSTGRES=1 (CI)")
        pytest.skip(message)
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [promtool(), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


def test_promtool_check_config() -> None:
    out = run_promtool("check", "config", PROMETHEUS_CONFIG.relative_to(ROOT))
    # The rule_files glob must find the rules (a typo would silently load nothing).
    assert f"{len(RULE_FILES)} rule files found" in out.stdout + out.stderr


def test_promtool_check_rules() -> None:
    assert RULE_FILES
    run_promtool("check", "rules", *(p.relative_to(ROOT) for p in RULE_FILES))


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    out = run_promtool("test", "rules", *(p.relative_to(ROOT) for p in RULE_TESTS))
    assert "FAILED" not in out.stdout + out.stderr


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses every dashboard query (as recording rules, Grafana variables filled in)."""
    rules = [{"record": f"dashboard_query:{i}", "expr": grafana_to_promql(expr)}
             for i, (_, expr) in enumerate(dashboard_queries())]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run_promtool("check", "rules", path)


# --- PromQL metric names -----------------------------------------------------------------------

PROMQL_AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time",
    "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month",
    "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate",
    "resets", "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sort_by_label",
    "sort_by_label_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "tan", "tanh", "time", "timestamp", "vector", "year",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATOR_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2"}
NUMBER_WORDS = {"inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*\b)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<punct>[(){}\[\],@])
  | (?P<op>[-+*/%^=!<>~]+)
    """,
    re.VERBOSE,
)


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot tokenize {expr[pos:pos + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions,
    aggregators, keywords, label names (in {} matchers or by/without/on/ignoring/group_x
    lists) or numbers. Strings, durations and Grafana variables are dropped."""
    tokens = tokenize(expr)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if value in ("{", "["):
            # Label matchers or a range/subquery: skip to the closing bracket.
            closing = "}" if value == "{" else "]"
            while i < len(tokens) and tokens[i][1] != closing:
                i += 1
        elif kind == "ident":
            word = value.lower()
            if word in LABEL_LIST_KEYWORDS:
                if following[1] == "(":
                    while i < len(tokens) and tokens[i][1] != ")":
                        i += 1
            elif word in OPERATOR_KEYWORDS or word in NUMBER_WORDS:
                pass
            elif following[1] == "(" or (
                value in PROMQL_AGGREGATORS and following[1] in ("by", "without")
            ):
                if value not in PROMQL_FUNCTIONS | PROMQL_AGGREGATORS:
                    raise ValueError(f"unknown PromQL function {value!r} in {expr!r}")
            else:
                names.add(value)
        i += 1
    return names


def test_metric_names_tokenizer() -> None:
    assert metric_names(
        'sum by (switch, le) (rate(foo_total{job="a", x=~"{b}"}[5m] offset 1h)) '
        "/ on (switch) group_left (role) max without (instance) (bar:rec:rate2m) > bool 0.5e3"
    ) == {"foo_total", "bar:rec:rate2m"}
    assert metric_names('topk($topn, x) or vector(0) unless on () absent(y{a="1"} == 1)') == {
        "x", "y"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))"
                        ) == {"h_bucket"}
    assert metric_names('time() - g{job="c"} > 60 and g > 0 # comment\n or Inf') == {"g"}
    with pytest.raises(ValueError, match="unknown PromQL function"):
        metric_names("rates(x[5m])")


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


_SERVICE_METRICS_SCRIPT = """
import json
import app.metrics  # registers the module-level instruments
from prometheus_client import REGISTRY
names = []
for family in REGISTRY.collect():
    if family.type == "counter":
        names.append(family.name + "_total")
    else:
        names.append(family.name)
print(json.dumps(names))
"""


@cache
def exported_metrics() -> frozenset[str]:
    """app.metrics.FABRIC_METRIC_NAMES and VIRTUAL_FABRIC_METRIC_NAMES plus the service
    metrics in the default registry after importing app.metrics. Collected in a fresh
    interpreter, so that no collector another test registered (e.g. a FabricCollector with its
    database) is scraped here."""
    from app.metrics import FABRIC_METRIC_NAMES, VIRTUAL_FABRIC_METRIC_NAMES

    out = subprocess.run([sys.executable, "-c", _SERVICE_METRICS_SCRIPT], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=120)
    service = set(json.loads(out.stdout))
    assert "waterline_poll_errors_total" in service
    assert "waterline_poll_duration_seconds" in service
    return frozenset(set(FABRIC_METRIC_NAMES) | set(VIRTUAL_FABRIC_METRIC_NAMES) | service)


def load_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def recording_rules() -> set[str]:
    return {rule["record"] for rule in load_rules() if "record" in rule}


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def unknown_metrics(expr: str, allowed: set[str]) -> set[str]:
    return {name for name in metric_names(expr)
            if name not in allowed and base_name(name) not in allowed}


def test_rules_use_only_exported_metrics() -> None:
    allowed = set(exported_metrics()) | recording_rules() | PROMETHEUS_RULE_METRICS
    problems = {
        rule.get("record") or rule["alert"]: sorted(unknown_metrics(rule["expr"], allowed))
        for rule in load_rules()
    }
    problems = {name: bad for name, bad in problems.items() if bad}
    assert not problems, f"rules use metrics the service does not export: {problems}"


def test_recording_rules_are_defined_before_use() -> None:
    """Within the rule files, a recording rule is used only after the rule that defines it
    (same group, earlier; or an earlier group), so no evaluation reads a missing series."""
    defined: set[str] = set()
    records = recording_rules()
    for rule in load_rules():
        used = metric_names(rule["expr"]) & records
        assert used <= defined, f"{rule.get('record') or rule['alert']} uses {used - defined} early"
        if "record" in rule:
            defined.add(rule["record"])


def test_every_exported_fabric_metric_is_used() -> None:
    """Each fabric metric is read by some rule or dashboard (nothing exported is forgotten)."""
    from app.metrics import FABRIC_METRIC_NAMES

    used: set[str] = set()
    for rule in load_rules():
        used |= metric_names(rule["expr"])
    for _, expr in dashboard_queries():
        used |= metric_names(grafana_to_promql(expr))
    assert set(FABRIC_METRIC_NAMES) - used == set()


# --- alerts and their tests --------------------------------------------------------------------


def test_alerts_have_severity_and_annotations() -> None:
    alerts = alerting_rules()
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerts:
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{rule['alert']}: no {key}"


def test_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alerting_rules()}
    assert {
        "WaterlinePfcStorm", "WaterlineEcnMarkingSaturated", "WaterlineQueueWatermarkNearLimit",
        "WaterlineCollectorDown", "WaterlineCollectorStalled", "WaterlineSwitchUnreachable",
        "WaterlineChangeRolledBack", "WaterlineTunerChangeRolledBack",
    } <= names


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested not firing"


# --- Grafana -----------------------------------------------------------------------------------


def load_dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variable_query(query: Any) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query, if any."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = str(query).strip()
    match = re.fullmatch(r"label_values\((.*),\s*\w+\s*\)", query, re.DOTALL)
    if match:
        return match.group(1)
    match = re.fullmatch(r"query_result\((.*)\)", query, re.DOTALL)
    if match:
        return match.group(1)
    return None


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) for every panel target, query variable and annotation."""
    out: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        board = load_dashboard(path)
        for panel in all_panels(board):
            for t in panel.get("targets", []):
                out.append((f"{path.name} panel {panel.get('title')!r} {t.get('refId')}",
                            t["expr"]))
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                expr = variable_query(variable.get("query"))
                if expr is not None:
                    out.append((f"{path.name} variable ${variable['name']}", expr))
        for annotation in board.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                out.append((f"{path.name} annotation {annotation['name']!r}", annotation["expr"]))
    return out


GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")


def grafana_to_promql(expr: str) -> str:
    """Fill in Grafana's variables so that Prometheus can parse the query. Variables inside
    label-matcher strings stay as they are (they are just strings to the parser)."""
    for name in GRAFANA_INTERVALS:
        expr = expr.replace(name, "5m")
    return expr.replace("$topn", "10")


def test_dashboards_use_only_exported_metrics() -> None:
    allowed = set(exported_metrics()) | recording_rules() | PROMETHEUS_DASHBOARD_METRICS
    queries = dashboard_queries()
    assert len(queries) > 30
    problems = {where: sorted(bad) for where, expr in queries
                if (bad := unknown_metrics(grafana_to_promql(expr), allowed))}
    assert not problems, f"dashboard queries use metrics the service does not export: {problems}"


def test_dashboard_variables_are_defined() -> None:
    builtin = {name.lstrip("$") for name in GRAFANA_INTERVALS}
    for path in DASHBOARDS:
        board = load_dashboard(path)
        defined = {v["name"] for v in board["templating"]["list"]} | builtin
        text = json.dumps([p.get("targets", []) for p in all_panels(board)])
        used = set(re.findall(r"\$(\w+)", text)) | set(re.findall(r"\$\{(\w+)", text))
        assert used <= defined, f"{path.name}: undefined variables {used - defined}"


def provisioned_datasource() -> dict[str, Any]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    return dict(source)


def test_datasource_provisioning() -> None:
    source = provisioned_datasource()
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["uid"] == "waterline-prom"
    assert source["access"] == "proxy"


def test_dashboard_provisioning() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "waterline.yml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == GRAFANA_DASHBOARD_PATH


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_model(path: Path) -> None:
    board = load_dashboard(path)
    uid = provisioned_datasource()["uid"]
    assert board["uid"] and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    panels = list(all_panels(board))
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    for panel in panels:
        where = f"{path.name} panel {panel['id']} {panel.get('title')!r}"
        assert panel["datasource"]["uid"] == uid, where
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["y"] >= 0, where
        assert pos["x"] + pos["w"] <= 24, where
        if panel["type"] == "row":
            continue
        assert panel["targets"], where
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), where
        for t in panel["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == uid, where
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == uid
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"]["uid"] == uid


def test_dashboard_uids_are_unique() -> None:
    uids = [load_dashboard(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))
    assert {p.name for p in DASHBOARDS} == {
        "fabric-overview.json", "switch-drilldown.json", "tuner.json"}


def test_dashboards_match_their_generator() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_dashboards", DEPLOY / "grafana" / "generate_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, build in module.DASHBOARDS.items():
        committed = (DEPLOY / "grafana" / "dashboards" / name).read_text()
        assert committed == module.render(build), (
            f"{name} is out of date: run .venv/bin/python deploy/grafana/generate_dashboards.py")


# --- Prometheus config, docker compose, Dockerfile ---------------------------------------------


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def scrape_targets() -> dict[str, list[str]]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    out: dict[str, list[str]] = {}
    for job in config["scrape_configs"]:
        targets = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        targets += [f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", [])
                    for name in sd["names"]]
        out[job["job_name"]] = targets
    return out


def test_prometheus_scrapes_the_compose_services() -> None:
    targets = scrape_targets()
    services = compose()["services"]
    assert targets["waterline-api"] == ["waterline:8000"]
    assert targets["waterline-collector"] == ["collector:9108"]
    assert {"waterline", "collector"} <= set(services)
    command = services["collector"]["command"]
    assert command[:2] == ["waterline", "collector"]
    assert command[command.index("--metrics-port") + 1] == "9108"
    # The collector binds its /metrics to 127.0.0.1 unless told otherwise.
    assert command[command.index("--metrics-host") + 1] == "0.0.0.0"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    globbed = {p for pattern in config["rule_files"]
               for p in (PROMETHEUS_CONFIG.parent).glob(pattern)}
    assert globbed == set(RULE_FILES)


def test_alert_job_labels_match_the_scrape_jobs() -> None:
    jobs = set(scrape_targets())
    for rule in load_rules():
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, f"{rule.get('alert') or rule['record']}: unknown job {job}"


def test_compose_file() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "waterline", "collector", "prometheus", "grafana"}

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    api = services["waterline"]
    assert api["build"] == "."
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["environment"]["WATERLINE_DATABASE_URL"].startswith(
        "postgresql+psycopg://waterline:")
    assert api["environment"]["WATERLINE_DATABASE_URL"].endswith("@postgres:5432/waterline")
    assert api["environment"]["WATERLINE_HOST"] == "0.0.0.0"
    assert any(str(p).endswith(":8000:8000") for p in api["ports"])

    grafana = services["grafana"]
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), (
        "the Grafana admin password must come from the environment with no default")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts[GRAFANA_DASHBOARD_PATH] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"

    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_compose_references_existing_files() -> None:
    config = compose()
    for name, service in config["services"].items():
        if "build" in service:
            context = ROOT / str(service["build"])
            assert (context / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in config.get("volumes", {}), f"{name}: undeclared volume {source}"


def test_compose_waterline_variables_are_known_settings() -> None:
    """An unknown WATERLINE_* variable stops start-up (app/config.py)."""
    from app.config import ENV_PREFIX, Settings

    known = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        used = {key for key in env if key.startswith(ENV_PREFIX)}
        assert used <= known, f"{name}: unknown settings {used - known}"


def test_compose_has_no_literal_secrets() -> None:
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN$", key):
                assert str(value).startswith("${"), f"{name}: {key} is a literal"


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms and all(image == "python:3.11-slim" for image in froms)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    cmd = re.findall(r"^CMD\s+(.+)$", text, re.MULTILINE)[-1]
    assert "waterline migrate && waterline bootstrap && exec waterline serve --host 0.0.0.0" in cmd
    for package in ("app", "collectors", "tuning", "fabricsim", "migrations"):
        assert re.search(rf"^COPY {package} ", text, re.MULTILINE), package
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :].count("*") == 1  # allow-list
    for needed in ("!pyproject.toml", "!README.md", "!constraints.txt", "!app/",
                   "!migrations/"):
        assert needed in ignore
    # the image installs the numerical stack the shipped models were pickled with
    assert re.search(r"^COPY .*constraints\.txt", text, re.MULTILINE)
    assert "pip install . -c constraints.txt" in text
