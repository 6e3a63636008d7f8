"""Operating a served model: Prometheus rules from its SLOs (`tunesmith ops rules`), Grafana dashboards (`tunesmith
ops dashboards`), a runbook per model (`tunesmith ops runbook`) and what runs and answers cost (`cost:`)."""

from tunesmith.ops.dashboards import dashboards, write_dashboards
from tunesmith.ops.rules import slo_rules, write_rules
from tunesmith.ops.runbook import runbook, write_runbook

__all__ = ["dashboards", "runbook", "slo_rules", "write_dashboards", "write_rules", "write_runbook"]
