"""The viewer's API (issue 16): measurements/marks and key images of a study (api/viewer/views.py)."""
