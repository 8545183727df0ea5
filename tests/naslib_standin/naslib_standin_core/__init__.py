"""Implementation behind the stand-in ``naslib`` packages (see ../README.md).

The modules of ``develop/naslib`` and ``zerocost/naslib`` re-export these objects at
NASLib's real module paths, so both layouts share one registry per process.
"""
