"""The only package that imports pymilter: callbacks collect, then hand off to the pipeline."""
