"""Operating a served model: Prometheus rules from its SLOs (`tunesmith ops rules`)."""

from tunesmith.ops.rules import slo_rules, write_rules

__all__ = ["slo_rules", "write_rules"]
