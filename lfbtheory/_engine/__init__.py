"""The engine: every compiled kernel of the package, behind one door.

Public modules (``lfbtheory.routing``, ``lfbtheory.lp``, ``lfbtheory.online``) are the plain
numpy reference that reads like the math; they call into this private package for speed and
never the other way round. Nothing here is public API.
"""
