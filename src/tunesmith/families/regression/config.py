"""`regression:` config section of the regression family."""

from __future__ import annotations

from pydantic import Field

from tunesmith.config.base import RegressionLoss, StrictModel


class RegressionConfig(StrictModel):
    """regression: the loss of the 1-output head."""

    loss: RegressionLoss = RegressionLoss.MSE
    huber_delta: float = Field(1.0, gt=0)
