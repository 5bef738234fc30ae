"""Reference data: what the worker reads at run time, and what builds a bundle offline.

The two sides are kept apart so that the worker loads only the first (a unit test checks it):

* run time: ``model`` (the bundle and the in-memory snapshot the engine reads), ``store`` (the
  versions in Redis and the pointer to the current one), ``holder`` (a worker's snapshot, swapped
  when the pointer moves);
* build time (the ``scrubber refdata`` commands, tests, the benchmark): ``seeds`` (the seed
  document parser), ``cms`` (the CMS file readers), ``master`` (the master lists), ``vocabulary``
  (the words descriptions are compared by), ``lint`` (what the seeds say that the evidence
  contradicts), ``build`` (the bundle writer) and ``inputs`` (where the shipped inputs are).

What the public standards say (code shapes, the MPFS and MUE indicator values) is
``scrubber.standards``, which both sides import.
"""
