"""Engine shims: thin adapters that map partitions to partials and reduce by merging.

Installed as ``truthound_sketch.shims``; each engine module is imported only when used.
"""
