"""Market-mix modelling: simulated markets, response-curve fitting and budget allocation."""
