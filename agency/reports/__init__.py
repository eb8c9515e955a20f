"""ROI-analysis reports: data model and numbers (``roi``), charts (``charts``), HTML/PDF (``render``)."""

from agency.reports.roi import (
    AllocationChangeLine,
    ArmLine,
    ChannelRoi,
    CurvePoint,
    ExperimentLine,
    ResponseCurve,
    RoiReport,
    RoundPoint,
    cac_of,
    channel_roi,
    count,
    marginal_roi,
    merge_channels,
    money,
    number,
    p_value,
    pct,
    ratio,
    roi_of,
    totals,
)

__all__ = [
    "AllocationChangeLine", "ArmLine", "ChannelRoi", "CurvePoint", "ExperimentLine", "ResponseCurve",
    "RoiReport", "RoundPoint", "cac_of", "channel_roi", "count", "marginal_roi", "merge_channels",
    "money", "number", "p_value", "pct", "ratio", "roi_of", "totals",
]
