"""The analysis service (map/reduce over many sessions). Built by the analysis issue."""
