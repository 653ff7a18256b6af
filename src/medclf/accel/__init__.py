"""Optional CPU speed-ups for training, behind one setting (``accel``).

With ``accel: true`` (the default):

* :mod:`~medclf.accel.precision` with :mod:`~medclf.accel.hardware` — ``mixed_precision: auto`` picks
  ``mixed_bfloat16`` for a model where the hardware has native bf16 and a timed probe finds it faster;
* :mod:`~medclf.accel.cpu_steal` — the runner records the CPU time the hypervisor took meanwhile
  (accounting for the timings, not a speed-up).

With ``accel: false`` every model trains in float32 unless ``mixed_precision: on``, and no hardware is
probed. Models and saved files are plain Keras either way. What each speed-up saves on a whole notebook,
and why the fused Adam, fused batch norm and batch-norm folding of earlier versions were removed (none
saved 10% of a notebook): docs/benchmarks.md; ``benchmarks/bench_accel.py`` repeats the measurement.
"""
