"""telerad's DICOM services (pynetdicom); importing the package installs the requestor reactor fix."""

from dicom import reactor_guard as _reactor_guard  # noqa: F401  # installs itself on import
