"""The proof: what is checked in an image before it is written, and the result.

``prove`` runs the checks; ``checker`` is the file run inside the image (library loads
and the entry's imports, hints), ``serve`` starts the image's own command and asks it
over loopback (the verdict), ``result`` is what was proven and its one serialisation.
Running anything goes through :mod:`torchslim.sandbox`.
"""
