"""Operating a served model: Prometheus rules from its SLOs (`tunesmith ops rules`), Grafana dashboards (`tunesmith
ops dashboards`) and what runs and answers cost (`cost:`)."""

from tunesmith.ops.dashboards import dashboards, write_dashboards
from tunesmith.ops.rules import slo_rules, write_rules

__all__ = ["dashboards", "slo_rules", "write_dashboards", "write_rules"]
