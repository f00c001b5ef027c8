"""OAuth 2.0 clients and bearer tokens for DICOMweb (issue 15; REQ: DSEC-11, AUTH-04)."""
