"""The desk console: a single page of plain HTML, CSS and JavaScript modules served by the API
process at ``/`` (CONTRACT.md §2 ``GET /``), with ECharts from the npm registry (``make setup``)."""
