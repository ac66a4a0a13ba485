"""Training runs as jobs, outside the Streamlit server: a small interface the pages call (api.py), a job
table that outlives a tab (table.py), the worker body (worker.py), two backends (local.py: processes forked
from a fork server that preload.py fills with torch and the data; ray_backend.py: Ray actors), heavy Diagnose
views computed as jobs (views.py) and the limits a teacher sets (limits.py). Every server on a runs folder shares
the table, with leases on the rows it runs; the table's faults are one error type (table.JobStoreError).

A plain Python package: no streamlit import (tests/jobs/ checks it), so it runs under a notebook or a bench.
"""
