"""Precision and CPU accounting for training.

* :mod:`~medclf.accel.precision` — the dtype policy each model is declared to train in
  (``mixed_precision``, ``model_overrides.<model>.mixed_precision``): applied as declared on every
  machine, never chosen by a timing;
* :mod:`~medclf.accel.hardware` — the CPU's bf16 flags, GPUs, oneDNN, for provenance and benchmarks;
* :mod:`~medclf.accel.cpu_steal` — with the ``accel`` setting on, the runner records the CPU time the
  hypervisor took meanwhile (accounting for the timings, not a speed-up).

Models and saved files are plain Keras whatever the policy. What bf16 saves per model is measured by
``benchmarks/bench_accel.py``, and why the fused Adam, fused batch norm and batch-norm folding of
earlier versions were removed (none saved 10% of a notebook): docs/benchmarks.md.
"""
