"""Parameters of a live draft preview (POST body or GET query)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# The generator's own ceilings (model_repository/content_generator/config.pbtxt).
MAX_PREVIEW_TOKENS = 512
MAX_TEMPERATURE = 2.0


class DraftStreamParams(BaseModel):
    """Unset fields take the deployment's generation settings (as the workflow's drafts do)."""

    model_config = ConfigDict(extra="forbid")

    temperature: Annotated[float | None, Field(ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False)] = None
    max_tokens: Annotated[int | None, Field(ge=1, le=MAX_PREVIEW_TOKENS)] = None
    # Names the sample; the same seed, parameters and prompt give the same preview.
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
