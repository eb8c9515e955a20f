"""The tenant's weekly marketing history the market model is fitted on."""
