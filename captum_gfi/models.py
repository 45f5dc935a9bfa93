"""Deprecated location of :mod:`captum_gfi.demo.models`; import from there."""

from captum_gfi.demo.models import *  # noqa: F403
from captum_gfi.demo.models import __all__  # noqa: F401
