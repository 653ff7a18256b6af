"""Optional CPU speed-ups for training, behind one setting (``accel``); results are the same without them.

With ``accel: true`` (the default) the training layer uses

* :mod:`~medclf.accel.swap` — the fused Adam (:mod:`~medclf.accel.fused_adam`) and fused batch norm
  (:mod:`~medclf.accel.fused_bn`) swapped in for fitting only; the models and the files saved from
  them stay plain Keras;
* :mod:`~medclf.accel.bn_fold` — batch norm folded into the convolutions of a frozen transfer base;
* :mod:`~medclf.accel.precision` with :mod:`~medclf.accel.hardware` — ``mixed_precision: auto`` picks
  ``mixed_bfloat16`` where the hardware has native bf16 and a timed probe finds it faster;
* :mod:`~medclf.accel.cpu_steal` — the runner records the CPU time the hypervisor took meanwhile.

With ``accel: false`` the same models train as plain Keras, in float32 unless ``mixed_precision: on``
(tests/test_accel.py: the same predictions within float tolerance); ``benchmarks/bench_accel.py``
measures what the speed-ups save on a whole notebook.
"""
