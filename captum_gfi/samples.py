"""Deprecated location of :mod:`captum_gfi.demo.samples`; import from there."""

from captum_gfi.demo.samples import *  # noqa: F403
from captum_gfi.demo.samples import __all__  # noqa: F401
