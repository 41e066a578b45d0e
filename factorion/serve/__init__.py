"""``factorion serve``: a local web page to place sources and sinks, build and measure factories.

:mod:`factorion.serve.app` (the FastAPI app and its routes), :mod:`factorion.serve.tasks` (what a
request holds, turned into a world), :mod:`factorion.serve.jobs` (builds in their own processes),
``static/`` (the page). Nothing heavy is imported here.
"""
