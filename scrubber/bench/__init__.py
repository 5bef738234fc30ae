"""The benchmark: a realistic synthetic stream, the engine, the offline scrub and the worker.

``python -m scrubber.bench`` (``make bench``) measures, on the same data and the same local
Kafka, a raw aiokafka passthrough, a bare Faust passthrough, the scrubber worker, the offline
scrub and the engine alone, and writes a JSON report and a chart into ``build/bench/``. It prints
numbers and asserts nothing about them: timings depend on the machine and on what else runs.
"""
