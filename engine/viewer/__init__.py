"""What doctors keep of a study in the viewer (issue 16; REQ: VIEW-08, RPT-05; UX R13): measurements and marks
(JSON for the viewer, DICOM SR TID 1500 in the archive) and key images (a Key Object Selection document)."""
