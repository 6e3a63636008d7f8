"""`cost:` the prices that turn measured usage (CPU and GPU seconds, stored weights) into money; `model_card:` what
the model card says that no run can measure.

    cost:
      currency: USD
      cpu_hour: 0.045            # one vCPU (core) for an hour
      gpu_hour: {H100: 4.0, L4: 0.8}   # per GPU-hour, by a name in the device's name
      storage_gb_month: 0.023    # registry storage

Usage is always measured and recorded; money only where the config names a price. A run on a GPU whose name no
`gpu_hour` key matches has no cost (a `cost.*` gate then fails as not measured, never a free pass).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from tunesmith.config.base import StrictModel


class CostConfig(StrictModel):
    currency: str = Field("USD", description="the unit of every price below (shown beside every cost figure)")
    cpu_hour: float | None = Field(None, ge=0, description="price of one CPU core (vCPU) for an hour; null: CPU "
                                   "time is measured but not priced")
    gpu_hour: dict[str, float] = Field(default_factory=dict, description="price of one GPU for an hour, by a name "
                                       "that occurs in the device's name (H100, A10G, L4)")
    storage_gb_month: float | None = Field(None, ge=0, description="price of one GB of stored weights for a month")

    @field_validator("gpu_hour")
    @classmethod
    def _gpu_prices(cls, v: dict[str, float]) -> dict[str, float]:
        for name, price in v.items():
            if not name.strip():
                raise ValueError("a GPU type is a name in the device's name, such as H100; not empty")
            if price < 0:
                raise ValueError(f"the price of {name!r} is negative")
        return v

    @property
    def priced(self) -> bool:
        return self.cpu_hour is not None or bool(self.gpu_hour)

    def gpu_price(self, device_name: str) -> float | None:
        """The hourly price of `device_name` (the longest matching type wins: "H100 NVL" before "H100")."""
        found = [k for k in self.gpu_hour if k.lower() in device_name.lower()]
        return self.gpu_hour[max(found, key=len)] if found else None

    def money(self, cpu_seconds: float, gpu_seconds: float = 0.0, gpu_name: str | None = None) -> float | None:
        """The price of that much CPU and GPU time, or None where a price it needs is not configured."""
        if cpu_seconds > 0 and self.cpu_hour is None:
            return None
        total = cpu_seconds / 3600 * (self.cpu_hour or 0.0)
        if gpu_seconds > 0:
            price = self.gpu_price(gpu_name or "")
            if price is None:
                return None
            total += gpu_seconds / 3600 * price
        return total


class ModelCardConfig(StrictModel):
    """What the model card (README.md with every version, Hugging Face's layout) says that no run can measure."""

    intended_use: str | None = Field(None, description="what the model is for, and for whom")
    out_of_scope: str | None = Field(None, description="uses it was not built or evaluated for")
    license: str | None = Field(None, description="the model's license id (e.g. apache-2.0); mind the base model's")
    language: list[str] = Field(default_factory=list, description="ISO 639-1 codes of the training texts (en, de)")
