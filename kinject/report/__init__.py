"""Results: aggregation over seeds (results.json) and rendering (table, report.md)."""
