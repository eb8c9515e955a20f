"""ROI reports: on demand (a RoiReportWorkflow per request), status and downloads."""
