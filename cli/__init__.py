"""The ``larr`` command line: the top layer of the code.

It may import every package (core, Spark jobs, training, streaming, serving); nothing imports it, so the
imports flow one way: ``larr`` (core) <- jobs / training / streaming / serving <- ``cli`` and ``dags``."""
